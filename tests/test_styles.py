"""The handwriting styles: each within its stated range, deterministic with a seed, and still the digit it was."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from watcher.model import styles
from watcher.model.classify import load_classifier
from watcher.model.styles import (
    GREY_LEVELS,
    GRIDS,
    STYLES,
    Writer,
    compose_styled_number,
    draw_digit,
    draw_writer,
    skeleton,
    styled_digits,
)

SAMPLE = Path(__file__).parent / "data" / "mnist_sample.npz"
SHIPPED = Path(__file__).parents[1] / "models" / "mnist-cnn"


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    with np.load(SAMPLE) as data:
        return data["x"], data["y"]


def writers(style: str, count: int = 200) -> list[Writer]:
    rng = np.random.default_rng(4)
    return [draw_writer(style, rng) for _ in range(count)]


def stroke_width(ink: np.ndarray) -> float:
    """Twice the median distance from the centre line to the paper: the pen's width in pixels."""
    mask = (ink > 0.5).astype(np.uint8)
    distance = cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    return float(2 * np.median(distance[skeleton(mask > 0)]))


def test_each_style_draws_its_trait_across_its_range() -> None:
    aspects = [writer.aspect for writer in writers("stretched")]
    assert 0.5 <= min(aspects) < 0.6 and 1.7 < max(aspects) <= 2.0
    assert all(0.25 <= writer.pen_width <= 0.35 and writer.pen == "marker" for writer in writers("marker"))
    assert all(writer.pen_width <= 0.03 for writer in writers("hairline"))
    slants = [writer.slant_deg for writer in writers("slant")]
    assert all(slant is not None and -25 <= slant <= 30 for slant in slants)
    assert min(s for s in slants if s is not None) < -20 and max(s for s in slants if s is not None) > 25
    coarse = writers("coarse")
    assert {writer.grid for writer in coarse} == set(GRIDS)
    assert {writer.grey_levels for writer in coarse} == set(GREY_LEVELS)
    # A style changes its own trait alone; mixed writers combine several.
    assert all(
        writer.aspect == 1.0 and writer.grid is None and writer.slant_deg is None for writer in writers("marker")
    )
    mixed = writers("mixed")
    assert any(w.aspect != 1.0 and w.slant_deg is not None and w.pen != "plain" for w in mixed)
    with pytest.raises(ValueError, match="cursive"):
        draw_writer("cursive", np.random.default_rng(0))


