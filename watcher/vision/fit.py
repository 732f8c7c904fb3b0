"""Fit a cleaned ink map like an MNIST digit: cropped to its ink, stray marks dropped, thin strokes thickened, its
longer side 20 px and its centre of mass at the centre of 28x28."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from watcher.vision.pieces import as_mask, components, piece_count
from watcher.vocabulary import CANVAS_PX, DIGIT_BOX_PX

NEAR_PIECE = 0.35  # a piece further from the digit than 35 % of its size is a stray mark
SPECK_EXTENT = 0.25  # a piece shorter than 25 % of the digit's size is a speck, not a broken stroke
TARGET_STROKE = 0.11  # MNIST strokes are about 11 % of the digit's longer side
_NEIGHBOURS = np.ones((3, 3), np.uint8)  # a pixel and its eight neighbours: what erosion leaves of a stroke's rim


def fit_digit(ink: np.ndarray) -> np.ndarray:
    """The MNIST recipe: crop to the ink, longer side to 20 px, centre of mass at the centre of 28x28."""
    cropped = _crop_to_ink(ink)
    if cropped.size == 0:  # no ink: labelling an empty image would crash OpenCV
        return np.zeros((CANVAS_PX, CANVAS_PX), np.float32)
    pieces = _digit_pieces(cropped)
    digit = cropped if pieces is cropped else _crop_to_ink(pieces)  # only dropped pieces can shrink the crop
    # Stroke width is judged at a fixed working size (4x the box), so its cost does not grow with the scan.
    digit = _thicken_thin_strokes(_resize_longer_side(digit, 4 * DIGIT_BOX_PX))
    small = _resize_longer_side(digit, DIGIT_BOX_PX)
    moments = cv2.moments(small)
    if moments["m00"] <= 0:
        return np.zeros((CANVAS_PX, CANVAS_PX), np.float32)
    centre_x = moments["m10"] / moments["m00"]
    centre_y = moments["m01"] / moments["m00"]
    # Shift so the centre of mass lands on (14, 14), with sub-pixel precision like the MNIST recipe.
    shift = np.array([[1, 0, CANVAS_PX / 2 - centre_x - 0.5], [0, 1, CANVAS_PX / 2 - centre_y - 0.5]], np.float32)
    canvas = cv2.warpAffine(small, shift, (CANVAS_PX, CANVAS_PX), flags=cv2.INTER_LINEAR, borderValue=0.0)
    centred: np.ndarray = np.clip(canvas, 0.0, 1.0, out=canvas).astype(np.float32, copy=False)
    return centred


def digit_images(field: np.ndarray, columns: Sequence[tuple[int, int]]) -> np.ndarray:
    """Each digit of a field (as watcher.vision.field's `field_image` made it) cut out between its columns, where the
    sequence reader placed them, fitted as the digit model reads a digit: (n, 28, 28) float32."""
    images = [fit_digit(field[:, left:right]) for left, right in columns]
    return np.stack(images) if images else np.zeros((0, CANVAS_PX, CANVAS_PX), np.float32)


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest rectangle holding all the ink (empty when there is none)."""
    left, top, width, height = cv2.boundingRect(as_mask(ink > 0))
    return ink[top : top + height, left : left + width]


def _resize_longer_side(digit: np.ndarray, side: int) -> np.ndarray:
    """Resize keeping the aspect ratio, anti-aliased (INTER_AREA) when shrinking; peak scaled to 1."""
    height, width = digit.shape
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized: np.ndarray = cv2.resize(digit, size, interpolation=interpolation)
    # Shrinking a fine pen line averages it towards grey; MNIST strokes peak at full brightness. Ink is never
    # negative and neither interpolation overshoots, so this lands in [0, 1].
    resized /= max(float(resized.max()), 1e-6)
    return resized


def _digit_pieces(ink: np.ndarray) -> np.ndarray:
    """The largest piece and the pieces near it (broken strokes); far-away stray marks are dropped."""
    mask = as_mask(ink > 0)
    if piece_count(mask) <= 1:  # most digits are one piece
        return ink
    count, labels, stats = components(mask)
    order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])
    boxes = stats[:, :4].tolist()  # Python ints: the loop below does a few sums per piece
    left, top, w, h = boxes[order[0]]
    box = [left, top, left + w, top + h]
    keep = np.zeros(count, bool)
    keep[order[0]] = True
    reach = NEAR_PIECE * max(w, h)
    specks = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) < SPECK_EXTENT * max(w, h)
    # Grow the digit's box piece by piece, biggest first, so a chain of fragments stays together.
    for label in order[1:][~specks[order[1:]]]:
        x0, y0, pw, ph = boxes[label]
        gap_x = max(box[0] - (x0 + pw), x0 - box[2], 0)
        gap_y = max(box[1] - (y0 + ph), y0 - box[3], 0)
        if max(gap_x, gap_y) <= reach:
            keep[label] = True
            box = [min(box[0], x0), min(box[1], y0), max(box[2], x0 + pw), max(box[3], y0 + ph)]
    return np.where(keep[labels], ink, 0.0).astype(np.float32, copy=False)


def _thicken_thin_strokes(digit: np.ndarray) -> np.ndarray:
    """Dilate a fine-pen digit until its strokes are as thick, relative to its size, as MNIST's."""
    mask = as_mask(digit > 0.5)
    area = np.count_nonzero(mask)
    if area == 0:
        return digit
    inside = cv2.erode(mask, _NEIGHBOURS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    rim = int(area - np.count_nonzero(inside))
    # A stroke of width w and length L has area w*L and about 2*L rim pixels.
    stroke = 2.0 * int(area) / max(rim, 1)
    wanted = TARGET_STROKE * max(digit.shape[0], digit.shape[1])
    grow = round((wanted - stroke) / 2)
    if grow < 1 or stroke >= 0.7 * wanted:
        return digit
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    padded = cv2.copyMakeBorder(digit, grow, grow, grow, grow, cv2.BORDER_CONSTANT, value=0.0)
    return cv2.dilate(padded, kernel)
