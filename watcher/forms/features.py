"""The features a page is aligned by: ORB keypoints on a reduced grey copy, the same for references and pages."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

REDUCED_SIDE = 1200  # the copy's longer side: about 4 px per mm on A4, fine enough for print, cheap to match
MAX_FEATURES = 1500  # ORB keeps this many of the strongest corners
MIN_REFERENCE_FEATURES = 150  # a reference with fewer features cannot be told from other pages or found tilted


class Features(NamedTuple):
    """Keypoints of a reduced copy, in the full image's pixels, with their ORB descriptors.

    Points, not cv2.KeyPoint objects: these cross from worker processes, and OpenCV's keypoints do not pickle.
    """

    points: np.ndarray  # (n, 2) float32, x and y in the full image's pixels
    descriptors: np.ndarray  # (n, 32) uint8


def grey(image: np.ndarray) -> np.ndarray:
    """8-bit grey from 8/16-bit grey, BGR or BGRA (transparent pixels laid onto white paper)."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[:, :, 3:].astype(np.float32) / 255
        image = (image[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(image, np.uint8)


def features(grey_image: np.ndarray) -> Features:
    """ORB features of the image, found on a copy REDUCED_SIDE px long whatever its resolution.

    Reducing every page and reference to one size makes a 150-dpi and a 600-dpi scan of one sheet look alike, so
    ORB's own pyramid only has to bridge what is left: margins, zoom and perspective.
    """
    scale = REDUCED_SIDE / max(grey_image.shape)
    size = (round(grey_image.shape[1] * scale), round(grey_image.shape[0] * scale))
    reduced = cv2.resize(grey_image, size, interpolation=cv2.INTER_AREA)
    orb = cv2.ORB.create(nfeatures=MAX_FEATURES)
    keypoints, descriptors = orb.detectAndCompute(reduced, None)
    if descriptors is None:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    points = np.array([keypoint.pt for keypoint in keypoints], np.float32) / np.float32(scale)
    return Features(points, descriptors)
