"""Accuracy on rendered scans with what real forms add: a box around the field, a line under it, ruled paper,
JPEG compression, a finer scan; each beside the same scans without it."""

from __future__ import annotations

import sys
from collections.abc import Callable

import cv2
import numpy as np
from common import bench_parser, decoded, set_up

from watcher.model.synthetic import render_scan
from watcher.vision.normalise import normalise


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--n", type=int, default=500, help="MNIST digits of the split (default 500)")
    args = parser.parse_args()

    setup = set_up(args)
    x, y, classifier, rng = setup.x, setup.y, setup.classifier, setup.rng
    print(f"{args.n} {setup.split} digits rendered as grey scans")
    picked = rng.choice(len(x), size=args.n, replace=False)
    pages = [_grey(render_scan(x[index], rng, max_side=300)) for index in picked]
    print(f"{'form mark':<16} {'accuracy':>9}")
    for mark, add in MARKS.items():
        digits = [normalise(add(page)) for page in pages]
        found = np.array([digit is not None for digit in digits])
        predictions = np.full(args.n, -1)
        if found.any():
            predictions[found] = classifier.probabilities(np.stack([d for d in digits if d is not None])).argmax(axis=1)
        print(f"{mark:<16} {np.mean(predictions == y[picked]):>9.2%}")
    return 0


def _grey(scan: np.ndarray) -> np.ndarray:
    """The scan as 8-bit grey on white paper, so the marks below can be drawn in the page's own ink."""
    if scan.ndim == 3 and scan.shape[2] == 4:  # transparent: laid onto white
        alpha = scan[:, :, 3:].astype(np.float32) / 255
        scan = (scan[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    if scan.dtype == np.uint16:
        scan = (scan // 257).astype(np.uint8)
    return cv2.cvtColor(scan, cv2.COLOR_BGR2GRAY) if scan.ndim == 3 else scan


def _box(page: np.ndarray) -> np.ndarray:
    """A printed box around the field, a little inside the scan's edges, lighter than the pen."""
    height, width = page.shape
    inset, thickness = max(2, min(height, width) // 14), max(1, min(height, width) // 60)
    boxed = page.copy()
    cv2.rectangle(boxed, (inset, inset), (width - 1 - inset, height - 1 - inset), int(page.min()) + 30, thickness)
    return boxed


def _underline(page: np.ndarray) -> np.ndarray:
    height, width = page.shape
    underlined = page.copy()
    row = int(height * 0.9)
    cv2.line(underlined, (width // 6, row), (width * 5 // 6, row), int(page.min()) + 20, max(1, height // 60))
    return underlined


def _ruled(page: np.ndarray) -> np.ndarray:
    """Notebook lines across the page, a quarter of its height apart, fainter than the pen."""
    height, width = page.shape
    ruled = page.copy()
    step = max(8, height // 4)
    for row in range(step // 2, height, step):
        cv2.line(ruled, (0, row), (width, row), int(np.median(page)) - 60, max(1, height // 100))
    return ruled


def _jpeg(page: np.ndarray) -> np.ndarray:
    return decoded(cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, 40])[1])


MARKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda page: page,
    "form box": _box,
    "underlined": _underline,
    "ruled lines": _ruled,
    "JPEG quality 40": _jpeg,
    "3x finer scan": lambda page: cv2.resize(page, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC),
}


if __name__ == "__main__":
    sys.exit(main())
