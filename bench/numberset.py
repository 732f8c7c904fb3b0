"""Whole-number accuracy on written numbers composed from MNIST test digits, and single-digit accuracy per mode."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

from common import bench_parser, set_up
from watcher.classify import Classifier  # noqa: E402
from watcher.recognise import Prepared, read  # noqa: E402
from watcher.segment import candidates  # noqa: E402
from watcher.synthetic import print_on_paper, render_scan  # noqa: E402

TARGET = 0.97
LENGTHS = (2, 3, 4, 5, 6)  # a year, a ZIP code, a meter reading
GAP_PX = (-1, 10)  # space between digits at MNIST scale: slight overlaps and touching up to wide spacing
SIZE_JITTER = (0.85, 1.15)  # each digit's own size, relative to its neighbours
BASELINE_JITTER_PX = 2  # how far a digit wanders off the line, at MNIST scale
PIXELS_PER_MNIST_PX = (1.2, 4.0)  # the scan's resolution: digits of about 24 to 80 px
FORMATS = ("grey", "grey", "grey", "inverted", "colour", "rgba", "16bit")  # polarity both ways, every file kind
EFFECT_CHANCES = {"lighting": 0.3, "specks+edge": 0.2, "noise": 0.3}  # how often a scan shows each flaw


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--numbers", type=int, default=500, help="composed numbers (default 500)")
    parser.add_argument("--singles", type=int, default=2000, help="rendered single digits (default 2000)")
    parser.add_argument("--failures", type=Path, help="write misread number scans as PNGs into this folder")
    args = parser.parse_args()

    setup = set_up(args)
    x_test, y_test, classifier, rng = setup.x_test, setup.y_test, setup.classifier, setup.rng
    print(f"model {classifier.version}, seed {args.seed}, MNIST test split only")

    # Numbers: composed at MNIST scale, rendered as scans, then read through a real PNG round trip.
    truths, scans = [], []
    for _ in range(args.numbers):
        picked = rng.choice(len(x_test), size=int(rng.choice(LENGTHS)), replace=False)
        truths.append("".join(map(str, y_test[picked])))
        scans.append(cv2.imencode(".png", render_number_scan(compose_number(x_test[picked], rng), rng))[1])
    if args.failures:
        args.failures.mkdir(parents=True, exist_ok=True)
    print(f"\n{args.numbers} numbers of {LENGTHS[0]}-{LENGTHS[-1]} digits")
    print(f"{'mode':<8} {'whole-number':>12} {'digits ok':>10} {'count off':>10} {'ms/scan':>8}")
    passed = True
    for mode in ("auto", "number"):
        readings, seconds = read_all(scans, classifier, mode=mode)
        right = [reading == truth for reading, truth in zip(readings, truths)]
        same_length = [len(reading) == len(truth) for reading, truth in zip(readings, truths)]
        digits_ok = sum(sum(a == b for a, b in zip(reading, truth)) for reading, truth in zip(readings, truths))
        share = np.mean(right)
        passed &= share >= TARGET
        print(
            f"{mode:<8} {share:>12.2%} {digits_ok / sum(map(len, truths)):>10.2%} "
            f"{len(truths) - sum(same_length):>10} {1000 * seconds / len(scans):>8.2f}"
        )
        if args.failures and mode == "auto":
            for position in np.flatnonzero(~np.array(right)):
                name = f"{position}-true{truths[position]}-read{readings[position] or 'none'}.png"
                (args.failures / name).write_bytes(scans[position].tobytes())
    print(f"target {TARGET:.0%} whole-number: {'met' if passed else 'NOT met'}")

    # Single digits: auto must read a lone digit exactly as digit mode does, on scans and on plain MNIST.
    picked = rng.choice(len(x_test), size=args.singles, replace=False)
    rendered = [cv2.imencode(".png", render_scan(x_test[index], rng))[1] for index in picked]
    plain = [cv2.imencode(".png", digit)[1] for digit in x_test]
    print(f"\nsingle digits{'':<22} {'digit mode':>10} {'auto mode':>10} {'auto read ≠1':>12}")
    for name, encoded, labels in (
        (f"rendered scans ({args.singles})", rendered, y_test[picked]),
        (f"plain MNIST test ({len(x_test)})", plain, y_test),
    ):
        shares = []
        for mode in ("digit", "auto"):
            readings, _ = read_all(encoded, classifier, mode=mode)
            shares.append(np.mean([reading == str(label) for reading, label in zip(readings, labels)]))
        not_one = sum(len(reading) != 1 for reading in readings)
        print(f"{name:<35} {shares[0]:>10.2%} {shares[1]:>10.2%} {not_one:>12}")
    return 0 if passed else 1


def compose_number(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 ink (bright on black) at MNIST scale: the digits in a row, jittered in size, spacing and baseline."""
    height = 40
    canvas = np.zeros((height, 36 * len(digits)), np.uint8)
    x = 4
    for digit in digits:
        rows, cols = np.nonzero(digit)
        tight = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        scale = rng.uniform(*SIZE_JITTER)
        tight = cv2.resize(tight, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        h, w = tight.shape
        top = int(np.clip((height - 20) // 2 + rng.integers(-BASELINE_JITTER_PX, BASELINE_JITTER_PX + 1) + 20 - h, 0, height - h))
        # Overlapping strokes keep the darker ink, as two pen lines crossing do.
        np.maximum(canvas[top : top + h, x : x + w], tight, out=canvas[top : top + h, x : x + w])
        x = max(0, x + w + int(rng.integers(GAP_PX[0], GAP_PX[1] + 1)))
    return canvas[:, : x + 4]


def render_number_scan(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A decoded-scan-like array of the composed ink: pen edges, margins, paper, light, noise, file kind."""
    scale = rng.uniform(*PIXELS_PER_MNIST_PX)
    big = cv2.resize(ink.astype(np.float32) / 255, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    # MNIST is blurred by its own down-sampling; a pen on paper has crisp edges (as synthetic.render_scan does).
    coverage = np.clip((big - 0.3) * 4.0, 0.0, 1.0)
    # Margins scale with the writing's height: a scan of a form field, not a whole page.
    margin_y, margin_x = (int(rng.uniform(0.1, 1.0) * coverage.shape[0]) for _ in range(2))
    coverage = cv2.copyMakeBorder(coverage, margin_y, margin_y, margin_x, margin_x, cv2.BORDER_CONSTANT, value=0.0)
    effects = {effect for effect, chance in EFFECT_CHANCES.items() if rng.random() < chance}
    effects.add(str(rng.choice(FORMATS)))
    return print_on_paper(coverage, rng, effects=effects)


def read_all(encoded: list[np.ndarray], classifier: Classifier, *, mode: str) -> tuple[list[str], float]:
    """Each PNG decoded and read in `mode` as the daemon does (one model call), and the seconds spent segmenting."""
    prepared, seconds = [], 0.0
    for data in encoded:
        decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        started = time.perf_counter()
        prepared.append(Prepared(sha256="", digits=candidates(decoded, mode=mode)))
        seconds += time.perf_counter() - started
    return [reading.prediction for reading in read(prepared, classifier, review_below=None)], seconds

if __name__ == "__main__":
    sys.exit(main())
