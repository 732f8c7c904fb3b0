"""Find the handwriting on a whole sheet: located on a reduced copy, cropped from the full-resolution page.

A number written 1 cm tall on an A4 page is a few percent of the page; shrunk whole to the working size of
`normalise` it becomes specks. Here the ink is found at about 2.7 px per mm, where ruled lines, scanner edges and
specks are told from handwriting by their physical size, and only the handwriting's own box is read at full size.
What serving reads on a page is the writing found here (watcher.vision.digits.page_digits).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from watcher.vision.paper import (
    as_grey,
    beyond_the_page,
    contrast_of,
    ink_threshold,
    line_pixels,
    printed_lines,
    relative_to_paper,
    sheet_paper,
    without_edge_bands,
)
from watcher.vision.pieces import (
    HANGS_LOW,
    Box,
    as_mask,
    boxed_components,
    components,
    extent_of,
    ink_box,
    lines_of_writing,
)

READ_SIDE = 1650  # sheets read as well at 150 dpi as at 300 (bench/sheetset.py), so a page that may be a sheet is
# decoded smaller where that is cheaper, its longer side this long at least (Letter's 11 in at 150 dpi; A4's 1754 px)
REDUCED_SIDE = 800  # the reduced copy's longer side, about: 2.7 px per mm on A4, so a 0.3 mm pen line stays a pixel.
# The page is averaged over whole blocks, the factor nearest to this (the copy 600-1000 px long): OpenCV averages
# whole blocks for a fraction of the cost of fractional areas (a 1754-px page halved: 0.1 instead of 3.9 ms; by 3
# from 2339 px 1.6 instead of 6.1; by 4 from 3508 px 3.1 instead of 15)
LEVEL_SAMPLE = 8  # a page's levels are counted on every 8th row
PAGE_MM = 297.0  # a sheet's longer side is taken as A4's; Letter (279 mm) and A5 (210 mm) only shift mm a little
SHEET_MIN_SIDE = 1000  # a page this many px long at least may be a sheet (A5 at 150 dpi is 1240 px long)
SHEET_SHARE = 0.25  # on a sheet the writing is at most a quarter of the page's shorter side tall (25 mm on A5)
BACKGROUND_MM = 8.0  # the paper is judged over windows wider than any stroke (a marker is 2 mm), yet local
NOISE_MM = 20.0  # the paper's noise is judged over the page and over tiles this wide: a bilevel scan turns paper
# whose grey sat near the scanner's black level (a shadow, uneven light) into a patch of random black dots, its noise
# local; a digit's stroke edges are a minority of a tile's pixels, so its noise is the paper's
FAINT_LINE = 0.5  # a printed line is traced on ink half as dark as the least ink, so it stays whole
LINE_MM = 30.0  # a straight run of ink this long is a printed line (a digit's longest stroke is 25 mm)
LINE_GAP_MM = 3.0  # a printed line whose grey is near a bilevel scan's black level comes out dashed, its gaps up to
# 3 mm: bridged along the line (digits never stand in one pixel's column or row for 30 % of a page, however bridged)
EDGE_MM = 10.0  # the scanner's dark bands lie within 10 mm of the page's edge
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
MARGIN = 0.3  # the crop reaches 30 % of the writing's height beyond it, as a cut-out field's margin does


def sheet_crops(image: np.ndarray, *, bilevel: bool = False) -> list[np.ndarray] | None:
    """The handwriting on a sheet, each line of it a full-resolution uint8 crop (dark ink on white), largest first.

    None when the image is not a sheet (small, or its ink fills it as a cut-out field's does): read it as it is.
    An empty list for a blank sheet. `bilevel`: the page is a black-and-white scan at its own resolution, though it
    may hold a few greys (one PDFium drew; see `reduced_copy`).
    """
    height, width = image.shape[:2]
    if max(height, width) < SHEET_MIN_SIDE:
        return None
    small, reduction = reduced_copy(image, bilevel=bilevel)
    per_mm = max(small.shape[:2]) / PAGE_MM
    reduced = as_grey(small)
    # A negative scan has a dark paper: the page's typical pixel is paper.
    negative = _mostly_dark(reduced)
    reduced = 1.0 - reduced if negative else reduced
    eight_bit = small if small.dtype == np.uint8 and small.ndim == 2 else None
    paper = sheet_paper(reduced, side=int(BACKGROUND_MM * per_mm) | 1, eight_bit=eight_bit, negative=negative)
    # The contrast and the paper's noise are both judged on the brightness relative to the paper.
    relative = relative_to_paper(reduced, paper)
    contrast = contrast_of(relative)
    threshold = ink_threshold(relative, tile=int(NOISE_MM * per_mm))
    ink = without_edge_bands(contrast > threshold, band=int(EDGE_MM * per_mm))
    printed, rims, traced = printed_lines(
        ink,
        contrast,
        faint=contrast > FAINT_LINE * threshold,
        length=int(LINE_MM * per_mm),
        gap=int(LINE_GAP_MM * per_mm),
    )
    labels, stats = _page_components(as_mask(ink & ~printed & ~rims))
    lines = _written_lines(labels, stats, ink, paper, per_mm=per_mm)
    if any(extent_of(line).height > SHEET_SHARE * min(labels.shape) for line in lines):
        return None
    reach = 2 * max(1, round(KEEP_MM * per_mm)) + 1
    # A reduced pixel holds several full-resolution ones: the line may lie in its neighbour too.
    near_line = cv2.dilate(traced.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    owns = [_near(line, labels, count=len(stats), reach=reach) for line in lines]
    return [
        _crop(image, own, (near_line, printed), paper, line, reduction=reduction, negative=negative)
        for line, own in zip(lines, owns, strict=True)
    ]


class Reduction(NamedTuple):
    """How the reduced copy lies on the page: each of its pixels a block of `factor`×`factor` page pixels, or (factor
    0) fractional areas, the page `scale` times as long."""

    factor: int
    scale: float

    def to_page(self, position: float) -> float:
        """A position on the copy (a box's edge), in page pixels."""
        return position * self.factor if self.factor else position / self.scale

    def to_copy(self, indices: np.ndarray) -> np.ndarray:
        """The copy's rows (or columns) the page's rows (or columns) `indices` fell into: by integer division for
        whole blocks, where a float product could fall a hair short of a block's edge."""
        if self.factor:
            blocks: np.ndarray = indices // self.factor
            return blocks
        return (indices * self.scale).astype(np.intp)


def reduced_copy(image: np.ndarray, *, bilevel: bool = False) -> tuple[np.ndarray, Reduction]:
    """The sheet finder's copy of the page, about REDUCED_SIDE px long, and how it lies on the page.

    The page is averaged over whole factor×factor blocks (OpenCV's whole-factor INTER_AREA), its last rows and
    columns dropped where they make no whole block. Reduced by fractional areas to REDUCED_SIDE px instead, as
    before: a page under 1.5 times as long (no whole factor comes near), and a bilevel scan at its own resolution,
    a page of two levels or one the caller says is `bilevel` (PDFium's drawing of one leaves a few greys where it
    resamples). Averaged over whole blocks of 4 or 9 pixels, a shade the scanner dithered into dots gives contrasts
    of exactly 1/4 or 2/9, just over the least that is ink (paper.MIN_CONTRAST), where fractional areas share a dot
    between pixels: so reduced, 4 of bench/bilevelset.py's 200 blank sheets with office marks were read as numbers
    in black and white (written as G4 PDFs, 3), and tests/test_sheet.py's speckled shade was writing.
    """
    height, width = image.shape[:2]
    longer = max(height, width)
    factor = round(longer / REDUCED_SIDE)
    if factor < 2 or bilevel or _two_levels(image):
        scale = REDUCED_SIDE / longer
        small = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        return np.asarray(small), Reduction(0, scale)
    whole = image[: height // factor * factor, : width // factor * factor]
    small = cv2.resize(whole, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    return np.asarray(small), Reduction(factor, 1 / factor)


def _two_levels(image: np.ndarray) -> bool:
    """Whether an 8-bit grey page holds two levels at most (a bilevel scan, decoded at its own size), from a count
    of the levels on a sample of its rows."""
    if image.dtype != np.uint8 or image.ndim != 2:
        return False
    levels = cv2.calcHist([image[::LEVEL_SAMPLE]], [0], None, [256], [0, 256])
    return int(np.count_nonzero(levels)) <= 2


def _page_components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The labels and stats of `components` of a page's mask, labelled within its ink's box alone: OpenCV gathers
    the statistics by the pixel (2 ms on an 877-px copy, against 0.4 for the labels), and the ink is a small part of
    most pages. The box starts on an even row and column, so the labelling's 2x2 blocks, and with them the labels,
    are those of the whole page."""
    rows, columns = ink_box(mask)
    if rows.start == rows.stop:
        _, labels, stats = components(mask)
        return labels, stats
    box = (slice(rows.start & ~1, rows.stop), slice(columns.start & ~1, columns.stop))
    _, boxed, stats = boxed_components(mask, box)
    labels = np.zeros(mask.shape, np.int32)
    labels[box] = boxed
    return labels, stats


def _written_lines(
    labels: np.ndarray, stats: np.ndarray, ink: np.ndarray, paper: np.ndarray, *, per_mm: float
) -> list[list[Box]]:
    """The lines of writing among the strokes' pieces (`labels`, `stats`), the most ink first: no specks, no pieces
    of the paper's edge or beyond it, no blots, no hairlines, no trailing marks, and no line too low for a digit."""
    pieces = [
        Box(label, int(x), int(y), int(x + w), int(y + h))
        for label, (x, y, w, h, _) in enumerate(stats[1:], start=1)
        if max(w, h) >= SPECK_MM * per_mm and x > 0 and y > 0 and x + w < labels.shape[1] and y + h < labels.shape[0]
    ]  # pieces touching the border are the paper's edge
    thickness = _thickness(ink) if pieces else ink
    beyond = beyond_the_page(paper, labels) if pieces else set()
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
    lines.sort(key=lambda line: -sum(int(stats[piece.label, cv2.CC_STAT_AREA]) for piece in line))
    return lines


def _near(line: list[Box], labels: np.ndarray, *, count: int, reach: int) -> np.ndarray:
    """Where on the reduced copy the line's own pieces lie (of `count` labels), widened by `reach` px: the
    full-resolution strokes are the ink near them, and printed lines, specks and marks are not. Worked out around
    the line alone (its box widened by the reach), the rest of the page being none of it."""
    chosen = np.zeros(count, np.uint8)
    chosen[[piece.label for piece in line]] = 1
    extent, side = extent_of(line), reach // 2
    window = (
        slice(max(0, extent.top - side), extent.bottom + side),
        slice(max(0, extent.left - side), extent.right + side),
    )
    own = np.zeros(labels.shape, bool)
    own[window] = cv2.dilate(chosen[labels[window]], np.ones((reach, reach), np.uint8)).astype(bool)
    return own


def _mostly_dark(grey: np.ndarray) -> bool:
    """Whether the median pixel is under mid-grey, from a count of the dark pixels (a median sorts the page: 5 ms)."""
    dark = 2 * np.count_nonzero(grey < 0.5)
    if dark == grey.size:  # the middle two pixels lie either side of mid-grey: their mean decides
        return float(np.median(grey)) < 0.5
    return bool(dark > grey.size)


def _thickness(ink: np.ndarray) -> np.ndarray:
    """The ink's thickness at each pixel: twice the distance to the nearest paper. Printed lines count in, so a
    shadow a line crosses is as thick as it is whole.

    Measured within the ink's box and the paper around it alone (the distance is a shortest path, and the paper
    around the box lies on every path out of it), the rest of the page being paper: on plain paper, a small part of
    the page."""
    rows, columns = ink_box(as_mask(ink))
    around = (slice(max(0, rows.start - 1), rows.stop + 1), slice(max(0, columns.start - 1), columns.stop + 1))
    thickness = np.zeros(ink.shape, np.float32)
    if rows.start < rows.stop:
        thickness[around] = 2 * cv2.distanceTransform(as_mask(ink[around]), cv2.DIST_L2, 3)
    return thickness


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
    reduction: Reduction,
    negative: bool,
) -> np.ndarray:
    """The line's box with a margin, from the full-resolution page: its own ink kept, flattened onto white.

    On the reduced copy (lying on the page as `reduction` says), `own` marks the pixels near the writing's strokes,
    `lines` those near printed lines and those of the lines not crossed by a stroke, and `paper` the paper's
    brightness.
    """
    extent = extent_of(line)
    margin = MARGIN * extent.height
    height, width = image.shape[:2]
    left = max(0, int(reduction.to_page(extent.left - margin)))
    top = max(0, int(reduction.to_page(extent.top - margin)))
    right = min(width, int(np.ceil(reduction.to_page(extent.right + margin))))
    bottom = min(height, int(np.ceil(reduction.to_page(extent.bottom + margin))))
    grey = as_grey(image[top:bottom, left:right])
    if negative:
        grey = 1.0 - grey
    # Each full-resolution pixel takes the reduced pixel it fell into: whose ink it is, and the paper under it.
    rows = np.minimum(reduction.to_copy(np.arange(top, bottom)), own.shape[0] - 1)
    columns = np.minimum(reduction.to_copy(np.arange(left, right)), own.shape[1] - 1)
    area = np.ix_(rows, columns)
    contrast = contrast_of(relative_to_paper(grey, paper[area]))
    near_line, uncrossed = (mask[area] for mask in lines)
    kept = own[area] & ~line_pixels(contrast, own=own[area], near_line=near_line, uncrossed=uncrossed)
    return np.round(255.0 * (1.0 - np.where(kept, contrast, 0.0))).astype(np.uint8)
