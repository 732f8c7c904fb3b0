"""The sheet finder: a number written small on a whole page is found and cropped at full resolution."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from watcher.intake.decode import decode
from watcher.vision.pieces import as_mask, components
from watcher.vision.sheet import (
    MARGIN,
    READ_SIDE,
    REDUCED_SIDE,
    _page_components,
    _thickness,
    reduced_copy,
    sheet_crops,
)

A4_MM = (297.0, 210.0)
NUMBER = "427"
HEIGHT_MM = 10.0


def blank_a4(dpi: int) -> np.ndarray:
    """A white A4 page, portrait, at `dpi`."""
    return np.full((round(A4_MM[0] * dpi / 25.4), round(A4_MM[1] * dpi / 25.4)), 245, np.uint8)


def write(page: np.ndarray, *, dpi: int, left_mm: float, baseline_mm: float) -> tuple[int, int]:
    """Draw NUMBER HEIGHT_MM tall with its baseline at `baseline_mm`; its (width, height) in px."""
    per_mm = dpi / 25.4
    thickness = max(1, round(0.8 * per_mm))
    (width, height), _ = cv2.getTextSize(NUMBER, cv2.FONT_HERSHEY_SIMPLEX, 1.0, thickness)
    scale = HEIGHT_MM * per_mm / height
    origin = (round(left_mm * per_mm), round(baseline_mm * per_mm))
    cv2.putText(page, NUMBER, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, 20, thickness, cv2.LINE_AA)
    return round(width * scale), round(height * scale)


@pytest.mark.parametrize("dpi", [150, 300, 600])
def test_a_number_on_a_blank_sheet_is_cropped_to_about_its_size(dpi: int) -> None:
    page = blank_a4(dpi)
    width, height = write(page, dpi=dpi, left_mm=120, baseline_mm=200)
    crops = sheet_crops(page)
    assert crops is not None and len(crops) == 1
    crop = crops[0]
    assert crop.shape[0] == pytest.approx(height * (1 + 2 * MARGIN), rel=0.25)
    assert crop.shape[1] == pytest.approx(width + 2 * MARGIN * height, rel=0.25)
    assert crop.min() < 100  # the strokes came along, at full resolution


@pytest.mark.parametrize(("dpi", "factor"), [(150, 2), (200, 3), (300, 4), (600, 9)])
def test_a_grey_page_is_reduced_by_the_nearest_whole_factor(dpi: int, factor: int) -> None:
    page = blank_a4(dpi)
    write(page, dpi=dpi, left_mm=120, baseline_mm=200)
    small, reduction = reduced_copy(page)
    assert reduction.factor == factor
    assert small.shape == (page.shape[0] // factor, page.shape[1] // factor)
    # Each pixel of the copy is the mean of its block of the page's, rounded.
    block = page[factor : 2 * factor, factor : 2 * factor].astype(float).mean()
    assert abs(int(small[1, 1]) - block) <= 0.5
    row = round(200 * dpi / 25.4)
    assert reduction.to_copy(np.array([row])) == [row // factor]
    assert reduction.to_page(row // factor) == row // factor * factor


def test_a_bilevel_page_at_its_own_size_is_reduced_by_fractional_areas() -> None:
    page = blank_a4(300)
    write(page, dpi=300, left_mm=120, baseline_mm=200)
    page = np.where(page < 128, 0, 255).astype(np.uint8)
    small, reduction = reduced_copy(page)
    assert reduction.factor == 0
    assert max(small.shape) == REDUCED_SIDE
    # Halved, as the daemon decodes a 300-dpi page it reads as a sheet, its strokes' edges hold more levels.
    halved = cv2.resize(page, (page.shape[1] // 2, page.shape[0] // 2), interpolation=cv2.INTER_AREA)
    assert reduced_copy(halved)[1].factor == 2


def test_a_bilevel_scan_with_a_few_greys_is_reduced_by_fractional_areas_when_said_to_be_one() -> None:
    page = blank_a4(200)
    write(page, dpi=200, left_mm=120, baseline_mm=200)
    page = np.where(page < 128, 0, 255).astype(np.uint8)
    page[::50, ::50] = 128  # where PDFium's drawing resampled it
    assert reduced_copy(page)[1].factor == 3
    small, reduction = reduced_copy(page, bilevel=True)
    assert reduction.factor == 0 and max(small.shape) == REDUCED_SIDE


def test_a_page_under_one_and_a_half_times_the_copy_is_reduced_by_fractional_areas() -> None:
    page = blank_a4(100)  # 1169 px long
    small, reduction = reduced_copy(page)
    assert reduction.factor == 0
    assert max(small.shape) == REDUCED_SIDE


@pytest.mark.parametrize(("top", "left"), [(0, 0), (301, 467), (300, 468)])
def test_a_pages_pieces_labelled_within_the_inks_box_are_the_whole_pages(top: int, left: int) -> None:
    mask = np.zeros((877, 620), np.uint8)
    rng = np.random.default_rng(top)
    mask[top : top + 140, left : left + 120] = rng.random((140, 120)) < 0.3
    mask[top + 10 : top + 12, left : left + 120] = 1
    _, labels, stats = components(as_mask(mask.astype(bool)))
    boxed_labels, boxed_stats = _page_components(mask)
    assert np.array_equal(boxed_labels, labels)
    assert np.array_equal(boxed_stats[1:], stats[1:])


@pytest.mark.parametrize("seed", range(5))
def test_the_inks_thickness_measured_around_its_box_is_the_whole_pages(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ink = np.zeros((120, 90), bool)
    top, left = rng.integers(0, 81), rng.integers(0, 61)  # against the page's edges too
    ink[top : top + 40, left : left + 30] = rng.random((40, 30)) < 0.8
    ink[top + 5 : top + 25, left + 5 : left + 25] = True  # a blot, thick in its middle
    whole = 2 * cv2.distanceTransform(as_mask(ink), cv2.DIST_L2, 3)
    # The same distances, but for float rounding (OpenCV sums the steps of a path in another order).
    assert np.allclose(_thickness(ink), whole, rtol=1e-6, atol=0)
    assert not _thickness(np.zeros((20, 30), bool)).any()


@pytest.mark.parametrize(("dpi", "factor", "kind"), [(300, 2, ".jpg"), (600, 2, ".jpg"), (300, 2, ".png")])
def test_a_sheet_decoded_reduced_is_cropped_to_the_same_writing(dpi: int, factor: int, kind: str) -> None:
    page = blank_a4(dpi)
    write(page, dpi=dpi, left_mm=120, baseline_mm=200)
    data = cv2.imencode(kind, page, [cv2.IMWRITE_JPEG_QUALITY, 90] if kind == ".jpg" else [])[1].tobytes()
    full = decode(data, name="sheet" + kind, max_pixels=10**8)
    reduced = decode(data, name="sheet" + kind, max_pixels=10**8, least_side=READ_SIDE)
    assert reduced.shape == tuple(-(-side // factor) for side in full.shape)
    assert max(reduced.shape) >= READ_SIDE
    crops, reduced_crops = sheet_crops(full), sheet_crops(reduced)
    assert crops is not None and reduced_crops is not None and len(crops) == len(reduced_crops) == 1
    whole, small = crops[0], reduced_crops[0]
    # The same box, a factor smaller: within a pixel or two of the reduced copy's rounding (at 2.7 px per mm).
    assert small.shape == pytest.approx(np.array(whole.shape) / factor, abs=2 * dpi / 25.4 / 2.7 / factor + 1)
    # ...holding the same strokes.
    shrunk = cv2.resize(whole, small.shape[::-1], interpolation=cv2.INTER_AREA)
    assert small.min() < 100
    assert np.abs(shrunk.astype(int) - small).mean() < 8


def test_a_ruled_sheets_lines_are_not_in_the_crop() -> None:
    dpi = 300
    page = blank_a4(dpi)
    per_mm = dpi / 25.4
    for y_mm in np.arange(20.0, 290.0, 8.0):
        y = round(y_mm * per_mm)
        cv2.line(page, (0, y), (page.shape[1] - 1, y), 170, max(1, round(0.25 * per_mm)))
    write(page, dpi=dpi, left_mm=60, baseline_mm=20 + 8 * 20)  # written on a line, as on ruled paper
    crops = sheet_crops(page)
    assert crops is not None and len(crops) == 1
    crop = crops[0]
    assert crop.shape[1] < 0.5 * page.shape[1]
    # The margins beside the number hold no ink: a ruled line would cross them.
    edge = max(2, crop.shape[1] // 20)
    assert crop[:, :edge].min() > 200 and crop[:, -edge:].min() > 200


@pytest.mark.parametrize("tail_mm", [0.0, 2.0, 4.5])
def test_a_full_stop_or_comma_after_the_number_is_left_out(tail_mm: float) -> None:
    dpi = 300
    per_mm = dpi / 25.4
    page = blank_a4(dpi)
    width, _ = write(page, dpi=dpi, left_mm=60, baseline_mm=150)
    plain = sheet_crops(page)
    assert plain is not None
    # A dot 1 mm across just after the last digit, on the baseline; a comma's tail curls down and left from it.
    radius = round(0.5 * per_mm)
    centre = (round(60 * per_mm) + width + round(1.5 * per_mm), round(150 * per_mm) - radius)
    cv2.circle(page, centre, radius, 20, -1)
    if tail_mm:
        end = (centre[0] - radius, centre[1] + round(tail_mm * per_mm))
        cv2.line(page, centre, end, 20, max(1, radius // 2))
    marked = sheet_crops(page)
    assert marked is not None
    assert [crop.shape for crop in marked] == [crop.shape for crop in plain]


def test_a_blank_sheet_gives_nothing() -> None:
    page = blank_a4(300)
    noise = np.zeros(page.shape, np.int16)
    cv2.randn(noise, 0, 6)
    assert sheet_crops(cv2.add(page, noise, dtype=cv2.CV_8U)) == []


def office_marks(page: np.ndarray, *, dpi: int) -> None:
    """What a blank page picks up in an office: two punched holes' shadows 12 mm from the left edge, a slanted fold
    with its soft shadow, and a dark wedge along the right edge where the page lay askew on the glass."""
    per_mm = dpi / 25.4
    height, width = page.shape
    for y in (height // 2 - round(40 * per_mm), height // 2 + round(40 * per_mm)):
        cv2.circle(page, (round(12 * per_mm), y), round(3 * per_mm), 40, -1)
    fold = np.zeros(page.shape, np.float32)
    cv2.line(fold, (0, height // 3), (width - 1, height // 3 + round(4 * per_mm)), 0.5, max(1, round(0.3 * per_mm)))
    shaded = page * (1 - cv2.GaussianBlur(fold, (0, 0), 0.8 * per_mm))
    rows, columns = np.mgrid[0:height, 0:width]
    shaded[columns > width - 1 - 9 * per_mm * rows / height] = 30
    page[:] = shaded.astype(np.uint8)


@pytest.mark.parametrize("bilevel", [False, True], ids=["grey", "bilevel"])
def test_punched_holes_a_fold_and_a_dark_edge_give_nothing(bilevel: bool) -> None:
    page = blank_a4(200)
    office_marks(page, dpi=200)
    assert sheet_crops(np.where(page < 128, 0, 255).astype(np.uint8) if bilevel else page) == []


def test_writing_beside_office_marks_is_still_found() -> None:
    page = blank_a4(200)
    office_marks(page, dpi=200)
    write(page, dpi=200, left_mm=60, baseline_mm=200)
    crops = sheet_crops(page)
    assert crops is not None and len(crops) == 1


def test_a_margin_line_alone_gives_nothing() -> None:
    page = blank_a4(300)
    per_mm = 300 / 25.4
    x, end = round(30 * per_mm), round(5 * per_mm)  # stopping short of the edges, so it touches neither
    cv2.line(page, (x, end), (x, page.shape[0] - 1 - end), 120, 3)
    assert sheet_crops(page) == []


def test_a_cut_out_field_is_not_a_sheet() -> None:
    field = np.full((200, 500), 245, np.uint8)
    cv2.putText(field, NUMBER, (40, 160), cv2.FONT_HERSHEY_SIMPLEX, 4.0, 20, 12)
    assert sheet_crops(field) is None


def bilevel(page: np.ndarray, *, noise: float, seed: int = 0, black_level: int = 128) -> np.ndarray:
    """The page as a black-and-white scan writes it: its grey with the sensor's noise, cut at a black level."""
    rng = np.random.default_rng(seed)
    noisy = page.astype(np.float32) + rng.normal(0.0, noise, page.shape).astype(np.float32)
    return np.where(noisy < black_level, 0, 255).astype(np.uint8)


