"""Normalisation of synthetic scans: every format, polarity, lighting and dirt gives the same MNIST-style digit."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from watcher.vision.fit import fit_digit
from watcher.vision.normalise import WORK_SIDE, ink_map, normalise
from watcher.vision.paper import _erase_ruled_lines

SAMPLE = Path(__file__).parent / "data" / "mnist_sample.npz"


@pytest.fixture(scope="module")
def digit() -> np.ndarray:
    """A crisp MNIST '3' (ink bright on black), as 28x28 uint8."""
    with np.load(SAMPLE) as data:
        return data["x"][np.flatnonzero(data["y"] == 3)[0]]


def page(digit: np.ndarray, *, side: int = 200, at: tuple[int, int] = (40, 50), height: int = 80) -> np.ndarray:
    """Float page in [0, 1]: white paper with the digit written in black ink, its top-left at `at`."""
    ink = cv2.resize(digit.astype(np.float32) / 255, (height, height), interpolation=cv2.INTER_CUBIC)
    paper = np.ones((side, side), np.float32)
    top, left = at
    paper[top : top + height, left : left + height] -= np.clip(ink, 0, 1) * 0.9
    return paper


def similarity(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.corrcoef(first.ravel(), second.ravel())[0, 1])


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def test_output_is_mnist_layout(digit: np.ndarray) -> None:
    result = normalise(to_uint8(page(digit)))
    assert result.shape == (28, 28) and result.dtype == np.float32
    assert result.min() >= 0.0 and 0.9 < result.max() <= 1.0
    assert result[0].max() == 0 and result[:, 0].max() == 0  # ink bright on a black margin
    rows, cols = np.nonzero(result > 0.05)
    assert 18 <= max(np.ptp(rows), np.ptp(cols)) + 1 <= 22  # longer side scaled to about 20 px
    moments = cv2.moments(result)
    assert moments["m10"] / moments["m00"] == pytest.approx(13.5, abs=0.6)
    assert moments["m01"] / moments["m00"] == pytest.approx(13.5, abs=0.6)


def test_mnist_digit_passes_through_nearly_unchanged(digit: np.ndarray) -> None:
    assert similarity(normalise(digit), digit.astype(np.float32)) > 0.85


def test_polarity_is_detected_both_ways(digit: np.ndarray) -> None:
    dark_on_light = normalise(to_uint8(page(digit)))
    light_on_dark = normalise(to_uint8(1 - page(digit)))
    assert similarity(dark_on_light, light_on_dark) > 0.98


def test_sixteen_bit_matches_eight_bit(digit: np.ndarray) -> None:
    eight = normalise(to_uint8(page(digit)))
    sixteen = normalise(np.round(page(digit) * 65535).astype(np.uint16))
    assert similarity(eight, sixteen) > 0.99


def test_rgba_with_transparent_background(digit: np.ndarray) -> None:
    coverage = 1 - page(digit)
    bgra = np.zeros((*coverage.shape, 4), np.uint8)
    bgra[:, :, 0] = 120  # dark blue ink; the transparent pixels' colour must not matter
    bgra[:, :, 3] = to_uint8(coverage)
    assert similarity(normalise(bgra), normalise(to_uint8(page(digit)))) > 0.97


def test_colour_and_palette_images(digit: np.ndarray) -> None:
    grey = page(digit)
    coloured = np.dstack([grey * 0.9, grey * 0.95, np.ones_like(grey) * 0.95])  # red-ish ink, cream paper
    palette = np.round(coloured * 4) / 4  # five levels per channel, as a palette PNG decodes
    reference = normalise(to_uint8(grey))
    assert similarity(normalise(to_uint8(coloured)), reference) > 0.95
    assert similarity(normalise(to_uint8(palette)), reference) > 0.9


def test_off_centre_digit_is_centred(digit: np.ndarray) -> None:
    corner = normalise(to_uint8(page(digit, at=(115, 5))))
    middle = normalise(to_uint8(page(digit, at=(60, 60))))
    assert similarity(corner, middle) > 0.98


def test_huge_canvas_is_worked_on_shrunk_and_found(digit: np.ndarray) -> None:
    huge = to_uint8(page(digit, side=4000, at=(1000, 1500), height=1600))
    # Its cost is measured in bench/normalise_cost.py; here, that the work happens at the working side.
    assert max(ink_map(huge).shape) == WORK_SIDE
    assert similarity(normalise(huge), normalise(to_uint8(page(digit)))) > 0.9


@pytest.mark.parametrize(
    "blank",
    [
        np.full((300, 200), 235, np.uint8),
        np.clip(np.random.default_rng(0).normal(200, 12, (300, 300)), 0, 255).astype(np.uint8),
        np.tile(np.linspace(90, 250, 400, dtype=np.float32), (300, 1)).astype(np.uint8),
        np.full((50, 50, 4), 0, np.uint8),  # fully transparent
        np.full((28, 28), 65535, np.uint16),
    ],
    ids=["plain", "noise", "gradient", "transparent", "white-16bit"],
)
def test_blank_pages_hold_no_digit(blank: np.ndarray) -> None:
    assert normalise(blank) is None


def test_single_speck_is_no_digit() -> None:
    speck = np.full((200, 200), 240, np.uint8)
    cv2.circle(speck, (60, 130), 2, 20, -1)
    assert normalise(speck) is None


def test_uneven_lighting_is_removed(digit: np.ndarray) -> None:
    light = np.tile(np.linspace(0.45, 1.0, 200, dtype=np.float32), (200, 1))
    shaded = page(digit) * light
    assert similarity(normalise(to_uint8(shaded)), normalise(to_uint8(page(digit)))) > 0.95
    cleaned = ink_map(to_uint8(shaded))
    assert cleaned[:, :40].max() == 0 and cleaned[:, -40:].max() == 0  # the shadow itself is not ink


def test_a_narrow_cell_with_dark_sides_keeps_its_paper_as_paper(digit: np.ndarray) -> None:
    """A register's cell as it is cut from a page scan: tall and narrow, what is left of the scanner's margin
    shading down one side, the cell's wall down the other. Its outermost ring is mostly those two sides; taken for
    the paper's tone, the paper itself looked like light ink, and the writing came out as a hole in a smear."""
    rng = np.random.default_rng(0)
    cell = np.full((236, 79), 0.99, np.float32)
    cell[:, :12] = np.linspace(0.8, 0.97, 12)[None, :]
    cell[:, -6:] = 0.83
    written = cv2.resize(digit.astype(np.float32) / 255, (40, 40))
    cell[100:140, 20:60] = np.minimum(cell[100:140, 20:60], 1 - 0.7 * written)
    ink = ink_map(to_uint8(np.clip(cell + rng.normal(0, 0.01, cell.shape), 0, 1)))
    assert (ink > 0.1).mean() < 0.02, "the paper is not ink"
    assert (ink[100:140, 20:60][written > 0.5] > 0.1).mean() > 0.95, "the writing is"


