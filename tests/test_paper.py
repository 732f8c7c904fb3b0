"""watcher.vision.paper's median and percentile are numpy's, to the bit: the cleaning's thresholds come from them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.helpers import MNIST_SAMPLE
from watcher.vision.paper import BRACKET_SAMPLE_STEP, BRACKETED, median, percentile, without_dark_margins


def value_sets() -> list[np.ndarray]:
    """Few and many values (many are selected among those a sample brackets), with ties, sorted, skewed and 8-bit;
    and many whose strided sample misses the middle altogether (the bracket misses: all the values are used)."""
    rng = np.random.default_rng(33)
    sets = []
    for size in (1, 2, 7, 1000, BRACKETED - 1, BRACKETED, 21_555, 40_000):
        sets += [
            rng.random(size).astype(np.float32),
            rng.integers(0, 4, size).astype(np.float32),
            np.sort(rng.random(size)).astype(np.float32),
            rng.random(size) ** 8,
        ]
    sets.append(rng.integers(0, 256, 30_000).astype(np.uint8))
    unrepresented = np.ones(BRACKETED * 2, np.float32)
    unrepresented[::BRACKET_SAMPLE_STEP] = 0.0
    sets.append(unrepresented)
    return sets


@pytest.mark.parametrize("values", value_sets(), ids=lambda values: f"{values.dtype}-{values.size}")
def test_median_and_percentile_are_numpys(values: np.ndarray) -> None:
    if values.dtype.kind == "f":  # the median of integers would overflow in their own type, as numpy's does not
        assert median(values.copy()) == float(np.median(values))
    for percent in (0, 10, 25, 50, 75, 90, 99.5, 100):
        assert percentile(values.copy(), percent) == float(np.percentile(values, percent))


def test_a_scanners_dark_margin_is_cut_but_a_negatives_dark_paper_is_not() -> None:
    """A register cell's dark band along an edge goes; MNIST's own digits, light on black, stay whole: their black
    runs along most of the outline and covers most of the image, so it is their paper, not a margin (cut to the
    digit's box, 14 % of them were, a 0's ring outvoted the paper and the digit was read inverted)."""
    cell = np.full((60, 120), 220, np.uint8)
    cell[:, :12] = 15  # the platen beyond the page, along the left edge
    cell[20:40, 50:54] = 40  # a stroke
    assert without_dark_margins(cell).shape == (60, 120 - 12 - 2)
    with np.load(MNIST_SAMPLE) as sample:
        digits = list(sample["x"])
    # As JPEG too, whose ringing leaves a few pixels of the black outline lighter.
    digits += [cv2.imdecode(cv2.imencode(".jpg", digit)[1], cv2.IMREAD_GRAYSCALE) for digit in digits]
    assert all(without_dark_margins(digit) is digit for digit in digits)
