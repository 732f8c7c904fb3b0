"""Find the printed lines in a crop (a table's column or row line, a ruled line, a cell's grid), straight and far
longer than the writing, across or down the page and tilted a little as scanned; clear them except where a
stroke crosses or meets them.

A line is found on a reduced copy by projecting the ink along every slight slope (a line is a bin that collects
a line's length of ink), then measured at full size: its thickness, the columns it runs over and how straight
it is. A digit's strokes are never both that straight and that long beside the rest of the ink.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import cv2
import numpy as np

COARSE_SIDE = 128  # lines are sought on a copy at most this long: a line a pixel thick there still shows
MAX_TILT = np.tan(np.radians(4.0))  # a scanned line runs within 4 degrees of the page's rows or columns
LINE_SHARE = 0.5  # a line runs over at least half the page's width (or height)...
STRAIGHT_FILL = 0.85  # ...inked along 85 % of the columns it runs over, within its band
LINE_GAP = 0.04  # ...broken by gaps of at most 4 % of the page (a line fading in and out of the ink)
THIN = 0.08  # a line is at most 8 % as thick as it is long (a 1's stem is thicker)
EDGE_REACH = 0.2  # a line that runs to within 20 % of both edges runs off the page (its ends fade into the edge)...
EDGE_LONGER = 1.2  # ...and is printed when it is 1.2 times as long as the rest of the ink spans along it (a 1 is not)
LONGER = 1.6  # a line that stops short is printed when it is 1.6 times as long as the rest of the ink spans...
REST_SIZE = 0.25  # ...where the rest is at least a quarter of the line's length (not the foot of a 1's stem)...
OFF_PAGE_REST = 0.1  # ...or a tenth, beside a line running off the page (a small digit in a large cell)
LONE_THIN = 0.07  # with no other ink, a line running off the page is printed when this thin (a lone 1 is thicker)...
EDGE_TO_EDGE_THIN = 0.09  # ...or this thin when it runs right to both edges (a ruled line cut with the cell)
EDGE_TOUCH = 2  # pixels from the edge that still touch it
MAX_LINES = 6  # lines sought per direction (a grid's two and a ruled line or two)
RIM = 2  # pixels within 2 px of a line are its soft rim, not other ink beside it
CROSS_REACH = 2  # a stroke meeting a line has ink within 2 px beyond one of its sides


class _Line(NamedTuple):
    """A line in page coordinates of its direction (rows across it, columns along it): its centre row at column 0
    and slope, its band of rows about the centre (soft rim included), the columns it runs over, and its thickness
    (its half-dark rows)."""

    centre: float
    slope: float
    low: int
    high: int
    start: int
    end: int
    thickness: int


def erase_lines(strokes: np.ndarray, *, faint: np.ndarray) -> np.ndarray:
    """The strokes without the page's printed lines, but where a stroke crosses or meets one.

    Lines are traced on the faint ink (`faint`), where a light line stays whole, and cleared from `strokes`.
    """
    found = [(axis, line) for axis in (0, 1) for line in _lines(faint if axis == 0 else np.ascontiguousarray(faint.T))]
    if not found:
        return strokes
    bands = np.zeros(strokes.shape, bool)
    for axis, line in found:
        _paint(bands if axis == 0 else bands.T, line)
    rest = strokes & ~bands
    # The rest of the ink is judged without the lines' rims: a line's soft edge runs as far as the line does.
    apart = rest & ~cv2.dilate(bands.view(np.uint8), np.ones((2 * RIM + 1, 2 * RIM + 1), np.uint8)).astype(bool)
    erased = strokes.copy()
    for axis, line in found:
        view, rest_view, apart_view = (erased, rest, apart) if axis == 0 else (erased.T, rest.T, apart.T)
        if _is_printed(line, apart_view, upright=axis == 1):
            _clear(view, line, rest=rest_view)
    return erased


def _lines(mask: np.ndarray) -> list[_Line]:
    """The straight lines running along the rows of a mask (across the page), at most MAX_LINES of them."""
    height, width = mask.shape
    shrink = min(1.0, COARSE_SIDE / max(height, width))
    small = mask.view(np.uint8)
    if shrink < 1.0:  # any ink in a reduced pixel inks it, so a line a pixel thick is not averaged away
        size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
        small = (cv2.resize(small * 255, size, interpolation=cv2.INTER_AREA) > 0).view(np.uint8)
    small_h, small_w = small.shape
    needed = LINE_SHARE * STRAIGHT_FILL * small_w
    if np.count_nonzero(small) < needed:  # most pages: not enough ink for any line
        return []
    tried = _slopes(small_w)
    steps, slopes = tried.steps, tried.slopes
    span = small_h + 2 * steps + 2
    counts = _slope_bins(small, tried, span=span)
    ends = np.array([0.0, small_w - 1.0])
    drifts = slopes[:, np.newaxis] * ends[np.newaxis, :]  # how far each slope drifts by either end
    bins = np.arange(span)
    lines = []
    for _ in range(MAX_LINES):
        peak = int(np.argmax(counts))
        if counts.flat[peak] < needed:
            break
        # A thick line collects as much ink along a slightly wrong slope, across it: its own slope gathers the ink
        # on the fewest rows, the largest sum of squares near it.
        first = max(0, peak % span - 2 * steps - 4)
        near = counts[:, first : peak % span + 2 * steps + 5]
        slope_index = int(np.argmax((near * near).sum(axis=1)))
        row = first + int(np.argmax(near[slope_index]))
        # Most candidates are a digit's bar, thick for its length: told on the reduced copy already, where the
        # copy's rounding adds a pixel or two to a line.
        low, high = _half_band(counts[slope_index], row)
        thin = high - low + 1 <= max(3, THIN * counts[slope_index, row]) + 2
        centre = (row - steps - 1 + 0.5) / shrink
        line = _measure(mask, centre=centre, slope=float(slopes[slope_index]), reach=1 / shrink) if thin else None
        # Along every slope, the bins whose row meets the line (or the ink tried there) are spent: the same line
        # seen askew would otherwise be found again, as a thick band across it.
        first_last = (row - steps - 1) + slopes[slope_index] * ends
        spent = first_last[np.newaxis, :] - drifts + steps + 1
        lowest, highest = np.sort(spent, axis=1).astype(np.intp).T  # truncated toward 0, as int() does
        first_spent = np.maximum(0, lowest + low - row - 2)[:, np.newaxis]
        counts[(bins >= first_spent) & (bins < (highest + high - row + 3)[:, np.newaxis])] = 0
        if line is not None:
            lines.append(line)
    return lines


class _Runs(NamedTuple):
    """Paths across the page, each at one row in every column, as runs of columns where a path keeps to one row:
    each run's path, first and past-the-last column, and row."""

    path: np.ndarray
    start: np.ndarray
    end: np.ndarray
    row: np.ndarray