def test_noise_specks_and_scanner_edge_are_removed(digit: np.ndarray) -> None:
    dirty = page(digit) + np.random.default_rng(1).normal(0, 0.05, (200, 200)).astype(np.float32)
    dirty[:, :5] = 0.1  # scanner shadow along the left edge
    for x, y in ((20, 20), (180, 30), (170, 185)):
        cv2.circle(dirty, (x, y), 2, 0.1, -1)
    assert similarity(normalise(to_uint8(dirty)), normalise(to_uint8(page(digit)))) > 0.95


@pytest.mark.parametrize("touching", [False, True])
def test_a_box_around_the_digit_is_removed(digit: np.ndarray, touching: bool) -> None:
    boxed = page(digit)
    # The digit's ink spans rows 49 to 105: a box from row 55 crosses it.
    top_left, bottom_right = ((40, 55), (170, 185)) if touching else ((20, 20), (180, 180))
    cv2.rectangle(boxed, top_left, bottom_right, 0.2, 2)
    assert similarity(normalise(to_uint8(boxed)), normalise(to_uint8(page(digit)))) > 0.98


def test_a_line_under_the_digit_is_removed(digit: np.ndarray) -> None:
    underlined = page(digit)
    cv2.line(underlined, (55, 113), (120, 114), 0.1, 3)  # close under the digit, whose ink ends at row 105
    assert similarity(normalise(to_uint8(underlined)), normalise(to_uint8(page(digit)))) > 0.98


def test_ruled_paper_lines_are_removed(digit: np.ndarray) -> None:
    ruled = page(digit)
    for row in range(25, 200, 40):  # rows 65 and 105 cross the digit
        cv2.line(ruled, (0, row), (199, row), 0.45, 2)
    assert similarity(normalise(to_uint8(ruled)), normalise(to_uint8(page(digit)))) > 0.95


def test_long_thick_bars_are_strokes_not_ruled_lines() -> None:
    strokes = np.zeros((100, 80), bool)
    strokes[2:12] = strokes[88:98] = True  # the bars of a 2 drawn squarely to the edges of its crop, broad pen
    assert np.array_equal(_erase_ruled_lines(strokes), strokes)
    strokes[40] = strokes[70] = True  # two thin lines across: ruled paper
    assert np.array_equal(
        _erase_ruled_lines(strokes)[[2, 11, 40, 70, 88]].all(axis=1), [True, True, False, False, True]
    )


def test_a_square_digit_drawn_with_a_broad_pen_is_not_a_box() -> None:
    eight = np.ones((120, 120), np.float32)
    cv2.rectangle(eight, (20, 15), (100, 105), 0.1, 12)  # an 8 drawn squarely with a broad pen
    cv2.line(eight, (20, 60), (100, 60), 0.1, 12)
    ink = ink_map(to_uint8(eight))
    assert (
        (ink[:30] > 0.5).any() and (ink[-30:] > 0.5).any() and (ink[:, :30] > 0.5).any() and (ink[:, -30:] > 0.5).any()
    )


def test_an_empty_box_holds_no_digit() -> None:
    """Thin straight printed lines with nothing else are no writing (a 0 is neither that thin nor that straight)."""
    box = np.ones((100, 100), np.float32)
    cv2.rectangle(box, (15, 15), (85, 85), 0.1, 2)
    assert normalise(to_uint8(box)) is None


