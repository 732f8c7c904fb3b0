"""A field's writing as the sequence reader reads it: the cleaned ink cropped to the writing, at a fixed height."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

from watcher.vision.fit import fit_digit
from watcher.vocabulary import CANVAS_PX

FIELD_HEIGHT = 32  # the writing is read this many px tall: a digit's loops stay open, and a field costs little
FIELD_WIDTH = 192  # px; wider writing is squeezed to fit (six times its height: eight digits and their marks)
INK_FLOOR = 0.1  # ink maps below this are the rims of strokes, not the writing's extent
PAD = 0.08  # a margin of this share of the height around the writing, as the network was trained
# A scanner's dark margin (the lid's shadow, the platen beyond the page) along an edge of a cut-out cell:
MARGIN_DARK = 0.5  # its pixels are darker than half the paper's brightness...
MARGIN_FULL = 0.95  # ...in 95 % of a column (or row): no written stroke fills a field's whole height with margins
MARGIN_LEAST = 0.03  # ...over at least 3 % of the width (or height), else it is a line the cleaning erases
MARGIN_MOST = 0.6  # a "margin" over 60 % of the image is no margin: the image is left whole
MARGIN_SIDE = 256  # judged on a copy at most this long
# The writing in a field is its tallest line of ink; a cell's walls, rules and printed words beside it are not:
SPECK = 0.15  # ink under 15 % of the tallest piece's height both ways is a speck (a full stop stays with its line)
WALL = 3.0  # a piece three times longer than the typical piece is tall, and thin, is a wall or a rule...
THIN = 0.08  # ...thin meaning at most 8 % as thick as it is long (a rule with digits hanging on it is thicker)
SOLID = 0.7  # a piece at the field's edge that fills 70 % of its box is a dark block, not a pen's stroke
OVERLAP = 0.3  # two pieces share at least 30 % of the shorter one's rows when they lie on one baseline...
HANGS_LOW = 0.5  # ...or the shorter starts below the taller's middle (a comma's tail hangs below the digits)
LINE_GAP = 1.5  # a field's pieces of one line lie within one and a half times the taller one's height


def field_image(ink: np.ndarray) -> np.ndarray | None:
    """A cleaned ink map (ink bright on 0) as the reader reads it: cropped to the writing, FIELD_HEIGHT tall, on the
    left of a FIELD_WIDTH canvas; None when there is no ink."""
    box = writing_box(ink > INK_FLOOR)
    if box is None:
        return None
    left, top, right, bottom = box
    crop = ink[top:bottom, left:right]
    pad = max(1, round(PAD * crop.shape[0]))
    crop = np.pad(crop, pad)
    scale = FIELD_HEIGHT / crop.shape[0]
    width = int(np.clip(round(crop.shape[1] * scale), 1, FIELD_WIDTH))
    sized = cv2.resize(crop.astype(np.float32), (width, FIELD_HEIGHT), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((FIELD_HEIGHT, FIELD_WIDTH), np.float32)
    canvas[:, :width] = np.clip(sized, 0.0, 1.0)
    return canvas


def digit_images(field: np.ndarray, columns: Sequence[tuple[int, int]]) -> np.ndarray:
    """Each digit of a field (as `field_image` made it) cut out between its columns, fitted as the digit model
    reads a digit: (n, 28, 28) float32."""
    images = [fit_digit(field[:, left:right]) for left, right in columns]
    return np.stack(images) if images else np.zeros((0, CANVAS_PX, CANVAS_PX), np.float32)


def writing_box(inked: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box (left, top, right, bottom) of a field's writing: its tallest line of ink, without the cell's walls,
    rules, specks and the printed words beside it (a register's cell holds all of these around a small number);
    None when there is no ink."""
    pieces, areas = _pieces(inked)
    if not len(pieces):
        return None
    # A wall is thin and far longer than the typical piece is tall, whole or broken; a lone "1" in a tight field is
    # as tall as the field but is the typical piece, and thicker for its length than a printed line.
    long_side = np.maximum(pieces[:, 2], pieces[:, 3])
    thin = np.minimum(pieces[:, 2], pieces[:, 3]) <= THIN * long_side
    wall = thin & (long_side >= WALL * float(np.median(pieces[:, 3])))
    # A solid block at the field's edge is what is left of a scanner's margin or a page's dark edge.
    height, width = inked.shape
    edge = (pieces[:, 0] == 0) | (pieces[:, 1] == 0) | (pieces[:, 0] + pieces[:, 2] == width)
    edge |= pieces[:, 1] + pieces[:, 3] == height
    block = edge & (areas >= SOLID * pieces[:, 2] * pieces[:, 3])
    if not (wall | block).all():
        pieces = pieces[~(wall | block)]
    pieces = pieces[np.maximum(pieces[:, 2], pieces[:, 3]) >= SPECK * int(pieces[:, 3].max())]
    boxes = [Box(label, int(x), int(y), int(x + w), int(y + h)) for label, (x, y, w, h) in enumerate(pieces)]
    lines = [extent_of(line) for line in lines_of_writing(boxes, gap=LINE_GAP)]
    tallest = max(lines, key=lambda line: line.height)
    return tallest.left, tallest.top, tallest.right, tallest.bottom


