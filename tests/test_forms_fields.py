from __future__ import annotations

import numpy as np
import pytest

from tests.daemons import SHIPPED_MODEL
from tests.forms import form_verdicts, sample_digits, specimen_template
from watcher.forms import specimen
from watcher.forms.fields import FieldCrop, FormPage, FormRefused, read_form
from watcher.forms.template import Template
from watcher.model.classify import load_classifier

PAGE_DPI = 200  # pages are scanned finer than the 100-dpi references, as most are


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> list[Template]:
    folder = tmp_path_factory.mktemp("templates")
    return [specimen_template(folder, layout) for layout in (specimen.METER, specimen.EXAM)]


def _scanned(page: np.ndarray, seed: int, **transform: float) -> np.ndarray:
    return specimen.scan(page, np.random.default_rng(seed), **transform).image


def _read(page: np.ndarray, templates: list[Template]) -> FormPage:
    form = read_form(page, templates)
    assert isinstance(form, FormPage), form
    return form


def _fields(form: FormPage) -> dict[str, FieldCrop]:
    return {field.name: field for field in form.fields}


@pytest.mark.parametrize(
    "transform", [{"angle": 7.0}, {"angle": -4.0, "quarter_turns": 2}, {"scale": 0.5, "perspective": 0.02}]
)
def test_a_blank_form_has_no_writing_anywhere_its_walls_and_labels_removed(
    templates: list[Template], transform: dict[str, float]
) -> None:
    # A cell wall or a box's edge left behind would be read as a 1: nothing of the print may be left.
    for layout in (specimen.METER, specimen.EXAM):
        form = _read(_scanned(specimen.draw(layout, PAGE_DPI), seed=1, **transform), templates)
        assert form.template == layout.name
        for field in form.fields:
            assert field.crops == (None,) * len(field.crops), field.name


def test_a_comb_gives_one_crop_per_cell_and_empty_cells_as_none(templates: list[Template]) -> None:
    images, _ = sample_digits()
    writing = {"account": [images[0], None, images[1], images[2], None, None, images[3], None], "meter": [images[4]]}
    page = specimen.fill(
        specimen.draw(specimen.METER, PAGE_DPI), specimen.METER, PAGE_DPI, writing, np.random.default_rng(2)
    )
    fields = _fields(_read(_scanned(page, seed=3, angle=-6.0), templates))
    assert [crop is not None for crop in fields["account"].crops] == [
        True,
        False,
        True,
        True,
        False,
        False,
        True,
        False,
    ]
    assert fields["account"].mode == "digit" and fields["reading"].mode == "number"
    assert fields["meter"].crops[0] is not None and fields["reading"].crops == (None,)
    assert all(crop is None for crop in fields["code"].crops)


def test_ink_that_runs_over_the_box_edge_belongs_to_the_field(templates: list[Template]) -> None:
    x, y, w, h = specimen.box_pixels(next(box for box in specimen.METER.boxes if box.name == "meter"), PAGE_DPI)

    def written_height(bottom: int) -> int:
        """How tall the 1 read is, when a 1 is written from a quarter of the box down to `bottom`."""
        page = specimen.draw(specimen.METER, PAGE_DPI).copy()
        page[y + h // 4 : bottom, x + w // 2 - 2 : x + w // 2 + 2] = specimen.PEN
        crop = _fields(_read(_scanned(page, seed=4, angle=3.0), templates))["meter"].crops[0]
        assert crop is not None
        return int((crop < 128).any(axis=1).sum())

    inside = written_height(y + 3 * h // 4)  # half the box tall
    crossing = written_height(y + 3 * h // 2)  # on through the box's bottom edge, to half a box below it
    assert crossing >= 0.9 * 2.5 * inside


def test_a_stroke_running_along_beside_a_printed_line_stays(templates: list[Template]) -> None:
    # A 7 whose bar runs just above the box's top edge, its stem down into the box: removing the box's edge
    # must leave the bar, or the 7 becomes a 1.
    x, y, w, h = specimen.box_pixels(next(box for box in specimen.METER.boxes if box.name == "meter"), PAGE_DPI)
    line = specimen.px(specimen.LINE_MM, PAGE_DPI)

    def written_width(bar: bool) -> int:
        page = specimen.draw(specimen.METER, PAGE_DPI).copy()
        page[y - 2 * line : y + 3 * h // 4, x + w // 2 : x + w // 2 + 4] = specimen.PEN
        if bar:
            page[y - 1 - line : y - 1, x + w // 4 : x + w // 2 + 4] = specimen.PEN
        crop = _fields(_read(_scanned(page, seed=9, angle=2.0), templates))["meter"].crops[0]
        assert crop is not None
        return int((crop < 128).any(axis=0).sum())

    assert written_width(bar=True) >= 3 * written_width(bar=False)


def test_ink_written_in_the_next_field_stays_out(templates: list[Template]) -> None:
    # A digit in the month box, right of the reading box, is never read as part of the reading.
    images, _ = sample_digits()
    writing = {"month": [images[5]]}
    page = specimen.fill(
        specimen.draw(specimen.METER, PAGE_DPI), specimen.METER, PAGE_DPI, writing, np.random.default_rng(5)
    )
    fields = _fields(_read(_scanned(page, seed=6), templates))
    assert fields["reading"].crops == (None,) and fields["month"].crops[0] is not None


def test_a_page_of_no_template_is_refused_naming_the_closest(templates: list[Template]) -> None:
    other = specimen.Layout(
        name="other",
        title="SOMETHING ELSE ENTIRELY",
        size=(148.0, 210.0),
        boxes=(specimen.Box("x", "number", 30, 60, 60, 20, "Quantity ordered"),),
        notes=("Not a form any template knows.",),
    )
    refused = read_form(_scanned(specimen.draw(other, PAGE_DPI), seed=7), templates)
    assert isinstance(refused, FormRefused)
    assert refused.reason.startswith("matches no form template (closest: ")


@pytest.mark.slow
def test_filled_forms_read_right_through_the_model(templates: list[Template]) -> None:
    classifier = load_classifier(SHIPPED_MODEL)
    images, labels = sample_digits()
    rng = np.random.default_rng(8)
    right = total = 0
    for page_number, layout in enumerate((specimen.METER, specimen.EXAM, specimen.METER)):
        writing, truth = {}, {}
        for box in layout.boxes:
            count = box.cells if box.kind == "comb" else 1 if box.kind == "digit" else 3
            chosen = rng.choice(len(images), size=count, replace=False)
            writing[box.name] = [images[i] for i in chosen]
            truth[box.name] = "".join(str(labels[i]) for i in chosen)
        page = specimen.fill(specimen.draw(layout, PAGE_DPI), layout, PAGE_DPI, writing, rng)
        form = _read(_scanned(page, seed=page_number, angle=float(rng.uniform(-10, 10))), templates)
        template = next(template for template in templates if template.name == form.template)
        verdicts = form_verdicts(form, template, classifier, review_below=None)
        right += sum(verdicts[name].prediction == written for name, written in truth.items())
        total += len(truth)
    assert right >= total - 2, f"{right} of {total} fields read right"
