"""What learning from review corrections gains: a writing style the model reads poorly, corrected, fine-tuned on.

The style: digits written to fill a wide box (three times as wide as tall), as people fill the boxes of a form.
MNIST training digits (never the validation or test ones) are written so, read by the real daemon (`run --once`,
`recognition.mode: digit`, review threshold 1), and `--corrections` of those sent to review are decided with their
true value through the review station's own desk (its rows and moves, not the browser). `train --corrections`
then fine-tunes the served version on them. Reported: accuracy on fresh digits of that style (from MNIST's test
split, for reporting only), read as served, and on the MNIST test split, before and after.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from common import DEFAULT_DATA, ROOT

from watcher.model.classify import latest_version, load_version
from watcher.model.dataset import load_mnist, split_training
from watcher.review.decide import Desk
from watcher.review.forms import FormPages
from watcher.review.queue import Queue
from watcher.service import config as configuration
from watcher.service import logs
from watcher.vision.digits import page_digits
from watcher.vocabulary import Status

WIDTH_PER_HEIGHT = 3


def wide_scan(digit: np.ndarray) -> np.ndarray:
    """A 28 px MNIST digit written to fill a box three times as wide as tall, dark on a light page."""
    height = digit.shape[0]
    stretched = cv2.resize(digit, (height * WIDTH_PER_HEIGHT, height), interpolation=cv2.INTER_LINEAR)
    return cv2.copyMakeBorder(255 - stretched, 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=255)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corrections", type=int, default=500, help="decisions to learn from (default 500)")
    parser.add_argument("--fresh", type=int, default=500, help="fresh digits of the style to measure (default 500)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"mnist.npz (default {DEFAULT_DATA})")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "mnist-cnn")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logs.configure(level="warning", stream=sys.stderr)
    x_train, y_train, x_test, y_test = load_mnist(args.data)
    (x_train, y_train), _ = split_training(x_train, y_train)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        served = latest_version(args.model)
        models = folder / "models" / args.model.name
        shutil.copytree(served, models / served.name)
        config = write_config(folder, models)
        # Twice as many as wanted are written: those the model is sure of (right or wrong) never reach review.
        count = corrections_made(config, x_train[: args.corrections * 2], y_train[: args.corrections * 2], args)
        started = time.monotonic()
        command = [sys.executable, "-m", "watcher", "train", "--corrections", str(folder / "results.csv")]
        command += ["--data", str(args.data), "--seed", str(args.seed), "--out", str(models)]
        tuned = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        print(tuned.stdout.strip().splitlines()[0] if tuned.stdout else tuned.stderr)
        print(f"fine-tune: {(time.monotonic() - started) / 60:.1f} min, exit {tuned.returncode}")
        if tuned.returncode != 0:
            print(tuned.stderr)
            return 1
        new = latest_version(models)
        fresh_x, fresh_y = x_test[: args.fresh], y_test[: args.fresh]
        print(f"{count} corrections (of the daemon's review queue), fresh digits {args.fresh} from MNIST test")
        print(f"{'version':<14} {'fresh wide-box digits':>22} {'MNIST test':>11}")
        for version in (models / served.name, new):
            style = style_accuracy(version, fresh_x, fresh_y)
            mnist = mnist_accuracy(version, x_test, y_test)
            print(f"{version.parent.name}/{version.name:<4} {style:>22.2%} {mnist:>11.2%}")
        metadata = json.loads((new / "metadata.json").read_text())
        print(f"metadata: corrections_count {metadata['corrections_count']}, sha256 {metadata['corrections_sha256']}")
        print(
            f"held-back corrections: {metadata['held_back_accuracy_before']:.2%} -> "
            f"{metadata['held_back_accuracy_after']:.2%} ({metadata['corrections_held_back']} digits)"
        )
    return 0


def write_config(folder: Path, models: Path) -> Path:
    path = folder / "config.yaml"
    path.write_text(
        f"model:\n  path: {models}\npaths:\n  review: inbox/review\nreview:\n  threshold: 1.0\n"
        "recognition:\n  mode: digit\n",
        encoding="utf-8",
    )
    (folder / "inbox").mkdir()
    return path


def corrections_made(config: Path, digits: np.ndarray, labels: np.ndarray, args: argparse.Namespace) -> int:
    """The daemon reads the scans; the review station's desk decides `args.corrections` of those in review."""
    inbox = config.parent / "inbox"
    truth = {}
    for number, (digit, label) in enumerate(zip(digits, labels, strict=True)):
        name = f"wide-{number:04d}.png"
        cv2.imwrite(str(inbox / name), wide_scan(digit))
        truth[name] = str(label)
    command = [sys.executable, "-m", "watcher", "run", "--once", "--config", str(config)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    loaded = configuration.load(config)
    paths = loaded.paths
    assert paths.review is not None
    queue = Queue(review=paths.review, results=paths.results, root=loaded.root, secret=b"bench")
    desk = Desk(
        queue=queue,
        results=paths.results,
        review=paths.review,
        done=paths.done,
        error=paths.error,
        root=loaded.root,
        reviewer="bench",
        forms=FormPages((), folder=loaded.forms_folder, max_pixels=loaded.limits.max_pixels, pdf_dpi=300),
        clock=time.monotonic,
        now=lambda: datetime.now(UTC),
    )
    try:
        waiting = queue.items()[: args.corrections]
        statuses = [desk.decide(item.id, truth[item.name]).status for item in waiting]
    finally:
        desk.close()
    corrected, verified = statuses.count(Status.CORRECTED), statuses.count(Status.VERIFIED)
    print(f"decided {len(statuses)}: {corrected} corrected, {verified} verified")
    return len(waiting)


def style_accuracy(version: Path, digits: np.ndarray, labels: np.ndarray) -> float:
    """Fresh digits of the style read as the daemon reads a scan in `recognition.mode: digit`."""
    found = [page_digits(wide_scan(digit), mode="digit") for digit in digits]
    images = np.concatenate([candidates.images for candidates in found if candidates is not None])
    assert len(images) == len(digits), "every fresh digit has ink"
    read = load_version(version).probabilities(images)[:, :10].argmax(axis=1)
    return float(np.mean(read == labels))


def mnist_accuracy(version: Path, x_test: np.ndarray, y_test: np.ndarray) -> float:
    classifier = load_version(version)
    probabilities = np.concatenate(
        [classifier.probabilities(x_test[i : i + 1024].astype(np.float32) / 255.0) for i in range(0, len(x_test), 1024)]
    )
    return float(np.mean(probabilities[:, :10].argmax(axis=1) == y_test))


if __name__ == "__main__":
    sys.exit(main())