def test_broken_strokes_stay_together(digit: np.ndarray) -> None:
    broken = page(digit)
    broken[:, 88:92] = 1.0  # a vertical gap cutting the digit in two
    result = normalise(to_uint8(broken))
    _rows, cols = np.nonzero(result > 0.05)
    assert np.ptp(cols) + 1 >= 14  # both halves are kept, not just the larger one


def test_fit_digit_takes_an_ink_map(digit: np.ndarray) -> None:
    cleaned = ink_map(to_uint8(page(digit)))
    assert cleaned.dtype == np.float32 and cleaned.shape == (200, 200)
    assert cleaned[:30].max() == 0 and cleaned[40:120, 50:130].max() == pytest.approx(1.0)
    assert np.array_equal(fit_digit(cleaned), normalise(to_uint8(page(digit))))


def test_fit_digit_of_a_blank_map_is_blank() -> None:
    blank = fit_digit(np.zeros((50, 40), np.float32))
    assert blank.shape == (28, 28) and blank.dtype == np.float32 and not blank.any()


def test_a_stroke_faint_where_the_pen_skipped_stays_whole() -> None:
    """A ring drawn with a quarter of it at a quarter of the ink, and a faint mark apart from it."""
    paper = np.full((200, 200), 255, np.uint8)
    cv2.circle(paper, (100, 100), 50, 0, 8)
    faint = np.zeros((200, 200), np.uint8)
    cv2.ellipse(faint, (100, 100), (50, 50), 0, 0, 90, 1, 8)
    paper[faint > 0] = 190
    cv2.circle(paper, (170, 30), 6, 190, -1)
    ink = ink_map(paper)
    assert np.mean(ink[faint > 0] > 0) > 0.8  # the skipped quarter is kept with the ring...
    assert ink[24:37, 164:177].max() == 0  # ...a mark as faint, touching nothing, is not


def test_a_digit_written_faint_beside_a_strong_one_is_kept_whole() -> None:
    """A pen running dry down the second digit: its ink reaches the strokes' level only in a few specks. Judged
    as specks before the faint ink around them was joined, they were dropped, and the digit with them."""
    with np.load(SAMPLE) as data:
        threes = data["x"][np.flatnonzero(data["y"] == 3)[:4]]
    fade = np.linspace(0.3, 0.5, 80, dtype=np.float32)[:, np.newaxis]
    for three in threes:
        strong = np.clip(cv2.resize(three, (80, 80), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255, 0, 1)
        paper = np.ones((120, 220), np.float32)
        paper[20:100, 20:100] -= strong * 0.9
        paper[20:100, 120:200] -= strong * 0.9 * fade
        ink = ink_map(to_uint8(paper))
        assert (ink[20:100, 120:200][strong > 0.5] > 0).mean() > 0.9


@pytest.mark.parametrize("print_", ["rule", "ticks"])
def test_a_thin_pens_writing_beside_heavy_print_is_held_to_its_own_level_not_the_prints(print_: str) -> None:
    """A hairline's pale digits above a heavy printed rule across the field, or a comb's ticks: the strokes were
    held to the level of the darkest ink, the print's, and the writing was dropped but for a few specks. Print
    running off the crop no longer sets the level, and the digits stay whole."""
    with np.load(SAMPLE) as data:
        digits = data["x"][:3]
    paper = np.full((110, 300), 0.85, np.float32)
    written = np.zeros_like(paper)
    for index, digit in enumerate(digits):
        thin = cv2.erode(cv2.resize(digit, (56, 56), interpolation=cv2.INTER_CUBIC), np.ones((3, 3), np.uint8))
        written[15:71, 40 + 70 * index : 96 + 70 * index] = thin.astype(np.float32) / 255
    paper -= written * 0.3  # a hairline pen's grey
    if print_ == "rule":
        paper[94:99, :] = 0.05
    else:
        for left in range(10, 300, 40):
            paper[82:, left : left + 7] = 0.05
    ink = ink_map(to_uint8(paper))
    assert (ink[written > 0.5] > 0.3).mean() > 0.9


@pytest.mark.parametrize("side", [16, 28])
def test_a_digit_cut_tight_to_its_edges_is_read_as_on_more_paper(side: int) -> None:
    """A small image whose digit reaches its edges, as USPS stretches its digits to their box: its strokes' edges
    once passed for the paper's noise, and most such digits came out blank."""
    with np.load(SAMPLE) as data:
        digits = data["x"][:40]
    similarities = []
    for digit in digits:
        rows, cols = np.nonzero(digit > 40)
        box = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        tight = 255 - cv2.resize(box, (side, side), interpolation=cv2.INTER_AREA)
        on_paper = np.pad(tight, side, constant_values=255)
        read_tight, read_on_paper = normalise(tight), normalise(on_paper)
        assert read_tight is not None and read_on_paper is not None
        similarities.append(similarity(read_tight, read_on_paper))
        assert ink_map(tight).shape == tight.shape
    # Read as the same digit on paper: nearly all alike, none far off.
    assert np.median(similarities) > 0.99 and min(similarities) > 0.8
