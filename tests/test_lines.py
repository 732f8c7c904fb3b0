"""Register cells and field crops carrying printed lines, a grid, a full stop or a dark band: the writing is read
as it would be without them, and a cell holding only lines holds no digit."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from watcher.ledger.record import Reading
from watcher.model.classify import Classifier, load_classifier
from watcher.recognise import Prepared, read
from watcher.vision.digits import page_digits
from watcher.vision.lines import erase_lines
from watcher.vision.normalise import ink_map
from watcher.vocabulary import Status

SAMPLE = Path(__file__).parent / "data" / "mnist_sample.npz"
MODEL = Path(__file__).resolve().parents[1] / "models" / "mnist-cnn"
HEIGHT = 60  # the digit's height in the cell, in px
MARGIN = 20  # the cell's margin around it


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    with np.load(SAMPLE) as data:
        return data["x"], data["y"]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return load_classifier(MODEL)


def first_of(sample: tuple[np.ndarray, np.ndarray], label: int) -> np.ndarray:
    digits, labels = sample
    return digits[np.flatnonzero(labels == label)[0]]


def cell(digit: np.ndarray | None, *, height: int = HEIGHT, margin: int = MARGIN) -> np.ndarray:
    """uint8 grey: white paper with the digit (cropped to its ink, `height` px tall) written in black, or blank."""
    side = height + 2 * margin
    page = np.full((side, side), 255, np.uint8)
    if digit is None:
        return page
    rows, columns = np.nonzero(digit)
    tight = digit[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1].astype(np.float32) / 255
    scale = height / tight.shape[0]
    ink = np.clip((cv2.resize(tight, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) - 0.3) * 4, 0, 1)
    h, w = ink.shape
    left = (side - w) // 2
    page[margin : margin + h, left : left + w] = np.round(255 * (1 - 0.9 * ink)).astype(np.uint8)
    return page


def ink_columns(page: np.ndarray) -> tuple[int, int]:
    """The first and last column holding the writing's ink (dark pixels)."""
    columns = np.flatnonzero((page < 128).any(axis=0))
    return int(columns[0]), int(columns[-1])


def line(page: np.ndarray, start: tuple[int, int], end: tuple[int, int], *, grey: int = 90, px: int = 2) -> np.ndarray:
    drawn = page.copy()
    cv2.line(drawn, start, end, grey, px, cv2.LINE_AA)
    return drawn


def grid(page: np.ndarray, *, tilt_px: int = 0) -> np.ndarray:
    """A table's cell: four lines at the crop's edges, running through to them, tilted by `tilt_px` across."""
    last = page.shape[0] - 1
    for offset in (1, last - 1):
        page = line(page, (0, offset), (last, offset + tilt_px))
        page = line(page, (offset + tilt_px, 0), (offset, last))
    return page


def reading(page: np.ndarray, classifier: Classifier) -> Reading:
    ((reading,),) = read([Prepared.one_page(page_digits(page, mode="auto"))], classifier, review_below=None)
    return reading


@pytest.mark.parametrize(("side", "gap"), [("left", 0), ("left", 4), ("right", 0), ("right", 4)])
def test_a_column_line_beside_a_3_reads_3(
    sample: tuple[np.ndarray, np.ndarray], classifier: Classifier, side: str, gap: int
) -> None:
    page = cell(first_of(sample, 3))
    left, right = ink_columns(page)
    x = left - gap - 1 if side == "left" else right + gap + 1
    assert reading(line(page, (x, 0), (x, page.shape[0] - 1)), classifier).prediction == "3"


def test_a_column_line_beside_digits_leaves_their_readings(
    sample: tuple[np.ndarray, np.ndarray], classifier: Classifier
) -> None:
    digits, labels = sample
    right = 0
    for index in range(0, 200, 10):
        page = cell(digits[index])
        left, right = ink_columns(page)
        x = right + 3 if index % 20 else left - 3
        right += reading(line(page, (x, 0), (x + 3, page.shape[0] - 1)), classifier).prediction == str(labels[index])
    assert right >= 19  # before lines were cleared: 8


@pytest.mark.parametrize("tilt_px", [0, 5])
def test_a_cell_holding_only_a_line_or_a_grid_holds_no_digit(classifier: Classifier, tilt_px: int) -> None:
    blank = cell(None)
    last = blank.shape[0] - 1
    assert reading(line(blank, (40, 0), (40 + tilt_px, last)), classifier).status == Status.NO_DIGIT
    assert reading(line(blank, (0, 70), (last, 70 - tilt_px)), classifier).status == Status.NO_DIGIT
    assert reading(grid(blank, tilt_px=tilt_px), classifier).status == Status.NO_DIGIT


