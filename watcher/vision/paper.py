"""What on a scan is not writing: the paper's brightness and its noise, and the printed lines on it (a box's
sides, ruled paper, a table's grid, scanner edges along the border, a form's print), and a scanner's dark margins.

One module for sheets, crops and form fields alike: a sheet's noise (watcher.vision.sheet) and a crop's
(watcher.vision.normalise) are the same robust spread of pixel pairs, `pair_noise`; a crop's printed lines are
cleared by `without_printed_lines`, whose tilted lines watcher.vision.lines finds; what cleaning leaves of a line
along the border is told by `is_border_line` and `is_edge_line`; a form field's paper and print, known from its
template, are `darkness_on_paper` and `without_print` (watcher.forms.fields). A whole sheet's paper, the least
contrast that is ink on it (over its noise) and its printed lines are found on the sheet finder's reduced copy
(`sheet_paper`, `ink_threshold`, `printed_lines`; watcher.vision.sheet) with the scanner's bands and lid there
(`without_edge_bands`, `beyond_the_page`), and a line's pixels told from a pen's in its full-resolution crops
(`line_pixels`).
"""

from __future__ import annotations

from typing import Any, overload

import cv2
import numpy as np

from watcher.vision.lines import erase_lines
from watcher.vision.pieces import as_mask, components

NOISE_PER_MAD = 1.4826  # a normal distribution's standard deviation per median absolute deviation
BACKGROUND_WINDOW = 0.45  # the paper's brightness is judged over windows this share of the shorter side
NOISE_GAP = 3  # pixels this far apart carry nearly independent noise, even after the light blur
BRACKETED = 8192  # a median or percentile of this many values or more is selected among those near it...
BRACKET_SAMPLE_STEP = 16  # ...bracketed by a sample of every 16th value...
BRACKET = 0.03  # ...3 percentiles either side of it in the sample (over 2 standard errors of the sample's)
STATS_SAMPLES = 4096  # pixels sampled for background statistics, so cost does not grow with size
BORDER_BAND = 0.08  # scanner edges and box lines lie within 8 % of the image border
EDGE_LINE_FILL = 0.6  # an edge row/column this full of ink is a scanner edge, not a stroke
FRAME_LINE = 0.6  # a box's side is a straight run of ink over 60 % of the page's width or height...
FRAME_SPAN = 0.5  # ...its opposite sides lie at least half the page apart...
FRAME_CORNER = 0.85  # ...each side runs at least 85 % of the way between the two sides it meets...
FRAME_THICKNESS = 0.06  # ...and is at most 6 % of the page thick (a pen stroke around a drawn 0 is thicker)
RULED_LENGTH = 0.9  # a ruled paper line runs across at least 90 % of the page
EDGE_ASPECT = 0.1  # a line this thin that runs off the page is a scanner edge or a ruled line, not a 1
# A scanner's dark margin (the lid's shadow, the platen beyond the page) along an edge of a cut-out cell:
MARGIN_DARK = 0.5  # its pixels are darker than half the paper's brightness...
MARGIN_FULL = 0.95  # ...in 95 % of a column (or row): no written stroke fills a field's whole height with margins
MARGIN_LEAST = 0.03  # ...over at least 3 % of the width (or height), else it is a line the cleaning erases
MARGIN_MOST = 0.6  # a "margin" over 60 % of the image is no margin: the image is left whole
MARGIN_SIDE = 256  # judged on a copy at most this long
NEGATIVE_OUTLINE = 0.7  # dark along more than this share of the image's outline...
NEGATIVE_DARK = 0.5  # ...and over more than half of it: the dark is the paper (a negative), not a margin
# (the register's 26,122 cells: never both, their outline at most 0.73 dark and at most 0.60 of a cell; MNIST's 5,000
# validation digits as they come, light on black, as PNG or JPEG: their outline at least 0.72 dark and at least 0.54
# of the digit; printed boxes round a field: their outline dark, but the paper inside light)
# A whole sheet's paper and printed lines, on its reduced copy (about 2.7 px per mm, watcher.vision.sheet):
MIN_CONTRAST = 0.18  # ink darkens the paper by 18 % at least; a scan's noise, after reduction, by far less
NOISE_FACTOR = 6.0  # ...or by six times the paper's noise, on a noisy scan
LINE_SHARE = 0.3  # a printed line's straight run (the sheet finder's length at least) runs over 30 % of the page,
# or it is a writer's stroke (a long underline)
LINE_REACH = 3  # a crossing stroke's ink lies within 3 px beside a line (lines are 1-2 px thick on the copy)
LINE_RIM = 1  # a printed line under a pixel thick on the copy straddles two rows where it falls between them; the
# fainter row's ink breaks where the scan's noise (or a bilevel scan's black level) dips, so it is the line's within
# a pixel beside its run, never a run of its own
LINE_WHOLE = 90  # ...a pixel the line fills whole is as dark as the 90th percentile of its pixels (pens crossing it
# are a few of them)...
LINE_SPLIT = 1.5  # ...and the two rows together hold no more than 1.5 such pixels: a line is at most 0.5 mm thick
INK_FLOOR = 0.08  # at full resolution, contrast under 8 % is paper, not a line's or a stroke's pixel
PEN_OVER_LINE = 0.15  # a pen at least 15 % darker than the printed lines is told from them by its darkness
EDGE_FILL = 0.5  # a scanner's dark band near the page's edge fills at least half of its row or column
OFF_PAGE = 0.5  # paper under half as bright as the page's typical paper is the scanner's lid beyond the page's edge


