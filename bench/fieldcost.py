"""CPU per number field where a sequence reader serves: the worker's part (decode, clean, frame) and the model's part
(the reader, the digit model's second opinion, the judge), per realistic field (watcher.model.fields).

    .venv/bin/python bench/fieldcost.py                 # 256 fields, best of 3 passes
    .venv/bin/python bench/fieldcost.py --count 1024

CPU time of this process (LiteRT's threads included), OpenCV on one thread as in a worker, best of --repeats
passes, so other load on the machine inflates it little. The model reads in batches of BATCH, as the daemon's
micro-batches do under a backlog.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watcher.intake.decode import decode  # noqa: E402
from watcher.model.classify import load_classifier  # noqa: E402
from watcher.model.fields import DigitPool, draw_field  # noqa: E402
from watcher.recognise import Prepared, read  # noqa: E402
from watcher.vision.digits import candidates  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "mnist_sample.npz"
MODEL = ROOT / "models" / "mnist-cnn"
MAX_PIXELS = 50_000_000  # far above any field made here: the header check passes, as in the daemon
BATCH = 64
SEED = 7


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=256, help="distinct fields (default 256)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=MODEL, help=f"model folder (default {MODEL})")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as each worker process runs it (recognise._serve_daemon)
    classifier = load_classifier(args.model)
    if classifier.reader is None:
        print(f"{classifier.version} has no sequence reader", file=sys.stderr)
        return 1

    sample = np.load(SAMPLE)
    pool = DigitPool((sample["x"],), (sample["y"],), (1.0,))
    rng = np.random.default_rng(SEED)
    encoded = [cv2.imencode(".png", draw_field(pool, rng)[0])[1].tobytes() for _ in range(args.count)]

    def prepare_all() -> list[Prepared]:
        crops = [decode(data, name="field.png", max_pixels=MAX_PIXELS) for data in encoded]
        return [Prepared.one_page(candidates(crop, mode="number", cut=False)) for crop in crops]

    prepared = prepare_all()
    worker = _best_ms(prepare_all, repeats=args.repeats) / len(encoded)
    model = _best_ms(
        lambda: [read(prepared[i : i + BATCH], classifier, review_below=None) for i in range(0, len(prepared), BATCH)],
        repeats=args.repeats,
    ) / len(prepared)
    print(f"model {classifier.version}, {len(encoded)} realistic fields, CPU ms per field (best of {args.repeats})")
    print(f"{'worker: decode, clean, frame':<36} {worker:>7.2f}")
    print(f"{'model: reader, second opinion, judge':<36} {model:>7.2f}")
    print(f"{'all told':<36} {worker + model:>7.2f}")
    return 0


def _best_ms(task: Callable[[], object], *, repeats: int) -> float:
    """The least CPU milliseconds `task` (a callable) took over `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        task()
        best = min(best, time.process_time() - started)
    return 1000 * best


if __name__ == "__main__":
    sys.exit(main())