def _runs(rows: np.ndarray) -> _Runs:
    """The runs of paths given by their row in every column (a path per row of `rows`)."""
    begins = np.ones(rows.shape, bool)
    begins[:, 1:] = rows[:, 1:] != rows[:, :-1]
    first = np.flatnonzero(begins)
    path, start = np.divmod(first, rows.shape[1])
    # Each path's first run begins at column 0: the run after a path's last one ends it.
    end = np.append(first[1:], begins.size) - path * rows.shape[1]
    return _Runs(path, start, end, rows.ravel()[first])


def _running_sums(mask: np.ndarray) -> np.ndarray:
    """Each row's ink summed column by column, after a leading 0: a run's ink on a row is the difference of two."""
    whole = cv2.integral(mask.view(np.uint8))
    running: np.ndarray = whole[1:] - whole[:-1]
    return running


class _Slopes(NamedTuple):
    """The slopes tried on a reduced copy, one step apart (a step shifts a line's far end by a pixel), and the
    rows each drops by, as runs."""

    steps: int
    slopes: np.ndarray
    drops: _Runs


@functools.lru_cache(maxsize=256)  # reduced copies come in few widths: the longer side is mostly COARSE_SIDE
def _slopes(width: int) -> _Slopes:
    """The slopes tried on a reduced copy `width` columns wide."""
    steps = max(1, int(np.ceil(MAX_TILT * width)))
    slopes = np.arange(-steps, steps + 1) / width
    drops = _runs(np.rint(slopes[:, np.newaxis] * np.arange(width)).astype(np.intp))
    for table in (slopes, *drops):  # every later call of this width reads them
        table.setflags(write=False)
    return _Slopes(steps, slopes, drops)


