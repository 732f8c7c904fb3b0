"""The sequence reader against the cut-and-read path, on the same numbers: realistic fields (watcher.model.fields),
real register cells, MNIST numbers composed and scanned (as bench/numberset.py) and numbers in one writer's style
(as bench/styleset.py); whole numbers right, and at review's default threshold the share accepted and the accepted
that are wrong, and the straight-through rate (`st`: the largest share accepted surest first with at most 1 % of it
wrong); then the reader's reliability diagram over every set. The served version reads both ways: with its reader,
and with the reader switched off."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from common import ROOT, bench_parser, set_up
from fieldset import _cells, _pool, _read_all, _reliability, _straight_through

from watcher.ledger.record import Reading
from watcher.model.fields import STYLE_WEIGHTS, draw_field
from watcher.model.styles import STYLES, compose_styled_number, draw_writer
from watcher.model.synthetic import NUMBER_LENGTHS, compose_number, print_on_paper, render_number_scan
from watcher.vocabulary import REVIEW_THRESHOLD

ROWS = ROOT.parent / "shared" / "data" / "dk-rows" / "validation"


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--numbers", type=int, default=700, help="numbers per synthetic set (default 700)")
    parser.add_argument("--rows", type=Path, default=ROWS, help=f"register cells (default {ROWS})")
    parser.add_argument("--cells", type=int, default=1200, help="register cells read (default 1200)")
    args = parser.parse_args()
    setup = set_up(args)
    x, y, classifier, rng = setup.x, setup.y, setup.classifier, setup.rng
    reader = classifier.reader
    sets: dict[str, tuple[list[np.ndarray], list[str]]] = {}
    pool, styles = _pool(args.split, args.data), list(STYLE_WEIGHTS)
    fields = [draw_field(pool, rng, style=styles[index % len(styles)]) for index in range(args.numbers)]
    sets["fields"] = ([scan for scan, _ in fields], ["".join(c for c in text if c.isdigit()) for _, text in fields])
    cells, labels = _cells(args.rows)
    sets["register cells"] = (cells[: args.cells], labels[: args.cells])
    truths, composed, scanned, styled = [], [], [], []
    for index in range(args.numbers):
        picked = rng.choice(len(x), size=int(rng.choice(NUMBER_LENGTHS)), replace=False)
        truths.append("".join(map(str, y[picked])))
        ink, _ = compose_number(x[picked], rng)
        composed.append(255 - ink)
        scanned.append(render_number_scan(ink, rng))
        writer = draw_writer(STYLES[index % len(STYLES)], rng)
        styled.append(print_on_paper(compose_styled_number(x[picked], writer, rng)[0], rng, effects=set()))
    sets |= {"mnist composed": (composed, truths), "mnist scanned": (scanned, truths), "styled": (styled, truths)}
    print(f"{'set':<15} {'mode':<7} {'reader':>36} {'cut and read':>36}")
    outcomes = []
    for name, (images, expected) in sets.items():
        for mode in ("number", "auto"):
            figures = []
            for served in (reader, None):
                classifier.reader = served
                readings = _read_all(images, classifier, mode=mode)
                figures.append(_figures(readings, expected))
                if served is not None and mode == "number":
                    outcomes.append(_outcomes(readings, expected))
            print(f"{name:<15} {mode:<7} {figures[0]:>36} {figures[1]:>36}")
    # Every set's numbers together, read by the reader in `number` mode.
    print()
    _reliability(np.concatenate([c for c, _ in outcomes]), np.concatenate([r for _, r in outcomes]))
    return 0


def _figures(readings: list[Reading], truths: list[str]) -> str:
    """Whole numbers right (accepted at review's default threshold, the share of those wrong; straight through)."""
    confidence, right = _outcomes(readings, truths)
    accepted = confidence >= REVIEW_THRESHOLD
    wrong = (~right & accepted).sum() / max(1, accepted.sum())
    through = _straight_through(confidence, right)
    return f"{right.mean():.1%} (acc {accepted.mean():.0%}, {wrong:.1%} wrong; st {through:.0%})"


def _outcomes(readings: list[Reading], truths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    confidence = np.array([reading.confidence or 0.0 for reading in readings])
    right = np.array([reading.prediction == truth for reading, truth in zip(readings, truths, strict=True)])
    return confidence, right


if __name__ == "__main__":
    sys.exit(main())
