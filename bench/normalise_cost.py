"""CPU cost of the scan normaliser alone, and of a worker's whole task (decode + digits.candidates), per scan.

    .venv/bin/python bench/normalise_cost.py              # the bench's scan mix at 160 and 300 px
    .venv/bin/python bench/normalise_cost.py --sides 600  # other scan sizes

Scans are made the way bench/bench.py makes them (MNIST sample digits, render_scan, seed 7), PNG-encoded.
CPU time of this process, with OpenCV on one thread as in a worker, best of --repeats passes, so other
load on the machine inflates it little.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watcher.intake.decode import decode  # noqa: E402
from watcher.model.synthetic import render_scan  # noqa: E402
from watcher.vision.digits import candidates  # noqa: E402
from watcher.vision.normalise import normalise  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "mnist_sample.npz"
MAX_PIXELS = 50_000_000  # far above any scan made here: the header check passes, as in the daemon


def make_scans(count: int, *, side: int, seed: int = 7) -> list[bytes]:
    """PNG-encoded scans of the MNIST sample digits, varied as the daemon bench varies them."""
    digits = np.load(SAMPLE)["x"]
    rng = np.random.default_rng(seed)
    return [
        cv2.imencode(".png", render_scan(digits[index % len(digits)], rng, max_side=side))[1].tobytes()
        for index in range(count)
    ]


def ms_per_scan(task: Callable[[Any], object], items: list[Any], *, repeats: int) -> float:
    """Best of `repeats` passes over `items`, in CPU milliseconds per item."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for item in items:
            task(item)
        best = min(best, time.process_time() - started)
    return 1000 * best / len(items)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[160, 300], help="render_scan max_side values")
    parser.add_argument("--count", type=int, default=500, help="distinct scans per size (default 500, as bench.py)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as each worker process runs it (recognise._serve_daemon)

    print(f"{'max side':>8} {'normalise ms':>13} {'decode+candidates ms':>23}")
    for side in args.sides:
        encoded = make_scans(args.count, side=side)
        decoded = [decode(data, name="scan.png", max_pixels=MAX_PIXELS) for data in encoded]
        alone = ms_per_scan(normalise, decoded, repeats=args.repeats)
        whole = ms_per_scan(
            lambda data: candidates(decode(data, name="scan.png", max_pixels=MAX_PIXELS), mode="auto"),
            encoded,
            repeats=args.repeats,
        )
        print(f"{side:>8} {alone:>13.3f} {whole:>23.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