def _slope_bins(small: np.ndarray, slopes: _Slopes, *, span: int) -> np.ndarray:
    """The ink of a reduced 0/1 copy along every slope tried (its width's): a row per slope, a bin per row the line
    starts on (`span` bins, room for the rows a slope drops by either way).

    A run of columns that drop by the same rows adds its ink row by row to consecutive bins: a sum per run and row
    instead of one per inked pixel and slope.
    """
    drops, running = slopes.drops, _running_sums(small)
    ink = running[:, drops.end] - running[:, drops.start]
    bins = np.arange(small.shape[0])[:, np.newaxis] - drops.row + (slopes.steps + 1 + span * drops.path)
    counts = np.bincount(bins.ravel(), weights=ink.ravel(), minlength=span * len(slopes.slopes))
    return counts.astype(np.intp).reshape(len(slopes.slopes), span)


def _measure(mask: np.ndarray, *, centre: float, slope: float, reach: float) -> _Line | None:
    """The line near a coarse estimate, measured at full size: its slope, band and run; None when it is not one.

    The estimate is off by up to `reach` rows at either end: the slopes that far apart are tried, and the one that
    gathers the most ink on one row is the line's.
    """
    height, width = mask.shape
    window = 2 * int(np.ceil(reach)) + 6  # room for the estimate's error and a printed line's thickness
    columns = np.arange(width)
    # For every slope tried, a window of rows around the line: the ink on each of its rows, along the line.
    tried = slope + np.arange(-np.ceil(reach), np.ceil(reach) + 1) / width
    centres = np.rint(centre + tried[:, np.newaxis] * columns[np.newaxis, :]).astype(np.intp)
    # Rows off the page hold no ink: the windows are read from the rows they cover, blank off the page, and a centre
    # further off is held where its window still lies wholly off the page.
    held = np.clip(centres, -window - 1, height + window)
    top = int(held.min()) - window
    covered = _rows_of(mask, top, int(held.max()) + window + 1)
    first_rows = held - window - top  # each window's first row, in the rows covered
    runs, running = _runs(first_rows), _running_sums(covered)
    offsets = np.arange(2 * window + 1)
    # Flat indices: numpy takes from a flat array far faster than by two index arrays.
    starts = (runs.row[:, np.newaxis] + offsets) * running.shape[1] + runs.start[:, np.newaxis]
    ink = running.take(starts + (runs.end - runs.start)[:, np.newaxis]) - running.take(starts)
    cells = (runs.path[:, np.newaxis] * len(offsets) + offsets).ravel()
    profiles = np.bincount(cells, weights=ink.ravel(), minlength=len(tried) * len(offsets)).astype(np.intp)
    profiles = profiles.reshape(len(tried), len(offsets))
    best = int(np.argmax(profiles.max(axis=1)))
    slope, profile = float(tried[best]), profiles[best]
    low, high = _half_band(profile, int(np.argmax(profile)))
    if low == 0 or high == len(profile) - 1:
        return None  # thicker than the window: a band of ink or a stroke, not a printed line
    thickness = high - low + 1
    # The band reaches a row beyond the half-full rows: the line's soft rim.
    inked = covered.take((first_rows[best] + np.arange(low - 1, high + 2)[:, np.newaxis]) * width + columns).any(axis=0)
    low, high = low - 1 - window, high + 1 - window
    start, end = _longest_run(inked, gap=max(2, int(LINE_GAP * width)))
    length = end - start
    if length < LINE_SHARE * width or np.count_nonzero(inked[start:end]) < STRAIGHT_FILL * length:
        return None
    line = _Line(centre, slope, low, high, start, end, thickness)
    # A line running off the page is as long as the page, whatever its faded ends leave of it.
    return line if thickness <= max(3, THIN * (width if _off_page(line, width) else length)) else None


def _rows_of(mask: np.ndarray, first: int, past: int) -> np.ndarray:
    """Rows `first` to `past` (exclusive) of the mask, blank where they lie off it."""
    rows = np.zeros((past - first, mask.shape[1]), bool)
    low, high = (min(max(row, 0), mask.shape[0]) for row in (first, past))
    rows[low - first : high - first] = mask[low:high]
    return rows


