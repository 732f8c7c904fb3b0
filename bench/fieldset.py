"""Whole-number accuracy on fields written as people write them (watcher.model.fields), by style, separator and
length, read through the product's own path in `number` and `auto` mode; and what review's threshold makes of the
confidence: the share accepted, the accepted that are wrong, the straight-through rate and a reliability table.
With --rows, the same for real register cells (a folder with labels.csv)."""

from __future__ import annotations

import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from common import ROOT, bench_parser, set_up

from watcher.ledger.record import Reading
from watcher.model.classify import Classifier
from watcher.model.dataset import load_mnist, load_real_digits, split_training
from watcher.model.fields import STYLE_WEIGHTS, DigitPool, draw_field
from watcher.recognise import Prepared, read
from watcher.service.config import ReviewConfig
from watcher.vision.digits import candidates

REAL = ROOT.parent / "shared" / "data" / "real-digits.npz"
MOST_WRONG = 0.01  # straight-through: the largest share accepted, surest first, with at most 1 % of them wrong
BINS = 10


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--fields", type=int, default=1400, help="synthetic fields, split evenly by style")
    parser.add_argument("--rows", type=Path, help="also read these register cells (a folder with labels.csv)")
    parser.add_argument("--without-reader", action="store_true", help="read as versions before the reader did")
    args = parser.parse_args()
    setup = set_up(args)
    classifier = setup.classifier
    if args.without_reader:
        classifier.reader = None
    pool = _pool(args.split, args.data)
    rng = setup.rng
    styles = list(STYLE_WEIGHTS)
    scans, texts, kinds = [], [], []
    for index in range(args.fields):
        scan, text = draw_field(pool, rng, style=styles[index % len(styles)])
        scans.append(scan)
        texts.append(text)
        kinds.append(styles[index % len(styles)])
    truths = ["".join(c for c in text if c.isdigit()) for text in texts]
    for mode in ("number", "auto"):
        started = time.perf_counter()
        readings = _read_all(scans, classifier, mode=mode)
        milliseconds = 1000 * (time.perf_counter() - started) / len(scans)
        right = np.array([r.prediction == t for r, t in zip(readings, truths, strict=True)])
        share = f"{right.mean():.2%} whole-number, {milliseconds:.1f} ms each"
        print(f"\n{len(scans)} synthetic fields, mode {mode}: {share}")
        _breakdown("style", kinds, right)
        _breakdown("separator", [_separator(text) for text in texts], right)
        _breakdown("length", [str(len(truth)) for truth in truths], right)
        _confidence(readings, right)
    if args.rows:
        cells, labels = _cells(args.rows)
        for mode in ("number", "auto"):
            readings = _read_all(cells, classifier, mode=mode)
            right = np.array([r.prediction == t for r, t in zip(readings, labels, strict=True)])
            print(f"\n{len(cells)} register cells ({args.rows}), mode {mode}: {right.mean():.2%} whole-number")
            _breakdown("length", [str(len(label)) for label in labels], right)
            _confidence(readings, right)
    return 0


def _pool(split: str, data: Path) -> DigitPool:
    """Digits no model trained on: MNIST's validation (or test) digits, and the USPS and ARDIS digits held out."""
    x_train, y_train, x_test, y_test = load_mnist(data)
    x, y = (x_test, y_test) if split == "test" else split_training(x_train, y_train)[1]
    parts = [(x, y)]
    if split == "validation":
        parts += [held for _, held in load_real_digits(REAL).values()]
    weights = (0.55, 0.15, 0.30)[: len(parts)]
    return DigitPool(tuple(p[0] for p in parts), tuple(p[1] for p in parts), weights)


def _cells(folder: Path) -> tuple[list[np.ndarray], list[str]]:
    with open(folder / "labels.csv", newline="") as file:
        rows = [(name, label) for name, label in csv.reader(file) if label.isdigit()]
    images = [cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE) for name, _ in rows]
    return [image for image in images if image is not None], [
        label for (_, label), image in zip(rows, images, strict=True) if image is not None
    ]


def _read_all(images: list[np.ndarray], classifier: Classifier, *, mode: str) -> list[Reading]:
    """Each image segmented in `mode` and read as the daemon reads a batch."""
    readings: list[Reading] = []
    cut = classifier.reader is None  # as the daemon: numbers cut into digits only without a sequence reader
    for start in range(0, len(images), 256):
        prepared = [Prepared.one_page(candidates(image, mode=mode, cut=cut)) for image in images[start : start + 256]]
        readings += [reading for (reading,) in read(prepared, classifier, review_below=None)]
    return readings


def _separator(text: str) -> str:
    marks = "".join(c for c in text if not c.isdigit())
    return "none" if not marks else "space" if marks == " " else "marks"


def _breakdown(name: str, kinds: list[str], right: np.ndarray) -> None:
    groups: dict[str, list[bool]] = defaultdict(list)
    for kind, ok in zip(kinds, right, strict=True):
        groups[kind].append(bool(ok))
    cells = "  ".join(f"{kind} {np.mean(oks):.1%} ({len(oks)})" for kind, oks in sorted(groups.items()))
    print(f"  by {name}: {cells}")


def _confidence(readings: list[Reading], right: np.ndarray) -> None:
    """Accepted at review's default threshold, wrong among them, straight-through rate, reliability table."""
    confidence = np.array([r.confidence or 0.0 for r in readings])
    threshold = ReviewConfig().threshold
    accepted = confidence >= threshold
    wrong = (~right & accepted).sum() / max(1, accepted.sum())
    print(
        f"  at threshold {threshold}: {accepted.mean():.1%} accepted, {wrong:.2%} of them wrong, "
        f"{1 - accepted.mean():.1%} to review; straight-through (≤ {MOST_WRONG:.0%} wrong) "
        f"{_straight_through(confidence, right):.1%}"
    )
    _reliability(confidence, right)


def _straight_through(confidence: np.ndarray, right: np.ndarray) -> float:
    """The largest share a user could accept, surest first, with at most MOST_WRONG of it wrong."""
    order = np.argsort(-confidence, kind="stable")
    errors = np.cumsum(~right[order]) / np.arange(1, len(order) + 1)
    through = np.flatnonzero(errors <= MOST_WRONG)
    return float((through.max() + 1) / len(order)) if len(through) else 0.0


def _reliability(confidence: np.ndarray, right: np.ndarray) -> None:
    """The reliability diagram as a table: per band of confidence, how many readings and how many of them right."""
    print(f"  {'confidence':<12} {'readings':>9} {'mean conf.':>11} {'right':>7}")
    edges = np.linspace(0.0, 1.0, BINS + 1)
    which = np.clip(np.digitize(confidence, edges) - 1, 0, BINS - 1)
    for band in range(BINS):
        members = which == band
        if members.any():
            mean, share = confidence[members].mean(), right[members].mean()
            print(f"  {edges[band]:.1f}-{edges[band + 1]:.1f}     {members.sum():>9} {mean:>11.3f} {share:>7.1%}")


if __name__ == "__main__":
    sys.exit(main())
