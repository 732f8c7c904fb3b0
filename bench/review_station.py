"""How fast the review station takes decisions from the keyboard: a queue of 100 cleared in headless Chromium.

The queue is the real daemon's: MNIST validation digits as scans, read by `run --once` with a review
threshold of 1, so that most land in review/. The bench then clears `--items` of them with the
keyboard alone (every fifth one corrected by typing a digit), as fast as the page takes keys, and
checks that each decision is one row and one move. The figure is the station's own cost per
decision (page, server, ledger with its fsyncs), not a person's speed.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from common import DEFAULT_DATA, ROOT
from playwright.sync_api import expect, sync_playwright

from watcher.model.dataset import load_mnist, split_training


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100, help="decisions to make (default 100)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"mnist.npz (default {DEFAULT_DATA})")
    args = parser.parse_args()
    x_train, y_train, _, _ = load_mnist(args.data)
    digits = split_training(x_train, y_train)[1][0]
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        config = fill_queue(folder, digits[: args.items * 2])
        waiting = sorted(os.listdir(folder / "inbox" / "review"))
        if len(waiting) < args.items:
            print(f"only {len(waiting)} scans went to review; ask for fewer --items")
            return 1
        seconds = clear(config, args.items)
        rows = list(csv.DictReader(io.StringIO((folder / "results.csv").read_text(encoding="utf-8"), newline="")))
        decisions = [row for row in rows if row["model"].startswith("person:")]
        done = len(os.listdir(folder / "inbox" / "done"))
        left = len([n for n in os.listdir(folder / "inbox" / "review") if not n.startswith(".")])
        print(f"{len(waiting)} items in review (of {args.items * 2} scans); {args.items} decided from the keyboard")
        print(f"{seconds:.1f} s: {args.items / seconds * 60:.0f} items/min, {seconds / args.items * 1000:.0f} ms each")
        statuses = {status: sum(row["status"] == status for row in decisions) for status in ("verified", "corrected")}
        print(f"decision rows {len(decisions)} ({statuses}), review/ left {left}, done/ {done}")
        ok = len(decisions) == args.items and left == len(waiting) - args.items
        print("every decision one row and one move" if ok else "MISMATCH between decisions, rows and folders")
        return 0 if ok else 1


def fill_queue(folder: Path, digits: np.ndarray) -> Path:
    inbox = folder / "inbox"
    inbox.mkdir()
    for number, image in enumerate(digits):
        page = cv2.copyMakeBorder(255 - image, 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=255)
        cv2.imwrite(str(inbox / f"scan-{number:04d}.png"), page)
    config = folder / "config.yaml"
    config.write_text(
        f"model:\n  path: {ROOT / 'models' / 'mnist-cnn'}\npaths:\n  review: inbox/review\nreview:\n  threshold: 1.0\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "watcher", "run", "--once", "--config", str(config)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=600)
    return config


def clear(config: Path, items: int) -> float:
    """Decide `items` from the keyboard; the seconds from the first key to the last decision's row."""
    command = [sys.executable, "-m", "watcher", "review", "--config", str(config), "--port", "0", "--reviewer", "bench"]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        found = re.search(r"http://\S+", server.stdout.readline())
        assert found, "the review station printed no URL"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
            page = browser.new_page()
            page.goto(found[0])
            expect(page.locator("#current-reading")).not_to_be_empty()
            left = int(page.locator("#left").inner_text().split()[0])
            start = time.perf_counter()
            for decided in range(items):
                if decided % 5 == 4:
                    page.keyboard.type(str((int(page.locator("#current-reading").inner_text()[-1]) + 1) % 10))
                page.keyboard.press("Enter")
                expect(page.locator("#left")).to_have_text(f"{left - decided - 1} left")
            # The page sends decisions in the background: the clock stops at the last one's row.
            deadline = time.monotonic() + 60
            while decided_rows(config) < items and time.monotonic() < deadline:
                time.sleep(0.01)
            seconds = time.perf_counter() - start
            browser.close()
        return seconds
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def decided_rows(config: Path) -> int:
    return (config.parent / "results.csv").read_text(encoding="utf-8").count("person:bench")


if __name__ == "__main__":
    sys.exit(main())
