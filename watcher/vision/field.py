"""A field's writing as the sequence reader reads it: the cleaned ink cropped to the writing, at a fixed height."""

from __future__ import annotations

import cv2
import numpy as np

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


def field_image(ink: np.ndarray) -> np.ndarray | None:
    """A cleaned ink map (ink bright on 0) as the reader reads it: cropped to the writing, FIELD_HEIGHT tall, on the
    left of a FIELD_WIDTH canvas; None when there is no ink."""
    rows = np.flatnonzero((ink > INK_FLOOR).any(axis=1))
    cols = np.flatnonzero((ink > INK_FLOOR).any(axis=0))
    if not len(rows):
        return None
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    pad = max(1, round(PAD * crop.shape[0]))
    crop = np.pad(crop, pad)
    scale = FIELD_HEIGHT / crop.shape[0]
    width = int(np.clip(round(crop.shape[1] * scale), 1, FIELD_WIDTH))
    sized = cv2.resize(crop.astype(np.float32), (width, FIELD_HEIGHT), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((FIELD_HEIGHT, FIELD_WIDTH), np.float32)
    canvas[:, :width] = np.clip(sized, 0.0, 1.0)
    return canvas


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
