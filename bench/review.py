"""Which review threshold on the top probability catches most errors while sending few scans to review."""

from __future__ import annotations

import sys

import cv2
import numpy as np
from common import bench_parser, decoded, inked, set_up

from watcher.model.classify import digit_shares
from watcher.model.synthetic import render_scan
from watcher.vision.normalise import normalise

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
MAX_REVIEW_SHARE = 0.01  # a review queue is read by people: at most 1 scan in 100 should land there


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--scans", type=int, default=2000, help="rendered scans (default 2000)")
    args = parser.parse_args()

    setup = set_up(args)
    x, y, classifier, rng = setup.x, setup.y, setup.classifier, setup.rng

    # The plain split, normalised as the daemon would: the model's own error profile.
    plain = np.stack([inked(normalise(digit)) for digit in x])
    sweep(f"plain MNIST {setup.split}", classifier.probabilities(plain), y)

    # Realistic scans through a PNG round trip: where the daemon's errors actually come from.
    picked = rng.choice(len(x), size=args.scans, replace=False)
    scans_read = [decoded(cv2.imencode(".png", render_scan(x[i], rng))[1]) for i in picked]
    digits = [normalise(scan) for scan in scans_read]
    found = np.array([digit is not None for digit in digits])
    scans = np.stack([digit for digit in digits if digit is not None])
    sweep(f"rendered scans ({found.sum()} of {args.scans} with ink)", classifier.probabilities(scans), y[picked][found])
    return 0


def sweep(name: str, probabilities: np.ndarray, labels: np.ndarray) -> None:
    """Print review share, errors caught and remaining accuracy per threshold, and the recommended one."""
    confidence = digit_shares(probabilities).max(axis=1)  # as the daemon reports it
    wrong = probabilities.argmax(axis=1) != labels
    print(f"\n{name}: {len(labels)} digits, accuracy {1 - wrong.mean():.2%}, {wrong.sum()} errors")
    print(f"{'threshold':>9} {'to review':>10} {'errors caught':>14} {'accuracy left':>14}")
    best = None
    for threshold in THRESHOLDS:
        review = confidence < threshold
        caught = (review & wrong).sum() / max(1, wrong.sum())
        left = 1 - wrong[~review].mean() if (~review).any() else 1.0
        print(f"{threshold:>9} {review.mean():>10.2%} {caught:>14.1%} {left:>14.2%}")
        # The highest threshold that keeps the queue within budget catches the most errors.
        if review.mean() <= MAX_REVIEW_SHARE:
            best = threshold
    print(f"recommended: {best} (the highest threshold sending at most {MAX_REVIEW_SHARE:.0%} to review)")


if __name__ == "__main__":
    sys.exit(main())
