"""A field's writing as the sequence reader reads it: the cleaned ink cropped to the writing, at a fixed height."""

from __future__ import annotations

import cv2
import numpy as np

from watcher.vision.pieces import Box, as_mask, components, extent_of, ink_box, lines_of_writing

FIELD_HEIGHT = 32  # the writing is read this many px tall: a digit's loops stay open, and a field costs little
FIELD_WIDTH = 192  # px; wider writing is squeezed to fit (six times its height: eight digits and their marks)
INK_FLOOR = 0.1  # ink maps below this are the rims of strokes, not the writing's extent
PAD = 0.08  # a margin of this share of the height around the writing, as the network was trained
# The writing in a field is its tallest line of ink; a cell's walls, rules and printed words beside it are not:
SPECK = 0.15  # ink under 15 % of the tallest piece's height both ways is a speck (a full stop stays with its line)
WALL = 3.0  # a piece three times longer than the typical piece is tall, and thin, is a wall or a rule...
THIN = 0.08  # ...thin meaning at most 8 % as thick as it is long (a rule with digits hanging on it is thicker),
SPANS = 0.5  # ...and one through the field's top or bottom, over half its height, thin if its stroke is
STICK = 0.3  # an upright piece this narrow for its height...
SIDE = 0.1  # ...within a tenth of the field's width of its side is what is left of a wall, not a number's 1,
LEVEL = 0.25  # unless a piece a quarter as tall as it stands level with it
SOLID = 0.7  # a piece at the field's edge that fills 70 % of its box is a dark block, not a pen's stroke
INSIDE_PREFERRED = 0.5  # a line wholly inside the field wins over taller ones its edge cuts, if half as tall
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
    crop = cv2.copyMakeBorder(crop.astype(np.float32), pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0.0)
    scale = FIELD_HEIGHT / crop.shape[0]
    width = int(np.clip(round(crop.shape[1] * scale), 1, FIELD_WIDTH))
    sized = cv2.resize(crop, (width, FIELD_HEIGHT), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((FIELD_HEIGHT, FIELD_WIDTH), np.float32)
    canvas[:, :width] = np.clip(sized, 0.0, 1.0)
    return canvas


def writing_aspect(field: np.ndarray) -> float:
    """How many times wider than tall the writing in a `field_image` is (0 for an empty one)."""
    rows, columns = ink_box(as_mask(field > INK_FLOOR))
    height = rows.stop - rows.start
    return (columns.stop - columns.start) / height if height else 0.0


def writing_box(inked: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box (left, top, right, bottom) of a field's writing: its tallest line of ink, without the cell's walls,
    rules, specks and the printed words beside it (a register's cell holds all of these around a small number);
    None when there is no ink."""
    pieces, areas = _pieces(inked)
    if not len(pieces):
        return None
    # A wall is thin and far longer than the typical piece is tall, whole or broken; a lone "1" in a tight field is
    # as tall as the field but is the typical piece, and thicker for its length than a printed line.
    height, width = inked.shape
    long_side = np.maximum(pieces[:, 2], pieces[:, 3])
    thin = np.minimum(pieces[:, 2], pieces[:, 3]) <= THIN * long_side
    # A wall runs through the cell: cut by its top or bottom, it may slant, bend or carry a stroke joined to it, so
    # its thickness is its ink for its length.
    through = (pieces[:, 1] == 0) | (pieces[:, 1] + pieces[:, 3] == height)
    thin |= through & (pieces[:, 3] >= SPANS * height) & (areas <= THIN * pieces[:, 3] ** 2)
    wall = thin & (long_side >= WALL * float(np.median(pieces[:, 3])))
    # A solid block at the field's edge is what is left of a scanner's margin or a page's dark edge.
    edge = (pieces[:, 0] == 0) | (pieces[:, 1] == 0) | (pieces[:, 0] + pieces[:, 2] == width)
    edge |= pieces[:, 1] + pieces[:, 3] == height
    block = edge & (areas >= SOLID * pieces[:, 2] * pieces[:, 3])
    if not (wall | block).all():
        pieces = pieces[~(wall | block)]
    pieces = pieces[np.maximum(pieces[:, 2], pieces[:, 3]) >= SPECK * int(pieces[:, 3].max())]
    boxes = [Box(label, int(x), int(y), int(x + w), int(y + h)) for label, (x, y, w, h) in enumerate(pieces)]
    # A wall broken by the scan leaves upright sticks by the field's side, taller than a small number.
    writing = [box for box in boxes if not _wall_remnant(box, boxes, width)]
    lines = [extent_of(line) for line in lines_of_writing(writing or boxes, gap=LINE_GAP)]
    # A thin or broken pen leaves a digit in pieces shorter than the digit, further apart than their own heights:
    # lines that lie level and as near as their own heights say are one line.
    lines = [extent_of(line) for line in lines_of_writing(lines, gap=LINE_GAP)]
    # A line cut by the field's edge is most often a neighbour's writing reaching in: among the lines nearly as
    # tall as the tallest, one wholly inside the field is the field's own.
    tall = [line for line in lines if line.height >= INSIDE_PREFERRED * max(line.height for line in lines)]
    inside = [line for line in tall if line.left > 0 and line.top > 0 and line.right < width and line.bottom < height]
    tallest = max(inside or tall, key=lambda line: line.height)
    return tallest.left, tallest.top, tallest.right, tallest.bottom


def _wall_remnant(piece: Box, pieces: list[Box], width: int) -> bool:
    """Whether a piece of ink is an upright stick by the field's left or right side with no writing level with it
    (a 1 at the side of a tight field has the rest of its number beside it)."""
    narrow = piece.right - piece.left <= STICK * piece.height
    by_side = piece.left <= SIDE * width or piece.right >= (1 - SIDE) * width
    level = (
        other is not piece
        and other.height >= LEVEL * piece.height
        and other.top < piece.bottom
        and piece.top < other.bottom
        for other in pieces
    )
    return narrow and by_side and not any(level)


def _pieces(inked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The connected pieces of ink: their boxes (x, y, w, h rows) and areas."""
    _, _, stats = components(as_mask(inked))
    return stats[1:, :4], stats[1:, 4]
