"""Sweep each segmentation prior and threshold around its value: whole numbers and single digits read in auto mode.

Each alternative is read on the same scans as the shipped values; a change is clear when the scans it reads
better outnumber those it reads worse by more than twice the square root of both (a sign test at about 95 %).
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
from common import bench_parser, set_up
from numberset import read_all

from watcher.model.classify import Classifier
from watcher.model.synthetic import NUMBER_LENGTHS, compose_number, render_number_scan, render_scan
from watcher.vision import options, segment

# Every named number of the two modules, once each (segment.py imports some of options.py's).
TUNED = list(
    dict.fromkeys(
        name
        for module in (segment, options)
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, int | float) and not isinstance(value, bool) and name != "FLOOR"
    )
)
PRIOR_STEP = 0.5  # priors are swept this far either side (a prior is a log factor; 0 is the geometry's own)
FACTORS = (0.8, 1.25)  # thresholds are swept to these multiples of their value


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--numbers", type=int, default=500, help="composed numbers, each also scanned (default 500)")
    parser.add_argument("--singles", type=int, default=1000, help="rendered single digits (default 1000)")
    parser.add_argument("--only", nargs="*", default=TUNED, help="names of the values to sweep (default all)")
    args = parser.parse_args()

    setup = set_up(args)
    x, y, rng = setup.x, setup.y, setup.rng
    truths, scans = [], []
    for _ in range(args.numbers):
        picked = rng.choice(len(x), size=int(rng.choice(NUMBER_LENGTHS)), replace=False)
        ink, _ = compose_number(x[picked], rng)
        truths += ["".join(map(str, y[picked]))] * 2
        scans += [cv2.imencode(".png", ink)[1], cv2.imencode(".png", render_number_scan(ink, rng))[1]]
    picked = rng.choice(len(x), size=args.singles, replace=False)
    truths += [str(label) for label in y[picked]]
    scans += [cv2.imencode(".png", render_scan(x[index], rng))[1] for index in picked]
    numbers = 2 * args.numbers
    base = _right(scans, truths, setup.classifier)
    print(f"{numbers} numbers (composed and scanned) and {args.singles} single scans, auto mode")
    print(f"shipped: numbers {base[:numbers].mean():.2%}, singles {base[numbers:].mean():.2%}")
    print(
        f"{'value':<18} {'shipped':>8} {'tried':>8} {'numbers':>8} {'singles':>8} {'better':>7} {'worse':>6}  verdict"
    )
    for name in args.only:
        shipped = getattr(options, name, getattr(segment, name, None))
        assert shipped is not None, f"no value {name} in watcher.vision.options or segment"
        for value in _alternatives(name, shipped):
            _set(name, value)
            try:
                right = _right(scans, truths, setup.classifier)
            finally:
                _set(name, shipped)
            better, worse = int((right & ~base).sum()), int((~right & base).sum())
            clear = abs(better - worse) > 2 * np.sqrt(better + worse)
            verdict = ("better" if better > worse else "worse") if clear else "within noise"
            print(
                f"{name:<18} {shipped:>8g} {value:>8g} {right[:numbers].mean():>8.2%} {right[numbers:].mean():>8.2%} "
                f"{better:>7} {worse:>6}  {verdict}",
                flush=True,
            )
    return 0


def _alternatives(name: str, value: float) -> list[float]:
    if name.endswith("_PRIOR"):
        return [round(value - PRIOR_STEP, 3), round(min(0.0, value + PRIOR_STEP), 3)]
    if isinstance(value, int):
        return [value - 1, value + 1]
    return [round(value * factor, 3) for factor in FACTORS]


def _set(name: str, value: float) -> None:
    """Set the value where the code reads it: segment.py imports some of options.py's by name."""
    for module in (segment, options):
        if hasattr(module, name):
            setattr(module, name, value)


def _right(scans: list[np.ndarray], truths: list[str], classifier: Classifier) -> np.ndarray:
    readings, _ = read_all(scans, classifier, mode="auto")
    return np.array([reading == truth for reading, truth in zip(readings, truths, strict=True)])


if __name__ == "__main__":
    sys.exit(main())