@pytest.mark.parametrize("tilt_px", [0, 4])
def test_a_digit_in_a_table_grid_reads_as_without_it(
    sample: tuple[np.ndarray, np.ndarray], classifier: Classifier, tilt_px: int
) -> None:
    for label in (1, 4, 5, 7):
        assert reading(grid(cell(first_of(sample, label)), tilt_px=tilt_px), classifier).prediction == str(label)


def test_a_small_digit_in_a_large_gridded_cell_is_found(
    sample: tuple[np.ndarray, np.ndarray], classifier: Classifier
) -> None:
    page = grid(cell(first_of(sample, 2), height=20, margin=70))
    assert reading(page, classifier).prediction == "2"


def ruled_through(page: np.ndarray) -> np.ndarray:
    """A ruled line across the cell through the middle of the writing, a little tilted."""
    middle = MARGIN + HEIGHT // 2
    return line(page, (0, middle), (page.shape[1] - 1, middle + 2))


def test_a_line_through_a_digit_keeps_the_strokes_that_cross_it(
    sample: tuple[np.ndarray, np.ndarray], classifier: Classifier
) -> None:
    for label in (0, 3):
        assert reading(ruled_through(cell(first_of(sample, label))), classifier).prediction == str(label)
    # The 0's sides still cross the line's rows: its ink is not cut in two.
    middle = MARGIN + HEIGHT // 2
    assert ink_map(ruled_through(cell(first_of(sample, 0))))[middle : middle + 3].any(axis=1).all()


def test_a_full_stop_after_a_7_is_not_read(sample: tuple[np.ndarray, np.ndarray], classifier: Classifier) -> None:
    page = cell(first_of(sample, 7))
    _, right = ink_columns(page)
    cv2.circle(page, (right + 8, MARGIN + HEIGHT - 4), 4, 0, -1, cv2.LINE_AA)
    assert reading(page, classifier).prediction == "7"


def test_a_dark_band_along_an_edge_is_ignored(sample: tuple[np.ndarray, np.ndarray], classifier: Classifier) -> None:
    page = cell(first_of(sample, 5))
    page[:, :8] = 20  # where the scan was cut: as dark as the pen, 8 % of the cell wide
    assert reading(page, classifier).prediction == "5"


def test_a_lone_upright_stroke_that_stops_short_of_the_edges_stays_ink() -> None:
    """A 1 is straight and long, but thicker than a printed line and with paper above and below it."""
    strokes = np.zeros((100, 100), bool)
    strokes[10:90, 47:55] = True
    assert np.array_equal(erase_lines(strokes, faint=strokes), strokes)


def test_a_thin_pens_1_as_tall_as_its_number_stays_though_it_ends_near_the_edges() -> None:
    """A sheet's writing cut out with a margin of 30 % of its height: a 1 written with a thin pen, as tall as the
    digits beside it, runs to within a fifth of the crop's top and bottom. It is the number's, not a line off the
    page; a column line between the same digits, running on through the edges, is printed."""
    strokes = np.zeros((154, 330), bool)
    strokes[38:125, 31:120] = cv2.circle(np.zeros((87, 89), np.uint8), (44, 43), 38, 1, 12).astype(bool)  # a 0
    strokes[38:125, 206:298] = cv2.circle(np.zeros((87, 92), np.uint8), (46, 43), 38, 1, 12).astype(bool)
    strokes[28:126, 158:163] = True  # the 1: 5 px thick, 98 tall, 28 px from the top and the bottom
    assert np.array_equal(erase_lines(strokes, faint=strokes), strokes)
    column = strokes.copy()
    column[:, 158:163] = True  # a column line through the crop
    assert not erase_lines(column, faint=column)[10:-10, 158:163].any()


def test_a_lone_line_cut_with_its_cell_from_edge_to_edge_is_printed_though_a_stroke_as_thick_would_stay() -> None:
    # A column line left in a cell's crop, blurred by the scan to 7 px in 90: it runs right to both edges.
    strokes = np.zeros((90, 70), bool)
    strokes[:, 30:37] = True
    assert not erase_lines(strokes, faint=strokes).any()
    # The same stroke stopping a few pixels short of the edges is a 1.
    short = np.zeros((90, 70), bool)
    short[5:85, 30:37] = True
    assert np.array_equal(erase_lines(short, faint=short), short)


def test_a_printed_line_is_cleared_but_where_a_stroke_meets_it() -> None:
    strokes = np.zeros((100, 100), bool)
    strokes[50:52, :] = True  # the printed line, edge to edge
    strokes[10:90, 30:40] = True  # a pen stroke crossing it
    strokes[20:50, 60:66] = True  # a stroke ending on it from above
    erased = erase_lines(strokes, faint=strokes)
    assert erased[10:90, 30:40].all()  # the crossing stays: the stroke is not cut in two
    assert erased[20:50, 60:66].all()
    assert not erased[50:52, :29].any() and not erased[50:52, 41:59].any() and not erased[50:52, 67:].any()