@pytest.mark.parametrize("style", STYLES)
def test_drawing_is_deterministic_with_a_seed(sample, style: str) -> None:
    def drawn(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return compose_styled_number(sample[0][:4], draw_writer(style, rng), rng)[0]

    assert np.array_equal(drawn(5), drawn(5))
    assert not np.array_equal(drawn(5), drawn(6))


def test_pens_draw_strokes_of_their_width(sample) -> None:
    digit = sample[0][0]  # a 1: a marker closes no loops in it
    plain = Writer(height_px=64)
    for pen, share in (("marker", 0.3), ("plain", 0.12), ("hairline", 0.02)):
        ink = draw_digit(digit, replace(plain, pen=pen, pen_width=share), np.random.default_rng(0))
        assert stroke_width(ink) == pytest.approx(share * ink.shape[0], abs=2.5), pen


def holes(ink: np.ndarray) -> int:
    """How many closed loops of paper the ink encloses."""
    paper = np.pad(ink < 0.5, 1, constant_values=True).astype(np.uint8)
    return cv2.connectedComponents(paper, connectivity=4)[0] - 2  # less the label of the ink and the outer paper


def test_a_marker_too_wide_for_a_loop_leaves_it_open(sample) -> None:
    digits, labels = sample
    looped = [digit for digit in digits[np.isin(labels, (0, 6, 8, 9))][:40] if holes(digit > 128)]
    thick = Writer(height_px=64, pen="marker", pen_width=0.35)
    kept = [holes(draw_digit(digit, thick, np.random.default_rng(0))) >= 1 for digit in looped]
    assert len(looped) >= 20 and np.mean(kept) >= 0.9


def test_stretching_changes_the_shape_not_the_pen(sample) -> None:
    digit = sample[0][0]
    rng = np.random.default_rng(0)
    ratio = {}
    for aspect in (0.5, 1.0, 2.0):
        ink = draw_digit(digit, Writer(height_px=64, aspect=aspect), rng)
        ratio[aspect] = ink.shape[1] / ink.shape[0]
        assert stroke_width(ink) == pytest.approx(0.12 * 64, abs=2.5)
    assert ratio[2.0] / ratio[1.0] > 1.6 and ratio[0.5] / ratio[1.0] < 0.65


def test_slant_sets_the_digits_lean(sample) -> None:
    for digit in sample[0][:5]:
        for slant in (-25.0, 0.0, 30.0):
            ink = draw_digit(digit, Writer(height_px=64, slant_deg=slant), np.random.default_rng(0))
            # The moments' shear of the drawn digit: the top leaning right is a negative x-y covariance.
            assert -styles._own_shear(ink) == pytest.approx(np.tan(np.deg2rad(slant)), abs=0.2)


def test_ballpoint_skips_leave_faint_gaps(sample) -> None:
    def faint_share_and_ink(pen: str) -> tuple[float, float]:
        ink = draw_digit(sample[0][1], Writer(height_px=64, pen=pen, pen_width=0.1), np.random.default_rng(0))
        stroke = ink[ink > 0.02]
        return float(np.mean(stroke < 0.4)), float(ink.sum())

    plain_faint, plain_ink = faint_share_and_ink("plain")
    skipping_faint, skipping_ink = faint_share_and_ink("ballpoint")
    assert skipping_faint > plain_faint + 0.05  # parts of the stroke faint or missing...
    assert skipping_ink > 0.6 * plain_ink  # ...most of it inked


def test_coarse_capture_is_blocky_with_few_grey_levels(sample) -> None:
    for grid, levels in ((16, 16), 2), ((15, 16), 7):
        writer = Writer(height_px=64, grid=grid, grey_levels=levels)
        ink = draw_digit(sample[0][2], writer, np.random.default_rng(0))
        assert len(np.unique(ink)) <= levels
        block = round(64 / 16)
        assert ink.shape[0] <= 16 * block and ink.shape[1] <= grid[0] * block
        # Every pixel of a block has its cell's value: shrinking to cells and back changes nothing.
        full = np.pad(ink, ((0, -ink.shape[0] % block), (0, -ink.shape[1] % block)))
        cells = full[::block, ::block]
        assert np.array_equal(np.kron(cells, np.ones((block, block), np.float32)), full)


def test_a_number_is_its_digits_in_a_row(sample) -> None:
    rng = np.random.default_rng(3)
    writer = Writer(height_px=40)
    ink, owned = compose_styled_number(sample[0][:5], writer, rng)
    assert ink.dtype == np.float32 and ink.min() >= 0 and ink.max() <= 1
    rows = np.flatnonzero(ink.max(axis=1) > 0.5)
    columns = np.flatnonzero(ink.max(axis=0) > 0.5)
    # One line of writing about the writer's height, five digits wide.
    assert 35 <= rows[-1] - rows[0] <= 40 * 1.5 and columns[-1] - columns[0] > 5 * 40 * 0.4
    # Each digit's ink lies in its own columns of the page, left to right, and no ink is owned by none.
    assert owned.shape == (5, ink.shape[1])
    starts = [int(np.flatnonzero(digit)[0]) for digit in owned]
    assert starts == sorted(starts) and starts[0] == columns[0]
    assert np.array_equal(owned.sum(axis=0) > 0, ink.sum(axis=0) > 0)


def test_styled_digits_are_read_as_their_labels(sample) -> None:
    images, labels, style_of = styled_digits(*sample, np.random.default_rng(0), per_style=40)
    assert images.shape == (len(labels), 28, 28) and images.dtype == np.float32
    assert len(labels) >= 0.95 * 40 * len(STYLES) and set(style_of) == set(range(len(STYLES)))
    read = load_classifier(SHIPPED).probabilities(images).argmax(axis=1)
    assert np.mean(read == labels) >= 0.85  # the images are in step with their labels
