"""watcher.vision.pieces.components is the one labelling of ink for cleaning, cutting, fitting and the sheet finder."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from watcher.vision.pieces import components


@pytest.mark.parametrize("density", [0.05, 0.3, 0.5, 0.7, 0.95])
def test_components_label_as_opencvs_default_and_granas_algorithm_do(density: float) -> None:
    # The sheet finder labelled with Grana's algorithm, the rest with BBDT: one function serves both only if
    # labels and statistics are the same as OpenCV's default labelling's, bit for bit, on any mask.
    rng = np.random.default_rng(round(density * 100))
    for _ in range(20):
        height, width = (int(side) for side in rng.integers(1, 160, size=2))
        mask = (rng.random((height, width)) < density).astype(np.uint8)
        count, labels, stats = components(mask)
        for expected in (
            cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S),
            cv2.connectedComponentsWithStatsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_GRANA),
        ):
            assert count == expected[0]
            assert np.array_equal(labels, expected[1])
            assert np.array_equal(stats, expected[2])
