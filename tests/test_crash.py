"""Exactly once across kill -9: files streamed in while the daemon is killed again and again.

Run large by hand:  DW_CRASH_FILES=10000 DW_CRASH_KILLS=50 .venv/bin/python -m pytest tests/test_crash.py -s
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.daemons import DaemonProcess, write_e2e_config
from tests.helpers import result_rows, wait_for

FILES = int(os.environ.get("DW_CRASH_FILES", "600"))
KILLS = int(os.environ.get("DW_CRASH_KILLS", "6"))


@pytest.mark.slow
def test_exactly_once_across_kill_9(tmp_path: Path) -> None:
    config = write_e2e_config(tmp_path, extra="batch:\n  max_size: 16\n")
    inbox, staging = tmp_path / "inbox", tmp_path / "staging"
    inbox.mkdir()
    staging.mkdir()
    digits = np.load(Path(__file__).parent / "data" / "mnist_sample.npz")["x"]
    names = [f"scan-{number:05}.png" for number in range(FILES)]
    for number, name in enumerate(names):
        cv2.imwrite(str(staging / name), 255 - digits[number % len(digits)])
    feeding = threading.Thread(target=feed, args=(staging, inbox, names))
    feeding.start()
    chance = random.Random(4)
    daemons = []
    try:
        for _ in range(KILLS):
            daemon = DaemonProcess(config)
            daemons.append(daemon)
            daemon.wait_started()
            rows_before = len(result_rows(tmp_path / "results.csv"))
            wait_for(
                lambda before=rows_before: (
                    len(result_rows(tmp_path / "results.csv")) > before or not feeding.is_alive()
                ),
                what="new rows",
            )
            time.sleep(chance.uniform(0, 0.3))
            workers = children(daemon.process.pid)
            daemon.kill()
            wait_for(
                lambda pids=workers: not any(Path(f"/proc/{pid}").exists() for pid in pids),
                what="its workers to die with it",
            )
    finally:
        feeding.join()
    survivor = DaemonProcess(config)
    daemons.append(survivor)
    survivor.wait_started()
    wait_for(lambda: len(result_rows(tmp_path / "results.csv")) >= FILES, timeout=60 + FILES / 50, what="every row")
    assert survivor.terminate() == 0

    rows = result_rows(tmp_path / "results.csv")
    counted = Counter(row["file"] for row in rows)
    twice = [name for name, count in counted.items() if count > 1]
    lost = sorted(set(names) - set(counted))
    placed = sorted(p.name for p in (inbox / "done").iterdir()) + sorted(p.name for p in (inbox / "error").iterdir())
    recoveries = [e for d in daemons for e in d.events() if e["event"] == "recovered"]
    print(
        f"\n{FILES} files, {KILLS} kills: {len(rows)} rows, {len(twice)} twice, {len(lost)} lost, {len(placed)} placed;"
        f" recovery finished {sum(e['rows_finished'] for e in recoveries)} journaled rows"
        f" and took over {sum(e['files_taken_over'] for e in recoveries)} claimed files"
    )
    assert not twice and not lost
    assert placed == names, "each file in exactly one place, under its own name"
    assert all(row["status"] == "ok" for row in rows)
    assert [p for p in inbox.iterdir() if p.is_file()] == []
    assert list((inbox / ".digit-watcher").iterdir()) == [], "no claim left behind"
    assert (tmp_path / "results.csv").read_bytes().endswith(b"\r\n")


def children(pid: int) -> list[int]:
    """The processes a daemon started (its decoding workers)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def feed(staging: Path, inbox: Path, names: list[str]) -> None:
    """Rename files into the inbox in small bursts, spread over about a second per planned kill."""
    pause = KILLS / (len(names) / 10)
    for start in range(0, len(names), 10):
        for name in names[start : start + 10]:
            os.rename(staging / name, inbox / name)
        time.sleep(pause)