def squared(page: np.ndarray, *, dpi: int, level: int) -> None:
    """Squared paper: thin lines 5 mm apart, `level` grey."""
    per_mm = dpi / 25.4
    thickness = max(1, round(0.2 * per_mm))
    for y in np.arange(3 * per_mm, page.shape[0], 5 * per_mm):
        cv2.line(page, (0, int(y)), (page.shape[1] - 1, int(y)), level, thickness)
    for x in np.arange(3 * per_mm, page.shape[1], 5 * per_mm):
        cv2.line(page, (int(x), 0), (int(x), page.shape[0] - 1), level, thickness)


@pytest.mark.parametrize("level", [135, 150, 165])
def test_squared_paper_whose_lines_come_out_dashed_in_black_and_white_gives_nothing(level: int) -> None:
    # Lines near the black level break into dashes, and a line between two rows of the reduced copy leaves a faint
    # rim beside it: neither is writing.
    page = blank_a4(200)
    squared(page, dpi=200, level=level)
    assert sheet_crops(bilevel(page, noise=25)) == []


def test_a_shadow_speckled_by_black_and_white_gives_nothing() -> None:
    # Uneven light darkens a corner to the scanner's black level: it comes out as random black dots.
    page = blank_a4(300).astype(np.float32)
    rows, columns = np.mgrid[0 : page.shape[0], 0 : page.shape[1]]
    corner = np.hypot(rows / page.shape[0], columns / page.shape[1])
    page *= np.clip(0.5 + 0.5 * corner / 0.8, 0.5, 1.0)
    assert sheet_crops(bilevel(page.astype(np.uint8), noise=20)) == []