def _half_band(profile: np.ndarray, top: int) -> tuple[int, int]:
    """The first and last row around `top` of the rows holding at least half as much ink as it."""
    half = profile[top] / 2
    low, high = top, top
    while low > 0 and profile[low - 1] >= half:
        low -= 1
    while high < len(profile) - 1 and profile[high + 1] >= half:
        high += 1
    return low, high


def _longest_run(inked: np.ndarray, *, gap: int) -> tuple[int, int]:
    """The first and past-the-last column of the longest run of inked columns, bridging gaps up to `gap` long."""
    columns = np.flatnonzero(inked)
    if not len(columns):
        return 0, 0
    breaks = np.flatnonzero(np.diff(columns) > gap + 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(columns) - 1]))
    longest = int(np.argmax(columns[ends] - columns[starts]))
    return int(columns[starts[longest]]), int(columns[ends[longest]]) + 1


def _band_rows(line: _Line, page: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The columns of the line's run and, per column, the rows of its band (clipped to the page): (n,), (k, n).

    A line running off the page runs to both edges: its ends, faded into the edge, go with it.
    """
    height, width = page
    columns = np.arange(width) if _off_page(line, width) else np.arange(line.start, line.end)
    centres = np.rint(line.centre + line.slope * columns).astype(np.intp)
    rows = centres[np.newaxis, :] + np.arange(line.low, line.high + 1)[:, np.newaxis]
    return columns, np.clip(rows, 0, height - 1)


def _paint(bands: np.ndarray, line: _Line) -> None:
    """Mark the line's band on a page-sized mask."""
    columns, rows = _band_rows(line, bands.shape)
    bands[rows, columns] = True


def _is_printed(line: _Line, rest: np.ndarray, *, upright: bool) -> bool:
    """A line far longer than the rest of the ink spans along it; with no other ink, a thin one running off the page.

    An `upright` line near both edges with the rest of the ink on both sides of it is measured by its own ink, not
    the page's length: a thin pen's 1 as tall as its number ends with it, near the edges of a crop cut around the
    writing, where a column line runs on. (A cell's wall, the writing on one side of it, may fade before the
    edges: it is judged by the page's length.)"""
    off_page = _off_page(line, rest.shape[1])
    length = rest.shape[1] if off_page else line.end - line.start  # faded ends included
    rows, columns = (np.flatnonzero(rest.any(axis=axis)) for axis in (1, 0))
    rest_size = max(np.ptp(rows), np.ptp(columns)) + 1 if len(columns) else 0
    if rest_size < (OFF_PAGE_REST if off_page else REST_SIZE) * length:
        edge_to_edge = line.start <= EDGE_TOUCH and line.end >= rest.shape[1] - EDGE_TOUCH
        return off_page and line.thickness <= (EDGE_TO_EDGE_THIN if edge_to_edge else LONE_THIN) * length
    # Where the line lies across the page at its middle: ink either side of it is writing around a stroke.
    middle = line.centre + line.slope * (line.start + line.end) / 2
    if off_page and upright and rows[0] < middle + line.low and rows[-1] > middle + line.high:
        length = line.end - line.start
    return bool(length >= (EDGE_LONGER if off_page else LONGER) * (np.ptp(columns) + 1))


def _off_page(line: _Line, width: int) -> bool:
    """Whether the line runs (nearly) from one edge of the page to the other."""
    return line.start <= EDGE_REACH * width and line.end >= (1 - EDGE_REACH) * width


def _clear(strokes: np.ndarray, line: _Line, *, rest: np.ndarray) -> None:
    """Clear the line's band from the strokes, in every column but those where a stroke meets it: one crossing it,
    ending on it or running along it keeps its pixels there, so the digit is not cut or thinned."""
    height = strokes.shape[0]
    columns, rows = _band_rows(line, strokes.shape)
    beyond = np.arange(1, CROSS_REACH + 1)[:, np.newaxis]
    above = np.clip(rows[0] - beyond, 0, height - 1)
    below = np.clip(rows[-1] + beyond, 0, height - 1)
    met = rest[above, columns].any(axis=0) | rest[below, columns].any(axis=0)
    strokes[rows[:, ~met], columns[~met]] = False