@overload
def pair_noise(median_difference: np.ndarray) -> np.ndarray: ...
@overload
def pair_noise(median_difference: float | np.floating[Any]) -> float: ...
def pair_noise(median_difference: Any) -> Any:
    """The paper's noise (a standard deviation) from the median absolute difference of pixel pairs that carry
    independent noise, most of them on paper: the robust spread of their differences, less the pair's sqrt(2).

    The arithmetic follows the median's type: a float32 median's product is rounded to float32 (a sheet's
    whole-page noise), a float64 one's is not (a sheet's tiles, a crop's noise).
    """
    return NOISE_PER_MAD * median_difference / np.sqrt(2.0)


def without_printed_lines(strokes: np.ndarray, *, faint: np.ndarray) -> np.ndarray:
    """A crop's strokes without its printed lines: a box's and ruled paper's lines first; then any other straight
    line far longer than the writing (a table's grid or column line, tilted a little, watcher.vision.lines), traced
    on the faint ink where a light line stays whole; then the lines along the border (a scanner's shadow)."""
    lined = erase_lines(_erase_ruled_lines(_erase_frame(strokes)), faint=faint)
    return _erase_border_lines(lined, faint_ink=faint)


def is_edge_line(left: int, top: int, w: int, h: int, *, page: tuple[int, int]) -> bool:
    """A thin line running off the page: what cleaning leaves of a scanner edge or a ruled line."""
    height, width = page
    off_page = left == 0 or top == 0 or left + w == width or top + h == height
    return off_page and min(w, h) < EDGE_ASPECT * max(w, h)