def _pieces(inked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The connected pieces of ink: their boxes (x, y, w, h rows) and areas."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(inked.view(np.uint8), connectivity=8)
    return stats[1:, :4], stats[1:, 4]


class Box(NamedTuple):
    """A piece of ink: its component label and bounding box."""

    label: int
    left: int
    top: int
    right: int
    bottom: int

    @property
    def height(self) -> int:
        return self.bottom - self.top


def lines_of_writing(pieces: list[Box], *, gap: float) -> list[list[Box]]:
    """The pieces grouped into lines of writing: pieces sharing rows and lying within `gap` heights of each
    other (a sheet's and a field's alike)."""
    group = list(range(len(pieces)))

    def root(index: int) -> int:
        while group[index] != index:
            index = group[index]
        return index

    for first, a in enumerate(pieces):
        for second in range(first + 1, len(pieces)):
            b = pieces[second]
            shared = min(a.bottom, b.bottom) - max(a.top, b.top)
            apart = max(a.left, b.left) - min(a.right, b.right)
            small, tall = sorted((a, b), key=lambda piece: piece.height)
            # A comma's tail hangs below the digits: it shares only their last rows, yet it is theirs.
            hangs = shared > 0 and small.top >= tall.top + HANGS_LOW * tall.height
            beside = shared >= OVERLAP * small.height or hangs
            if beside and apart <= gap * tall.height:
                group[root(second)] = root(first)
    lines: dict[int, list[Box]] = {}
    for index, piece in enumerate(pieces):
        lines.setdefault(root(index), []).append(piece)
    return list(lines.values())


def extent_of(line: list[Box]) -> Box:
    """The box around all of a line's pieces."""
    return Box(
        0,
        min(piece.left for piece in line),
        min(piece.top for piece in line),
        max(piece.right for piece in line),
        max(piece.bottom for piece in line),
    )


def without_dark_margins(image: np.ndarray) -> np.ndarray:
    """The decoded image less a scanner's dark margins along its edges, as register cells cut from a page scan
    show them; the image itself when it has none. Found on a small grey copy, cut from the image at full size."""
    grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_BGR2GRAY)
    height, width = grey.shape
    shrink = min(1.0, MARGIN_SIDE / max(height, width))
    small = cv2.resize(
        grey, (max(1, round(width * shrink)), max(1, round(height * shrink))), interpolation=cv2.INTER_AREA
    )
    dark = small < MARGIN_DARK * np.percentile(small, 75)
    bands = [_band(dark.mean(axis=axis) >= MARGIN_FULL) for axis in (0, 1)]
    (left, right), (top, bottom) = ((round(first / shrink), round(last / shrink)) for first, last in bands)
    if left + right > MARGIN_MOST * width or top + bottom > MARGIN_MOST * height or not left + right + top + bottom:
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
