"""Find the handwriting on a whole sheet: located on a reduced copy, cropped from the full-resolution page.

A number written 1 cm tall on an A4 page is a few percent of the page; shrunk whole to the working size of
`normalise` it becomes specks. Here the ink is found at about 2.7 px per mm, where ruled lines, scanner edges and
specks are told from handwriting by their physical size, and only the handwriting's own box is read at full size.
What serving reads on a page is the writing found here (watcher.vision.digits.page_digits).
"""

from __future__ import annotations

import cv2
import numpy as np

from watcher.vision.paper import pair_noise
from watcher.vision.pieces import HANGS_LOW, Box, as_mask, components, extent_of, lines_of_writing

READ_SIDE = 1650  # sheets read as well at 150 dpi as at 300 (bench/sheetset.py), so a page that may be a sheet is
# decoded smaller where that is cheaper, its longer side this long at least (Letter's 11 in at 150 dpi; A4's 1754 px)
REDUCED_SIDE = 800  # the reduced copy's longer side: about 2.7 px per mm on A4, so a 0.3 mm pen line stays a pixel
PAGE_MM = 297.0  # a sheet's longer side is taken as A4's; Letter (279 mm) and A5 (210 mm) only shift mm a little
SHEET_MIN_SIDE = 1000  # a page this many px long at least may be a sheet (A5 at 150 dpi is 1240 px long)
SHEET_SHARE = 0.25  # on a sheet the writing is at most a quarter of the page's shorter side tall (25 mm on A5)
BACKGROUND_MM = 8.0  # the paper is judged over windows wider than any stroke (a marker is 2 mm), yet local
MIN_CONTRAST = 0.18  # ink darkens the paper by 18 % at least; a scan's noise, after reduction, by far less
NOISE_FACTOR = 6.0  # ...or by six times the paper's noise, on a noisy scan
NOISE_MM = 20.0  # ...judged over the page and over tiles this wide: a bilevel scan turns paper whose grey sat near
# the scanner's black level (a shadow, uneven light) into a patch of random black dots, its noise local; a digit's
# stroke edges are a minority of a tile's pixels, so its noise is the paper's
FAINT_LINE = 0.5  # a printed line is traced on ink half as dark as the least ink, so it stays whole
LINE_MM = 30.0  # a straight run of ink this long is a printed line (a digit's longest stroke is 25 mm)
LINE_SHARE = 0.3  # ...and it must run over 30 % of the page, or it is a writer's stroke (a long underline)
LINE_REACH = 3  # a crossing stroke's ink lies within 3 px beside a line (lines are 1-2 px thick on the copy)
LINE_GAP_MM = 3.0  # a printed line whose grey is near a bilevel scan's black level comes out dashed, its gaps up to
# 3 mm: bridged along the line (digits never stand in one pixel's column or row for 30 % of a page, however bridged)
LINE_RIM = 1  # a printed line under a pixel thick on the copy straddles two rows where it falls between them; the
# fainter row's ink breaks where the scan's noise (or a bilevel scan's black level) dips, so it is the line's within
# a pixel beside its run, never a run of its own
LINE_WHOLE = 90  # ...a pixel the line fills whole is as dark as the 90th percentile of its pixels (pens crossing it
# are a few of them)...
LINE_SPLIT = 1.5  # ...and the two rows together hold no more than 1.5 such pixels: a line is at most 0.5 mm thick
EDGE_MM = 10.0  # the scanner's dark bands lie within 10 mm of the page's edge...
EDGE_FILL = 0.5  # ...and fill at least half of their row or column
OFF_PAGE = 0.5  # paper under half as bright as the page's typical paper is the scanner's lid beyond the page's edge
SOLID_SHARE = 0.6  # ink at least 3 mm long and this thick for its length is a blot, such as a punched hole's shadow
# (a disk: 1.0); of MNIST validation digits' pieces that long, 1 in 1,000 is as thick, at any size from 4 to 25 mm
SPECK_MM = 1.2  # ink whose longer side is under 1.2 mm is a speck or a full stop, not a digit's stroke
MIN_DIGIT_MM = 3.0  # a line of handwriting is at least 3 mm tall (the smallest digits are 4 mm), and so is one of
# its pieces at least: a cluster of specks (a speckled shadow on a bilevel scan) is taller than any of its specks
GAP_HEIGHTS = 1.0  # digits of one number lie within one digit height of each other
TRAIL_LOW = HANGS_LOW  # a piece after the last digit that starts below the writing's middle...
TRAIL_HEIGHT = 0.45  # ...and is under 45 % of its height is a full stop or a comma;
COMMA_WIDTH = 0.35  # ...one narrower than 35 % of its height that hangs below its baseline is a comma's tail
KEEP_MM = 0.5  # ink within half a mm of the found strokes is theirs (anti-aliased rims, fragments)
INK_FLOOR = 0.08  # at full resolution, contrast under 8 % is paper, not a line's or a stroke's pixel
PEN_OVER_LINE = 0.15  # a pen at least 15 % darker than the printed lines is told from them by its darkness
MARGIN = 0.3  # the crop reaches 30 % of the writing's height beyond it, as a cut-out field's margin does


