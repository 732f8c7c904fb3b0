from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.forms import REFERENCE_DPI, sample_digits, specimen_template
from watcher.forms import specimen
from watcher.forms.align import Alignment, Refusal, align, best_alignment, reference
from watcher.forms.features import features
from watcher.forms.template import Template


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    folder = tmp_path_factory.mktemp("templates")
    return {layout.name: specimen_template(folder, layout) for layout in (specimen.METER, specimen.EXAM)}


def _filled(layout: specimen.Layout, seed: int) -> np.ndarray:
    """The layout at the reference's resolution, every field written in: writing the reference lacks."""
    images, _ = sample_digits()
    rng = np.random.default_rng(seed)
    writing = {
        box.name: [images[int(i)] for i in rng.integers(len(images), size=box.cells + 2)] for box in layout.boxes
    }
    return specimen.fill(specimen.draw(layout, REFERENCE_DPI), layout, REFERENCE_DPI, writing, rng)


def _corner_error(alignment: Alignment, scanned: specimen.Scanned, template: Template) -> float:
    """How far, in reference pixels, the alignment puts the fields' corners from where the scan moved them."""
    corners = np.array(
        [[x + dx, y + dy] for x, y, w, h in (field.box for field in template.fields) for dx in (0, w) for dy in (0, h)],
        np.float64,
    )
    on_scan = cv2.perspectiveTransform(corners[np.newaxis], scanned.warp.astype(np.float64))
    back = cv2.perspectiveTransform(on_scan, alignment.homography)[0]
    return float(np.abs(back - corners).max())


@pytest.mark.parametrize(
    ("scale", "angle", "quarter_turns", "perspective"),
    [
        (1.5, 0.0, 0, 0.0),  # 150 dpi, shifted on the bed
        (3.0, 10.0, 0, 0.0),  # 300 dpi, tilted
        (1.5, -10.0, 0, 0.0),
        pytest.param(6.0, 2.0, 0, 0.0, marks=pytest.mark.slow),  # 600 dpi
        (1.5, 0.0, 2, 0.0),  # upside down
        (1.5, 4.0, 1, 0.0),  # sideways
        (1.5, -3.0, 3, 0.0),
        (2.0, 3.0, 0, 0.03),  # a phone photo of a flat sheet
    ],
)
def test_a_page_aligns_whatever_its_scale_tilt_orientation_and_perspective(
    templates: dict[str, Template], scale: float, angle: float, quarter_turns: int, perspective: float
) -> None:
    template = templates["meter"]
    rng = np.random.default_rng(round(scale * 10 + angle))
    scanned = specimen.scan(
        _filled(specimen.METER, seed=1),
        rng,
        scale=scale,
        angle=angle,
        quarter_turns=quarter_turns,
        perspective=perspective,
    )
    fit = align(features(scanned.image), reference(template))
    assert isinstance(fit, Alignment), fit
    assert fit.inliers >= 100 and fit.inlier_share > 0.3 and fit.residual_px < 2
    assert _corner_error(fit, scanned, template) < 2.0  # half a millimetre at the reference's 100 dpi


def test_each_page_goes_to_the_template_it_matches(templates: dict[str, Template]) -> None:
    references = [reference(templates["meter"]), reference(templates["exam"])]
    for layout in (specimen.METER, specimen.EXAM):
        page = specimen.scan(_filled(layout, seed=2), np.random.default_rng(3), scale=2.0, angle=5.0).image
        fit = best_alignment(features(page), references)
        assert not isinstance(fit, Refusal), fit
        assert fit[0].template.name == layout.name


def test_a_page_of_another_form_is_refused_naming_why(templates: dict[str, Template]) -> None:
    exam_page = specimen.scan(_filled(specimen.EXAM, seed=4), np.random.default_rng(5), scale=2.0).image
    refusal = best_alignment(features(exam_page), [reference(templates["meter"])])
    assert isinstance(refusal, Refusal)
    assert refusal.template == "meter" and "need 40" in refusal.reason


def test_a_blank_page_is_refused(templates: dict[str, Template]) -> None:
    blank = np.full((800, 600), 245, np.uint8)
    refusal = align(features(blank), reference(templates["meter"]))
    assert isinstance(refusal, Refusal) and refusal.reason == "the page shows no print to align"


def test_features_are_found_on_the_same_reduced_copy_at_any_resolution(templates: dict[str, Template]) -> None:
    # Reduced to one size, a 100- and a 600-dpi rendering show the same print at the same places.
    coarse = features(specimen.draw(specimen.METER, 100))
    fine = features(specimen.draw(specimen.METER, 600))
    assert abs(len(coarse.points) - len(fine.points)) < 0.2 * len(coarse.points)
    assert fine.points.max() > 5 * coarse.points.max()  # in each image's own pixels