@pytest.mark.parametrize("bilevel_scan", [False, True], ids=["grey", "bilevel"])
def test_a_punched_hole_on_squared_paper_near_the_edge_gives_nothing(bilevel_scan: bool) -> None:
    # A square's line near the edge is no scanner band, and a line crossing the hole does not cut it into strokes.
    dpi, per_mm = 200, 200 / 25.4
    page = blank_a4(dpi)
    squared(page, dpi=dpi, level=120)
    for y in (page.shape[0] // 2 - round(40 * per_mm), page.shape[0] // 2 + round(40 * per_mm)):
        cv2.circle(page, (round(9.5 * per_mm), y), round(3 * per_mm), 110, -1)
    assert sheet_crops(bilevel(page, noise=25) if bilevel_scan else page) == []


def test_a_long_hairline_gives_nothing() -> None:
    # A fold's crease or a shadow's rim the line finder misses: longer than a digit's stroke, thinner than a digit.
    dpi, per_mm = 300, 300 / 25.4
    page = blank_a4(dpi)
    x = round(5 * per_mm)
    cv2.line(page, (x, round(10 * per_mm)), (x + round(1 * per_mm), round(80 * per_mm)), 60, 2)
    assert sheet_crops(page) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_black_dots_of_a_faint_shade_in_black_and_white_give_nothing(seed: int) -> None:
    # A faint shade just under the black level comes out as scattered black dots: their clusters are a line of
    # writing's height at most, yet none of them is as tall as a digit.
    dpi, per_mm = 200, 200 / 25.4
    page = blank_a4(dpi)
    top, left = round(100 * per_mm), round(40 * per_mm)
    shade = page[top : top + round(40 * per_mm), left : left + round(80 * per_mm)]
    shade[np.random.default_rng(seed).random(shade.shape) < 0.15] = 0
    assert sheet_crops(page) == []