def median(scratch: np.ndarray) -> float:
    """np.median of an array it may reorder, without the overhead that dominates np.median on the few thousand
    values used here: one partition in place (of the values around the middle, for many), and for an even count the
    other middle value is the lower half's max."""
    values = scratch.ravel()
    odd = values.size % 2
    values, middle = _around(values, values.size // 2)
    values.partition(middle)
    if odd:
        return float(values[middle])
    return float((values[:middle].max() + values[middle]) / 2)


def percentile(scratch: np.ndarray, percent: float) -> float:
    """np.percentile (linear interpolation, the same rounding) of an array it may reorder, from one partition in
    place (of the values around the percentile, for many) instead of np.percentile's many steps."""
    values = scratch.ravel()
    position = (values.size - 1) * (percent / 100)
    below = int(position)
    weight = position - below
    values, below = _around(values, below)
    values.partition(below)
    low = values[below]
    high = values[below + 1 :].min() if below + 1 < values.size else low
    step = high - low
    # numpy interpolates from the nearer end, which keeps the result inside [low, high].
    return float(high - step * (1 - weight) if weight >= 0.5 else low + step * weight)


def _around(values: np.ndarray, rank: int) -> tuple[np.ndarray, int]:
    """The values ranking around the `rank`-th smallest of many, and where it ranks among them: the one before it
    and the one after it rank among them as among all, so selecting there gives the same values for a fraction of
    the partitioning. All the values and `rank` where there are few, or where a sample's bracket misses (then it is
    no cheaper, and no less exact)."""
    if values.size < BRACKETED:
        return values, rank
    sample = values[::BRACKET_SAMPLE_STEP].copy()
    at, margin = rank // BRACKET_SAMPLE_STEP, int(BRACKET * sample.size)
    ends = (max(0, at - margin), min(sample.size - 1, at + margin))
    sample.partition(ends)
    low, high = sample[ends[0]], sample[ends[1]]
    lower = int(np.count_nonzero(values < low))
    near: np.ndarray = values[(values >= low) & (values <= high)]
    if lower < rank and rank + 1 < lower + near.size:
        return near, rank - lower
    return values, rank


def _sample(pixels: np.ndarray) -> np.ndarray:
    """An evenly strided sample of at most STATS_SAMPLES pixels."""
    flat = pixels.reshape(-1)
    step = max(1, flat.size // STATS_SAMPLES)
    return flat[::step]


def paper_and_noise(smooth: np.ndarray) -> tuple[float, float]:
    """The paper's level and its noise, measured so that even a fat digit covering most of the page does not
    count: the level below Otsu's ink/paper split, the noise from differences between nearby pixels."""
    sample = _sample(smooth)
    # The blurred contrast is never negative, so its share of the peak lies in [0, 1]: 0-255, rounded half to even.
    scaled = cv2.convertScaleAbs(sample / max(float(sample.max()), 1e-6), alpha=255).reshape(-1)
    split, _ = cv2.threshold(scaled.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    paper = median(sample[scaled <= split])
    rows = smooth[:: max(1, smooth.shape[0] // 64)]  # 64 rows hold plenty of pixel pairs
    gap = min(NOISE_GAP, smooth.shape[1] - 1)
    differences = cv2.absdiff(rows[:, gap:], rows[:, :-gap]) if gap > 0 else np.zeros(1, np.float32)
    # Half the pixel pairs lie inside paper or inside a stroke, where the difference is noise alone.
    return paper, pair_noise(median(differences))


def background(raised: np.ndarray) -> np.ndarray:
    """The paper's brightness everywhere: a grey opening wider than any stroke, done on a small copy."""
    height, width = raised.shape
    shrink = min(1.0, 32.0 / min(height, width))
    small = cv2.resize(
        raised, (max(1, round(width * shrink)), max(1, round(height * shrink))), interpolation=cv2.INTER_AREA
    )
    # A window this share of the shorter side is wider than even a marker's stroke across a tightly
    # cropped digit, yet still follows a lighting gradient.
    side = max(3, int(BACKGROUND_WINDOW * min(small.shape)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))
    # Beyond the edges the light is extrapolated (odd reflection), not held flat, or an opening would cut the
    # bright end of a gradient short and leave a false stroke along that edge; dips stop at the darkest paper.
    padded = np.maximum(_pad_odd_reflection(small, side), small.min())
    paper = cv2.morphologyEx(padded, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE)
    paper = cv2.blur(paper, (side, side), borderType=cv2.BORDER_REPLICATE)[side:-side, side:-side]
    return cv2.resize(paper, (width, height), interpolation=cv2.INTER_LINEAR)


def _pad_odd_reflection(image: np.ndarray, side: int) -> np.ndarray:
    """np.pad(image, side, mode="reflect", reflect_type="odd"): rows first, then columns, each mirrored value
    turned about its edge (2 * edge - mirror); OpenCV's borders make it a few calls instead of numpy's dozens."""
    if side >= min(image.shape):  # numpy then reflects repeatedly, out of the mirrored pixels themselves
        return np.pad(image, side, mode="reflect", reflect_type="odd")
    rows = 2 * cv2.copyMakeBorder(image, side, side, 0, 0, cv2.BORDER_REPLICATE) - cv2.copyMakeBorder(
        image, side, side, 0, 0, cv2.BORDER_REFLECT_101
    )
    return 2 * cv2.copyMakeBorder(rows, 0, 0, side, side, cv2.BORDER_REPLICATE) - cv2.copyMakeBorder(
        rows, 0, 0, side, side, cv2.BORDER_REFLECT_101
    )


def is_border_line(left: int, top: int, w: int, h: int, *, height: int, width: int) -> bool:
    """A long thin component lying along an image edge (scanner shadow, a form's box line)."""
    band_x, band_y = BORDER_BAND * width, BORDER_BAND * height
    along_left_or_right = (left == 0 or left + w == width) and w <= band_x and h >= 0.5 * height
    along_top_or_bottom = (top == 0 or top + h == height) and h <= band_y and w >= 0.5 * width
    frame = w == width and h == height and (left, top) == (0, 0) and height > 40 and width > 40
    return along_left_or_right or along_top_or_bottom or frame


def _erase_border_lines(strokes: np.ndarray, *, faint_ink: np.ndarray) -> np.ndarray:
    """Clear rows and columns at the image edge that are ink nearly end to end: a scanner's shadow or a ruled edge.

    Done per pixel row, not per component, because a digit touching such a line would join it. Fullness is
    judged on the faint ink too, since uneven light dims one end of a long line.
    """
    rows, columns = _edge_lines(faint_ink), _edge_lines(faint_ink.T)
    if not rows and not columns:
        return strokes
    strokes = strokes.copy()
    strokes[rows] = False
    strokes[:, columns] = False
    return strokes


def _erase_frame(strokes: np.ndarray) -> np.ndarray:
    """Clear a box drawn around the digit (a form's field): straight lines near all four sides enclosing ink.

    A digit never has both: two long straight rows far apart and two long straight columns far apart. The lines
    are found per pixel row and column (an opening with a long thin kernel), so a digit touching the box keeps
    its strokes.
    """
    height, width = strokes.shape
    mask = as_mask(strokes)
    # Cheap first: a box needs rows and columns holding that much ink at all, far apart; most pages have none.
    full_rows, full_columns = _full_lines(mask, share=FRAME_LINE, axis=1), _full_lines(mask, share=FRAME_LINE, axis=0)
    if not len(full_rows) or not len(full_columns):
        return strokes
    if np.ptp(full_rows) < FRAME_SPAN * height or np.ptp(full_columns) < FRAME_SPAN * width:
        return strokes
    across, down = _straight_runs(mask, share=FRAME_LINE, axis=1), _straight_runs(mask, share=FRAME_LINE, axis=0)
    rows, columns = np.flatnonzero(across.any(axis=1)), np.flatnonzero(down.any(axis=0))
    if not len(rows) or not len(columns) or np.ptp(rows) < FRAME_SPAN * height or np.ptp(columns) < FRAME_SPAN * width:
        return strokes
    # A box's sides are thin, and they meet at the corners: the outermost lines run from one opposite side to
    # the other. A thick 0's flat top and bottom are neither.
    row_lines, column_lines = _consecutive(rows), _consecutive(columns)
    (top, bottom), (left, right) = (row_lines[0], row_lines[-1]), (column_lines[0], column_lines[-1])
    if max(len(top), len(bottom)) > FRAME_THICKNESS * height or max(len(left), len(right)) > FRAME_THICKNESS * width:
        return strokes
    sides = (across[rows[0]], across[rows[-1]], down[:, columns[0]], down[:, columns[-1]])
    spans = (columns[-1] - columns[0], columns[-1] - columns[0], rows[-1] - rows[0], rows[-1] - rows[0])
    if any(np.ptp(np.flatnonzero(side)) < FRAME_CORNER * span for side, span in zip(sides, spans, strict=True)):
        return strokes
    # Only the four sides go: a long straight bar of the digit inside the box stays.
    lines = np.zeros(strokes.shape, bool)
    for band in (top, bottom):
        lines[band] = across[band]
    for band in (left, right):
        lines[:, band] |= down[:, band]
    enclosed = (slice(top[-1] + 1, bottom[0]), slice(left[-1] + 1, right[0]))
    if not strokes[enclosed].any():
        return strokes  # an empty box: the page is read as it is
    return strokes & ~lines


def _erase_ruled_lines(strokes: np.ndarray) -> np.ndarray:
    """Clear the lines of ruled paper: thin straight rows of ink across the whole page, at least two of them.

    Where a stroke of the digit crosses a line (ink right above and below it), the line's pixels stay.
    """
    height = strokes.shape[0]
    mask = as_mask(strokes)
    if len(_full_lines(mask, share=RULED_LENGTH, axis=1)) < 2:
        return strokes
    across = _straight_runs(mask, share=RULED_LENGTH, axis=1)
    # Each line must be thin, or it is a stroke (a tightly cropped 7's bar is thick).
    lines = [line for line in _consecutive(np.flatnonzero(across.any(axis=1))) if len(line) <= FRAME_THICKNESS * height]
    if len(lines) < 2:
        return strokes
    strokes = strokes.copy()
    for line in lines:
        above, below = max(line[0] - 1, 0), min(line[-1] + 1, height - 1)
        crossed = strokes[above] & strokes[below]
        strokes[line] &= crossed | ~across[line]
    return strokes


def _full_lines(mask: np.ndarray, *, share: float, axis: int) -> np.ndarray:
    """The rows (axis 1) or columns (axis 0) of a 0/1 mask with ink over at least `share` of their length."""
    length = mask.shape[axis]
    return np.flatnonzero(cv2.reduce(mask, axis, cv2.REDUCE_SUM, dtype=cv2.CV_32S) >= share * length)


def _straight_runs(mask: np.ndarray, *, share: float, axis: int) -> np.ndarray:
    """The mask's pixels on straight runs of ink at least `share` of the page long, across (axis 1) or down (0)."""
    length = max(3, int(share * mask.shape[axis]))
    kernel = np.ones((1, length) if axis == 1 else (length, 1), np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel).astype(bool)


def _consecutive(indices: np.ndarray) -> list[np.ndarray]:
    """Sorted indices split into runs of consecutive ones (the rows of one line); none for none."""
    return np.split(indices, np.flatnonzero(np.diff(indices) > 1) + 1) if len(indices) else []


def _edge_lines(faint_ink: np.ndarray) -> list[int]:
    """The rows of `faint_ink` that `_erase_border_lines` clears, from its top and its bottom edge."""
    count, length = faint_ink.shape
    band = max(1, int(BORDER_BAND * count))
    cleared = []
    for edge in (range(band), range(count - 1, count - 1 - band, -1)):
        run, needed = [], EDGE_LINE_FILL
        for index in edge:
            if np.count_nonzero(faint_ink[index]) / length < needed:
                break  # only lines contiguous with the edge itself
            run.append(index)
            needed = EDGE_LINE_FILL / 2  # the line's own blurred rim is less full
        # A run filling the whole band is something thicker, like the bar of a tightly cropped 7.
        if len(run) < band:
            cleared += run
    return cleared


def darkness_on_paper(window: np.ndarray) -> np.ndarray:
    """How much darker than the window's paper each pixel is, 0-1 (the paper: its bright pixels): a form field's
    window, as watcher.forms.fields cuts it from an aligned page and from its template's reference."""
    paper = max(float(np.percentile(window[::3, ::3], 90)), 1.0)  # every third pixel tells the paper as well
    darkness: np.ndarray = np.clip(1.0 - window.astype(np.float32) / paper, 0.0, 1.0)
    return darkness


def without_print(ink: np.ndarray, printed: np.ndarray, *, slack: int, line_length: int) -> np.ndarray:
    """The ink that is not a form's print (`printed`: where its template's reference has ink, aligned): the page's
    ink away from the reference's (widened by `slack`), and where a pen stroke crosses a printed line, the line's
    pixels between its two sides.

    Beside a ruled line only the line is removed: the page's own straight run of ink there, and whatever lies on
    the reference's line itself; a stroke running along beside it (a 9's loop over the box's top edge) stays.
    """
    side = 2 * slack + 1
    ruled = _straight(printed, line_length)
    beside_line = _grown(ruled, side) & (_grown(_straight(ink, line_length), 3) | _grown(ruled, 3))
    covered = beside_line | _grown(printed & ~ruled, side)
    writing = ink & ~covered
    # A closing wider than the gap a removed line leaves joins a stroke's two sides, and only over the line.
    bridge = np.ones((2 * side + 1, 2 * side + 1), np.uint8)
    crossed = cv2.morphologyEx(writing.view(np.uint8), cv2.MORPH_CLOSE, bridge).astype(bool)
    joined: np.ndarray = writing | (crossed & ink & covered)
    return joined


def _straight(mask: np.ndarray, length: int) -> np.ndarray:
    """The mask's straight horizontal and vertical runs at least `length` px long: ruled lines, in reference
    coordinates."""
    along = cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    down = cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, np.ones((length, 1), np.uint8))
    straight: np.ndarray = np.logical_or(along, down)
    return straight


def _grown(mask: np.ndarray, side: int) -> np.ndarray:
    grown: np.ndarray = cv2.dilate(mask.view(np.uint8), np.ones((side, side), np.uint8)).astype(bool)
    return grown


def without_dark_margins(image: np.ndarray) -> np.ndarray:
    """The decoded image less a scanner's dark margins along its edges, as register cells cut from a page scan
    show them; the image itself when it has none, as a negative's (light writing on dark paper) has none. Found on a
    small grey copy, cut from the image at full size."""
    grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_BGR2GRAY)
    height, width = grey.shape
    shrink = min(1.0, MARGIN_SIDE / max(height, width))
    small = cv2.resize(
        grey, (max(1, round(width * shrink)), max(1, round(height * shrink))), interpolation=cv2.INTER_AREA
    )
    dark = small < MARGIN_DARK * percentile(small.copy(), 75)
    bands = [_band(dark.mean(axis=axis) >= MARGIN_FULL) for axis in (0, 1)]
    (left, right), (top, bottom) = ((round(first / shrink), round(last / shrink)) for first, last in bands)
    if left + right > MARGIN_MOST * width or top + bottom > MARGIN_MOST * height or not left + right + top + bottom:
        return image
    outline = np.concatenate([dark[0], dark[-1], dark[:, 0], dark[:, -1]])
    if outline.mean() > NEGATIVE_OUTLINE and dark.mean() > NEGATIVE_DARK:
        return image
    return image[top : height - bottom, left : width - right]


def _band(full: np.ndarray) -> tuple[int, int]:
    """How many of the first and of the last lines are margin: a run of full lines from each end, with a little
    more for its soft inner edge; none when the run is too thin to be a margin."""
    runs = []
    for flags in (full, full[::-1]):
        run = int(np.argmin(flags)) if not flags.all() else len(flags)
        runs.append(run + max(2, len(flags) // 50) if run >= max(3, MARGIN_LEAST * len(flags)) else 0)
    return runs[0], runs[1]


def as_grey(image: np.ndarray) -> np.ndarray:
    """Float32 grey in [0, 1] from 8/16-bit grey, BGR or BGRA (transparent pixels onto white paper)."""
    full = 65535.0 if image.dtype == np.uint16 else 255.0
    pixels: np.ndarray = image.astype(np.float32) / np.float32(full)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        alpha = pixels[:, :, 3:]
        pixels = pixels[:, :, :3] * alpha + (1.0 - alpha)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(np.ascontiguousarray(pixels[:, :, :3]), cv2.COLOR_BGR2GRAY)
    return np.asarray(pixels, np.float32)


def sheet_paper(
    grey: np.ndarray, *, side: int, eight_bit: np.ndarray | None = None, negative: bool = False
) -> np.ndarray:
    """A sheet's paper brightness everywhere, on its reduced copy: a closing wider than a stroke sees only paper,
    then smoothed.

    `eight_bit`: the 8-bit grey that `grey` was made from by `as_grey` (and turned, for a `negative`). A closing only
    picks pixels, so it is taken on the 8-bit pixels instead (an opening, for a negative), a third of the time for
    the same values."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))
    if eight_bit is None:
        paper = cv2.morphologyEx(grey, cv2.MORPH_CLOSE, kernel)
    else:
        paper = as_grey(cv2.morphologyEx(eight_bit, cv2.MORPH_OPEN if negative else cv2.MORPH_CLOSE, kernel))
        paper = 1.0 - paper if negative else paper
    return np.asarray(cv2.blur(paper, (side, side)), np.float32)


def relative_to_paper(grey: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """Each pixel's brightness as a share of its paper's: tinted paper and uneven light divide out. Paper can be
    pure black where a bilevel scan's dark edge is wider than the paper's window: no 0/0 there. (Divided in place of
    the floored paper: one page-sized array, not two.)"""
    relative: np.ndarray = np.maximum(paper, np.float32(1e-3), dtype=np.float32)
    np.divide(grey, relative, out=relative, dtype=np.float32)
    return relative


def contrast_of(relative: np.ndarray) -> np.ndarray:
    """How much darker than its paper each pixel is, 0-1, from its `relative_to_paper` brightness."""
    return np.asarray(np.clip(1.0 - relative, 0.0, 1.0), np.float32)


def ink_threshold(relative: np.ndarray, *, tile: int) -> np.ndarray:
    """The least contrast that is ink at each pixel of a sheet's reduced copy, given each pixel's brightness relative
    to its paper: the paper's noise is measured from the differences of nearby pixels, most of which lie on paper,
    over the whole page and over each tile `tile` px wide (the page's last part-tiles take their neighbours'),
    whichever is noisier."""
    differences: np.ndarray = cv2.absdiff(relative[:, 2:], relative[:, :-2])  # np.abs of the difference, one pass
    whole = float(pair_noise(np.median(differences[::4])))
    tile = min(tile, *differences.shape)
    rows, columns = (side // tile for side in differences.shape)
    tiles: np.ndarray = differences[: rows * tile, : columns * tile].reshape(rows, tile, columns, tile)
    # Every other row of each tile, as the whole page's every fourth: enough pairs, at less cost. (A copy, or on a
    # tiny page a view of the differences, whose whole-page median is taken: their medians may reorder them.)
    tiles = tiles[:, ::2].transpose(0, 2, 1, 3).reshape(rows, columns, -1)
    local = pair_noise(_last_axis_median(tiles).astype(np.float64)).astype(np.float32)
    # In place: each step over the page is one pass over one array (the float32 arithmetic unchanged).
    threshold: np.ndarray = cv2.resize(local, relative.shape[::-1], interpolation=cv2.INTER_LINEAR)
    np.maximum(threshold, np.float32(whole), out=threshold)
    np.multiply(threshold, np.float32(NOISE_FACTOR), out=threshold)
    np.maximum(threshold, np.float32(MIN_CONTRAST), out=threshold)
    return threshold


def _last_axis_median(values: np.ndarray) -> np.ndarray:
    """np.median(values, axis=-1) of finite float32 values that it may reorder (the same float32 mean of the middle
    two for an even count): np.median's copy, checks and mean cost half as much again on a sheet's tiles."""
    count = values.shape[-1]
    middle = count // 2
    if count % 2:
        values.partition(middle, axis=-1)
        return values[..., middle]
    values.partition((middle - 1, middle), axis=-1)
    middles: np.ndarray = (values[..., middle - 1] + values[..., middle]) / np.float32(2.0)
    return middles


def printed_lines(
    ink: np.ndarray, contrast: np.ndarray, *, faint: np.ndarray, length: int, gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sheet's printed lines (ruled, squared, a margin), on its reduced copy: long straight thin runs across or
    down the page; their rims (not writing, yet left to the full-resolution crop, which tells a line's pixels from a
    pen's by darkness); and the lines' whole trace, strokes crossing them included.

    Lines are found on the faint ink, where a thin line that fades in and out of the ink stays whole, its gaps up to
    `gap` px long bridged (a dashed line, as a bilevel scan leaves a faint one), then the bridges left out. Where a
    stroke crosses a line (ink right above and below it, or either side of a vertical one), its pixels are not the
    line's.
    """
    mask = faint.view(np.uint8)
    printed, rims, traced = np.zeros_like(ink), np.zeros_like(ink), np.zeros_like(ink)
    reach = LINE_REACH + 2 * LINE_RIM  # a line's rims make it thicker, on either side
    for run_shape, side_shape, along, page in (
        ((1, length), (reach, 1), cv2.CC_STAT_WIDTH, ink.shape[1]),
        ((length, 1), (1, reach), cv2.CC_STAT_HEIGHT, ink.shape[0]),
    ):
        solid = _long_runs(mask, run_shape, along=along, least=LINE_SHARE * page)
        bridged = cv2.morphologyEx(
            mask, cv2.MORPH_CLOSE, np.ones((1, gap) if run_shape[0] == 1 else (gap, 1), np.uint8)
        )
        # A dashed line lies apart from the solid ones: beside a solid line, bridging only thickens it.
        # (Within its rim and a row beyond.)
        across = np.ones(tuple(2 * LINE_RIM + 3 if side > 1 else 1 for side in side_shape), np.uint8)
        beside = cv2.dilate(solid.view(np.uint8), across).astype(bool)
        dashed = _long_runs(bridged, run_shape, along=along, least=LINE_SHARE * page) & faint & ~beside
        core = solid | dashed
        if not core.any():  # no line this way (plain paper)
            continue
        line = _with_rim(core, contrast, faint=faint, across=side_shape)
        off_line = (ink & ~line).view(np.uint8)
        side = np.ones(side_shape, np.uint8)
        # Dilating with the kernel anchored at its first or last pixel looks to one side of the line only.
        after = cv2.dilate(off_line, side, anchor=(0, 0)).astype(bool)
        before = cv2.dilate(off_line, side, anchor=(side_shape[1] - 1, side_shape[0] - 1)).astype(bool)
        uncrossed = line & ~(after & before)
        printed |= uncrossed & core
        rims |= uncrossed & ~core
        traced |= core
    return printed, rims, traced


def _long_runs(mask: np.ndarray, run_shape: tuple[int, int], *, along: int, least: float) -> np.ndarray:
    """The straight runs of `mask` as long as `run_shape`, in components at least `least` px long `along`."""
    length = max(run_shape)
    # A run needs that much ink in one row (or column); short of it, an opening keeps only runs against the page's
    # edge (its border counts as ink), which reach less than twice the run's length in.
    if least > 2 * length:
        inked = cv2.reduce(mask, 1 if run_shape[0] == 1 else 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
        if int(inked.max()) < length:
            return np.zeros(mask.shape, bool)
    runs = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones(run_shape, np.uint8))
    # No component reaches further than all of the runs together (on plain paper, there are none).
    reached = np.flatnonzero(runs.any(axis=0 if along == cv2.CC_STAT_WIDTH else 1))
    if not len(reached) or reached[-1] - reached[0] + 1 < least:
        return np.zeros(mask.shape, bool)
    _, labels, stats = components(runs)
    long_runs = stats[:, along] >= least
    long_runs[0] = False
    return np.asarray(long_runs[labels])


def _with_rim(line: np.ndarray, contrast: np.ndarray, *, faint: np.ndarray, across: tuple[int, int]) -> np.ndarray:
    """The line's runs and its rim: the faint ink within LINE_RIM px beside them, across the line (`across` is the
    shape of a kernel lying across it), that holds the rest of a thin line's darkness (a pen's stroke along the line,
    or crossing it at a slant, is darker than the line beside it)."""
    if not line.any():
        return line
    whole = float(np.percentile(contrast[line], LINE_WHOLE))
    rim = np.ones(tuple(2 * LINE_RIM + 1 if side > 1 else 1 for side in across), np.uint8)
    beside = cv2.dilate(np.where(line, contrast, 0.0).astype(np.float32), rim)
    return line | (faint & (beside > 0) & (contrast + beside <= LINE_SPLIT * whole))


def without_edge_bands(ink: np.ndarray, *, band: int) -> np.ndarray:
    """A sheet's ink without the scanner's dark bands: rows or columns within `band` px of an edge mostly inked,
    and all beyond them."""
    ink = ink.copy()
    for view in (ink, ink[::-1], ink.T, ink.T[::-1]):  # from each edge inwards, as rows of the view
        filled = _from_the_edge(np.flatnonzero(view[:band].mean(axis=1) >= EDGE_FILL))
        if len(filled):
            view[: filled[-1] + 1 + LINE_REACH] = False
    return ink


def _from_the_edge(filled: np.ndarray) -> np.ndarray:
    """The filled rows that reach the edge, no more than LINE_REACH rows apart: a scanner's band lies against the
    page's edge, where a printed line near it (a square's, a margin's) lies apart, with paper between. Clearing up to
    such a line would cut in two whatever lies across it (a punched hole's shadow, a digit), and a part passes for
    writing where the whole would not."""
    if not len(filled) or filled[0] > LINE_REACH:
        return filled[:0]
    apart = np.flatnonzero(np.diff(filled) > LINE_REACH)
    return filled[: apart[0] + 1] if len(apart) else filled


def beyond_the_page(paper: np.ndarray, labels: np.ndarray) -> set[int]:
    """The labels of pieces touching where the paper is dark: the scanner's lid beyond a page lying askew, whose
    rim against the page breaks into slivers of ink that touch neither the border nor a cleared band."""
    if float(paper.min()) >= OFF_PAGE * float(paper.max()):  # no paper is that dark (the median is the max at most)
        return set()
    off_page = (paper < OFF_PAGE * float(np.median(paper))).view(np.uint8)
    near = cv2.dilate(off_page, np.ones((2 * LINE_REACH + 1, 2 * LINE_REACH + 1), np.uint8)).astype(bool)
    return set(np.unique(labels[near]).tolist()) - {0}


def line_pixels(contrast: np.ndarray, *, own: np.ndarray, near_line: np.ndarray, uncrossed: np.ndarray) -> np.ndarray:
    """The full-resolution pixels of a sheet's printed lines, in a crop of it: near a line, and fainter than the pen
    (a stroke crossing a line is as dark as the pen, where it crosses too). For a line as dark as the pen, the
    reduced copy's line pixels that no stroke crosses."""
    line_ink = contrast[near_line & (contrast > INK_FLOOR)]
    pen_ink = contrast[own & ~near_line & (contrast > INK_FLOOR)]
    if not line_ink.size or not pen_ink.size:
        return uncrossed
    line_level, pen_level = float(np.median(line_ink)), float(np.percentile(pen_ink, 90))
    if pen_level - line_level < PEN_OVER_LINE:
        return uncrossed
    return near_line & (contrast < (line_level + pen_level) / 2)