def sheet_crops(image: np.ndarray) -> list[np.ndarray] | None:
    """The handwriting on a sheet, each line of it a full-resolution uint8 crop (dark ink on white), largest first.

    None when the image is not a sheet (small, or its ink fills it as a cut-out field's does): read it as it is.
    An empty list for a blank sheet.
    """
    height, width = image.shape[:2]
    if max(height, width) < SHEET_MIN_SIDE:
        return None
    scale = REDUCED_SIDE / max(height, width)
    per_mm = REDUCED_SIDE / PAGE_MM
    small = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    reduced = _grey(small)
    # A negative scan has a dark paper: the page's typical pixel is paper.
    negative = _mostly_dark(reduced)
    reduced = 1.0 - reduced if negative else reduced
    eight_bit = small if small.dtype == np.uint8 and small.ndim == 2 else None
    paper = _paper(reduced, side=int(BACKGROUND_MM * per_mm) | 1, eight_bit=eight_bit, negative=negative)
    # Paper can be pure black where a bilevel scan's dark edge is wider than the paper's window: no 0/0 there.
    relative = reduced / np.maximum(paper, 1e-3)
    contrast = np.asarray(np.clip(1.0 - relative, 0.0, 1.0), np.float32)  # _contrast, its division shared
    threshold = _threshold(relative, tile=int(NOISE_MM * per_mm))
    ink = _clear_edge_bands(contrast > threshold, band=int(EDGE_MM * per_mm))
    printed, rims, traced = _printed_lines(
        ink,
        contrast,
        faint=contrast > FAINT_LINE * threshold,
        length=int(LINE_MM * per_mm),
        gap=int(LINE_GAP_MM * per_mm),
    )
    strokes = ink & ~printed & ~rims
    _, labels, stats = components(as_mask(strokes))
    pieces = [
        Box(label, int(x), int(y), int(x + w), int(y + h))
        for label, (x, y, w, h, _) in enumerate(stats[1:], start=1)
        if max(w, h) >= SPECK_MM * per_mm and x > 0 and y > 0 and x + w < labels.shape[1] and y + h < labels.shape[0]
    ]  # pieces touching the border are the paper's edge
    thickness = _thickness(ink) if pieces else ink
    beyond = _beyond_the_page(paper, labels) if pieces else set()
    pieces = [
        piece
        for piece in pieces
        if piece.label not in beyond
        and not _blot(piece, labels, thickness, least=MIN_DIGIT_MM * per_mm)
        and not _hairline(piece, least=LINE_MM * per_mm, thinnest=MIN_DIGIT_MM * per_mm)
    ]
    lines = [_drop_trailing_marks(line) for line in lines_of_writing(pieces, gap=GAP_HEIGHTS)]
    # The line's tallest piece is at least as tall as the line must be (a digit is one piece, or mostly one).
    lines = [line for line in lines if max(piece.height for piece in line) >= MIN_DIGIT_MM * per_mm]
    if any(extent_of(line).height > SHEET_SHARE * min(labels.shape) for line in lines):
        return None
    lines.sort(key=lambda line: -sum(int(stats[piece.label, cv2.CC_STAT_AREA]) for piece in line))
    reach = 2 * max(1, round(KEEP_MM * per_mm)) + 1
    # A reduced pixel holds several full-resolution ones: the line may lie in its neighbour too.
    near_line = cv2.dilate(traced.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    crops = []
    for line in lines:
        # The full-resolution strokes are the ink near the line's own pieces: lines, specks and marks are not.
        chosen = np.zeros(len(stats), np.uint8)
        chosen[[piece.label for piece in line]] = 1
        own = chosen[labels]
        own = cv2.dilate(own, np.ones((reach, reach), np.uint8)).astype(bool)
        crops.append(_crop(image, own, (near_line, printed), paper, line, scale=scale, negative=negative))
    return crops


def _mostly_dark(grey: np.ndarray) -> bool:
    """Whether the median pixel is under mid-grey, from a count of the dark pixels (a median sorts the page: 5 ms)."""
    dark = 2 * np.count_nonzero(grey < 0.5)
    if dark == grey.size:  # the middle two pixels lie either side of mid-grey: their mean decides
        return float(np.median(grey)) < 0.5
    return bool(dark > grey.size)


def _grey(image: np.ndarray) -> np.ndarray:
    """Float32 grey in [0, 1] from 8/16-bit grey, BGR or BGRA (transparent pixels onto white paper)."""
    full = 65535.0 if image.dtype == np.uint16 else 255.0
    pixels: np.ndarray = image.astype(np.float32) / np.float32(full)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        alpha = pixels[:, :, 3:]
        pixels = pixels[:, :, :3] * alpha + (1.0 - alpha)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(np.ascontiguousarray(pixels[:, :, :3]), cv2.COLOR_BGR2GRAY)
    return np.asarray(pixels, np.float32)


def _paper(grey: np.ndarray, *, side: int, eight_bit: np.ndarray | None = None, negative: bool = False) -> np.ndarray:
    """The paper's brightness everywhere: a closing wider than a stroke sees only paper, then smoothed.

    `eight_bit`: the 8-bit grey that `grey` was made from by `_grey` (and turned, for a `negative`). A closing only
    picks pixels, so it is taken on the 8-bit pixels instead (an opening, for a negative), a third of the time for
    the same values."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))
    if eight_bit is None:
        paper = cv2.morphologyEx(grey, cv2.MORPH_CLOSE, kernel)
    else:
        paper = _grey(cv2.morphologyEx(eight_bit, cv2.MORPH_OPEN if negative else cv2.MORPH_CLOSE, kernel))
        paper = 1.0 - paper if negative else paper
    return np.asarray(cv2.blur(paper, (side, side)), np.float32)


def _contrast(grey: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """How much darker than its paper each pixel is, as a share of the paper's brightness: tinted paper and uneven
    light divide out."""
    return np.asarray(np.clip(1.0 - grey / np.maximum(paper, 1e-3), 0.0, 1.0), np.float32)


def _threshold(relative: np.ndarray, *, tile: int) -> np.ndarray:
    """The least contrast that is ink at each pixel, given each pixel's brightness relative to its paper: the
    paper's noise is measured from the differences of nearby pixels, most of which lie on paper, over the whole page
    and over each tile `tile` px wide (the page's last part-tiles take their neighbours'), whichever is noisier."""
    differences = np.abs(relative[:, 2:] - relative[:, :-2])
    whole = float(pair_noise(np.median(differences[::4])))
    tile = min(tile, *differences.shape)
    rows, columns = (side // tile for side in differences.shape)
    tiles = differences[: rows * tile, : columns * tile].reshape(rows, tile, columns, tile)
    # Every other row of each tile, as the whole page's every fourth: enough pairs, at less cost.
    tiles = tiles[:, ::2].transpose(0, 2, 1, 3).reshape(rows, columns, -1)
    local = pair_noise(np.median(tiles, axis=2).astype(np.float64)).astype(np.float32)
    noise = np.maximum(whole, cv2.resize(local, relative.shape[::-1], interpolation=cv2.INTER_LINEAR))
    return np.asarray(np.maximum(MIN_CONTRAST, NOISE_FACTOR * noise), np.float32)


def _clear_edge_bands(ink: np.ndarray, *, band: int) -> np.ndarray:
    """The ink without the scanner's dark bands: rows or columns near an edge mostly inked, and all beyond them."""
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


def _beyond_the_page(paper: np.ndarray, labels: np.ndarray) -> set[int]:
    """The labels of pieces touching where the paper is dark: the scanner's lid beyond a page lying askew, whose
    rim against the page breaks into slivers of ink that touch neither the border nor a cleared band."""
    if float(paper.min()) >= OFF_PAGE * float(paper.max()):  # no paper is that dark (the median is the max at most)
        return set()
    off_page = (paper < OFF_PAGE * float(np.median(paper))).view(np.uint8)
    near = cv2.dilate(off_page, np.ones((2 * LINE_REACH + 1, 2 * LINE_REACH + 1), np.uint8)).astype(bool)
    return set(np.unique(labels[near]).tolist()) - {0}


def _thickness(ink: np.ndarray) -> np.ndarray:
    """The ink's thickness at each pixel: twice the distance to the nearest paper. Printed lines count in, so a
    shadow a line crosses is as thick as it is whole."""
    return np.asarray(2 * cv2.distanceTransform(ink.view(np.uint8), cv2.DIST_L2, 3), np.float32)


def _hairline(piece: Box, *, least: float, thinnest: float) -> bool:
    """Whether a piece is a line no digit makes: longer than a digit's longest stroke, yet narrower than the
    smallest digit is tall (a fold's crease, the rim of a page's shadow, a ruled line the finder missed)."""
    width, height = piece.right - piece.left, piece.height
    return max(width, height) > least and min(width, height) < thinnest


def _blot(piece: Box, labels: np.ndarray, thickness: np.ndarray, *, least: float) -> bool:
    """Whether a piece at least `least` px long is ink no pen writes: as thick as it is long (a punched hole's
    shadow, an ink blot), where a pen's stroke is long and thin."""
    longer = max(piece.right - piece.left, piece.height)
    own = labels[piece.top : piece.bottom, piece.left : piece.right] == piece.label
    thickest = float(thickness[piece.top : piece.bottom, piece.left : piece.right][own].max())
    return longer >= least and thickest >= SOLID_SHARE * longer


def _printed_lines(
    ink: np.ndarray, contrast: np.ndarray, *, faint: np.ndarray, length: int, gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ink of printed lines (ruled, squared, a margin): long straight thin runs across or down the page; their
    rims (not writing, yet left to the full-resolution crop, which tells a line's pixels from a pen's by darkness);
    and the lines' whole trace, strokes crossing them included.

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


def _drop_trailing_marks(line: list[Box]) -> list[Box]:
    """The line without the full stops and commas after its last digit: low pieces at its right end, short, or
    narrow and hanging below the digits (a comma drawn with a long tail, beside small digits)."""
    line = sorted(line, key=lambda piece: piece.right)
    while len(line) > 1:
        extent = extent_of(line[:-1])
        last = line[-1]
        low = last.top >= extent.top + TRAIL_LOW * extent.height
        short = last.height < TRAIL_HEIGHT * extent.height
        tail = (
            last.right - last.left < COMMA_WIDTH * extent.height
            and extent.bottom < last.bottom < extent.bottom + extent.height
        )
        if not (low and (short or tail)):
            break
        line.pop()
    return line


def _crop(
    image: np.ndarray,
    own: np.ndarray,
    lines: tuple[np.ndarray, np.ndarray],
    paper: np.ndarray,
    line: list[Box],
    *,
    scale: float,
    negative: bool,
) -> np.ndarray:
    """The line's box with a margin, from the full-resolution page: its own ink kept, flattened onto white.

    On the reduced copy, `own` marks the pixels near the writing's strokes, `lines` those near printed lines and
    those of the lines not crossed by a stroke, and `paper` the paper's brightness.
    """
    extent = extent_of(line)
    margin = MARGIN * extent.height
    height, width = image.shape[:2]
    left, top = max(0, int((extent.left - margin) / scale)), max(0, int((extent.top - margin) / scale))
    right = min(width, int(np.ceil((extent.right + margin) / scale)))
    bottom = min(height, int(np.ceil((extent.bottom + margin) / scale)))
    grey = _grey(image[top:bottom, left:right])
    if negative:
        grey = 1.0 - grey
    # Each full-resolution pixel takes the reduced pixel it fell into: whose ink it is, and the paper under it.
    rows = np.minimum((np.arange(top, bottom) * scale).astype(np.intp), own.shape[0] - 1)
    columns = np.minimum((np.arange(left, right) * scale).astype(np.intp), own.shape[1] - 1)
    area = np.ix_(rows, columns)
    contrast = _contrast(grey, paper[area])
    near_line, uncrossed = (mask[area] for mask in lines)
    kept = own[area] & ~_line_pixels(contrast, own=own[area], near_line=near_line, uncrossed=uncrossed)
    return np.round(255.0 * (1.0 - np.where(kept, contrast, 0.0))).astype(np.uint8)


def _line_pixels(contrast: np.ndarray, *, own: np.ndarray, near_line: np.ndarray, uncrossed: np.ndarray) -> np.ndarray:
    """The full-resolution pixels of printed lines: near a line, and fainter than the pen (a stroke crossing a
    line is as dark as the pen, where it crosses too). For a line as dark as the pen, the reduced copy's line pixels
    that no stroke crosses."""
    line_ink = contrast[near_line & (contrast > INK_FLOOR)]
    pen_ink = contrast[own & ~near_line & (contrast > INK_FLOOR)]
    if not line_ink.size or not pen_ink.size:
        return uncrossed
    line_level, pen_level = float(np.median(line_ink)), float(np.percentile(pen_ink, 90))
    if pen_level - line_level < PEN_OVER_LINE:
        return uncrossed
    return near_line & (contrast < (line_level + pen_level) / 2)
