"""A field's writing as the sequence reader reads it: the cleaned ink cropped to the writing, at a fixed height."""

from __future__ import annotations

import cv2
import numpy as np

FIELD_HEIGHT = 32  # the writing is read this many px tall: a digit's loops stay open, and a field costs little
FIELD_WIDTH = 192  # px; wider writing is squeezed to fit (six times its height: eight digits and their marks)
INK_FLOOR = 0.1  # ink maps below this are the rims of strokes, not the writing's extent
PAD = 0.08  # a margin of this share of the height around the writing, as the network was trained


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
