"""The pieces of ink on a mask: labelled, counted and boxed, as the sheet finder, cleaning, cutting and fitting
all see them; and the pieces grouped into lines of writing, as a sheet's and a field's writing is found."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

OVERLAP = 0.3  # two pieces share at least 30 % of the shorter one's rows when they lie on one baseline...
HANGS_LOW = 0.5  # ...or the shorter starts below the taller's middle (a comma's tail hangs below the digits)


def as_mask(selected: np.ndarray) -> np.ndarray:
    """A boolean array as the 0/1 uint8 image OpenCV's mask functions take, without a copy."""
    return selected.view(np.uint8)


def components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Label count, labels and stats of the 8-connected pieces of a 0/1 uint8 mask, as
    cv2.connectedComponentsWithStats gives them: BBDT labels exactly like its default algorithm, but gathers the
    statistics several times faster (OpenCV 5)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_BBDT)
    return count, labels, stats


def ink_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns of a 0/1 uint8 mask's bounding box (empty slices when it holds no ink)."""
    left, top, width, height = cv2.boundingRect(mask)
    return slice(top, top + height), slice(left, left + width)


def boxed_components(mask: np.ndarray, box: tuple[slice, slice]) -> tuple[int, np.ndarray, np.ndarray]:
    """`components` of the mask's `box` alone, with the stats in the whole mask's coordinates.

    Labelling costs by the pixel, and the ink's box is a small part of most pages.
    """
    count, labels, stats = components(mask[box])
    stats[:, cv2.CC_STAT_LEFT] += box[1].start
    stats[:, cv2.CC_STAT_TOP] += box[0].start
    return count, labels, stats


def piece_count(mask: np.ndarray) -> int:
    """How many 8-connected pieces a 0/1 uint8 mask holds: labelling alone costs a fraction of `components`."""
    return cv2.connectedComponentsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_BBDT)[0] - 1


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
