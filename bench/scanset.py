"""Accuracy on MNIST digits rendered as realistic scans, through PNG decode, normalise and the model."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np
from common import bench_parser, decoded, set_up

from watcher.model.synthetic import VARIANTS, render_scan
from watcher.vision.normalise import normalise

TARGET = 0.993


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--n", type=int, default=500, help="digits per variant (default 500)")
    parser.add_argument("--failures", type=Path, help="write misread scans as PNGs into this folder")
    args = parser.parse_args()

    setup = set_up(args)
    x, y, classifier, rng = setup.x, setup.y, setup.classifier, setup.rng
    if args.failures:
        args.failures.mkdir(parents=True, exist_ok=True)
    print(f"{args.n} {setup.split} digits per variant")
    print(f"{'variant':<12} {'accuracy':>9} {'no digit':>9} {'ms/scan':>8}")
    correct_total, count_total = 0, 0
    for variant in VARIANTS:
        picked = rng.choice(len(x), size=args.n, replace=False)
        digits, scans, seconds = [], [], 0.0
        for index in picked:
            # Through a real PNG round trip, so bit depth, channels and palettes arrive as OpenCV decodes them.
            encoded = cv2.imencode(".png", render_scan(x[index], rng, variant=variant))[1]
            scans.append(encoded)
            image = decoded(encoded)
            started = time.perf_counter()
            digits.append(normalise(image))
            seconds += time.perf_counter() - started
        found = [digit is not None for digit in digits]
        predictions = np.full(args.n, -1)
        if any(found):
            probabilities = classifier.probabilities(np.stack([digit for digit in digits if digit is not None]))
            predictions[np.array(found)] = probabilities.argmax(axis=1)
        right = predictions == y[picked]
        correct_total += int(right.sum())
        count_total += args.n
        print(f"{variant:<12} {right.mean():>9.2%} {args.n - sum(found):>9} {1000 * seconds / args.n:>8.2f}")
        if args.failures:
            for position in np.flatnonzero(~right):
                index = picked[position]
                name = f"{variant}-{index}-true{y[index]}-read{predictions[position]}.png"
                (args.failures / name).write_bytes(scans[position].tobytes())
    overall = correct_total / count_total
    print(f"{'overall':<12} {overall:>9.2%}   target {TARGET:.1%}: {'met' if overall >= TARGET else 'NOT met'}")
    return 0 if overall >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
