"""Register a page to a template's reference: ORB features matched, a homography fitted by MAGSAC, judged.

ORB's descriptors are oriented and every image is matched at one reduced size, so a page fed sideways or upside
down, tilted, zoomed or scanned at another resolution matches its reference directly. Handwriting adds features
the reference lacks; they find no partner, or one that the robust fit sets aside.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

from watcher.forms.features import REDUCED_SIDE, Features, features
from watcher.forms.template import Template, read_reference

RATIO = 0.8  # Lowe's ratio test: a match must be clearly better than the second best (repeated cells are not)
FIT_PX = 3.0  # a match agrees with the fit within 3 px of the reduced copy (under a mm)
MIN_INLIERS = 40  # fewer agreeing matches than this is chance, or another form
MIN_INLIER_SHARE = 0.2  # ...as is a fit that fewer than a fifth of the matches agree with
MAX_SKEW = 1.5  # opposite sides of the mapped sheet differ at most 1.5 times in length: a photo, not a smear
SCALES = (0.1, 10.0)  # a page is at most ten times finer or coarser than its reference


class Reference(NamedTuple):
    """A template with its reference image (8-bit grey) and that image's features, made once per process."""

    template: Template
    image: np.ndarray
    features: Features


class Alignment(NamedTuple):
    """How a page maps onto its reference: the homography from page to reference pixels, and how well it fits."""

    homography: np.ndarray  # 3x3 float64, page pixels -> reference pixels
    inliers: int  # matches that agree with the homography
    inlier_share: float  # ...as a share of all the matches that passed the ratio test
    residual_px: float  # their median distance from where the homography puts them, in reference pixels


class Refusal(NamedTuple):
    """Why a page does not align with a template, in a user's words."""

    template: str
    reason: str
    inliers: int = 0


@functools.lru_cache(maxsize=32)
def reference(template: Template) -> Reference:
    """The template's reference made ready for aligning; kept for the life of the process (a worker's)."""
    image = read_reference(template.reference, where=template.reference)
    return Reference(template, image, features(image))


def align(page: Features, reference: Reference) -> Alignment | Refusal:
    """The page's fit to one reference, or why it has none."""
    name = reference.template.name
    if len(page.points) < 2 or len(reference.features.points) < 2:
        return Refusal(name, "the page shows no print to align")
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(page.descriptors, reference.features.descriptors, k=2)
    good = [pair[0] for pair in pairs if len(pair) == 2 and pair[0].distance < RATIO * pair[1].distance]
    if len(good) < MIN_INLIERS:
        return Refusal(name, f"only {len(good)} matching features, need {MIN_INLIERS}", len(good))
    source = page.points[[match.queryIdx for match in good]]
    target = reference.features.points[[match.trainIdx for match in good]]
    reference_px = max(reference.image.shape) / REDUCED_SIDE
    homography, mask = cv2.findHomography(source, target, cv2.USAC_MAGSAC, FIT_PX * reference_px)
    if homography is None:
        return Refusal(name, "no consistent fit among the matching features")
    agree = mask.ravel().astype(bool)
    inliers = int(agree.sum())
    share = inliers / len(good)
    if inliers < MIN_INLIERS or share < MIN_INLIER_SHARE:
        return Refusal(
            name, f"{inliers} of {len(good)} matching features agree, need {MIN_INLIERS} and a fifth", inliers
        )
    unlikely = _implausible(homography, reference.image.shape)
    if unlikely:
        return Refusal(name, unlikely, inliers)
    mapped = cv2.perspectiveTransform(source[agree][np.newaxis], homography)[0]
    residual = float(np.median(np.linalg.norm(mapped - target[agree], axis=1)))
    return Alignment(homography, inliers, share, residual)


def best_alignment(page: Features, references: Sequence[Reference]) -> tuple[Reference, Alignment] | Refusal:
    """The reference the page aligns with best (most agreeing features), or the closest one's refusal."""
    fits = [(candidate, align(page, candidate)) for candidate in references]
    aligned = [(candidate, fit) for candidate, fit in fits if isinstance(fit, Alignment)]
    if aligned:
        return max(aligned, key=lambda pair: pair[1].inliers)
    refusals = [fit for _, fit in fits if isinstance(fit, Refusal)]
    return max(refusals, key=lambda refusal: refusal.inliers)


def _implausible(homography: np.ndarray, shape: tuple[int, ...]) -> str:
    """Why the fit cannot be a sheet seen by a scanner or a camera ('' when it can): folded, smeared or tiny."""
    height, width = shape[:2]
    corners = np.array([[[0, 0], [width, 0], [width, height], [0, height]]], np.float64)
    try:
        on_page = cv2.perspectiveTransform(corners, np.linalg.inv(homography))[0]
    except np.linalg.LinAlgError:
        return "the fit is degenerate"
    sides = np.linalg.norm(np.roll(on_page, -1, axis=0) - on_page, axis=1)
    edges = np.roll(on_page, -1, axis=0) - on_page
    following = np.roll(edges, -1, axis=0)
    turns = edges[:, 0] * following[:, 1] - edges[:, 1] * following[:, 0]
    if not (np.all(turns > 0) or np.all(turns < 0)):
        return "the fit folds the sheet"
    skew = max(sides[0] / sides[2], sides[2] / sides[0], sides[1] / sides[3], sides[3] / sides[1])
    scale = float(np.sqrt(cv2.contourArea(on_page.astype(np.float32)) / (width * height)))
    if skew > MAX_SKEW:
        return f"the fit is too skewed ({skew:.1f}x)"
    if not SCALES[0] <= scale <= SCALES[1]:
        return f"the fit is out of scale ({scale:.2f}x the reference)"
    return ""
