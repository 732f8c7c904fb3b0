"""Throughput with a hook: a backlog of digit crops read by the real daemon without hooks and with `hooks.url`.

    .venv/bin/python bench/hooks.py                  # 2,000 crops, each way twice, alternately
    .venv/bin/python bench/hooks.py --files 5000 --rounds 3

The receiver is a real HTTP server on 127.0.0.1 in this process. A rate is the backlog's files over the time from the
backlog being renamed in to its last row in results.csv; with the hook, also to the receiver's acknowledgement of the
last row. The best round of each way is compared (the target: with the hook, at least 90 % of the rate without).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.daemons import DaemonProcess, write_e2e_config  # noqa: E402
from tests.helpers import mnist_scans  # noqa: E402
from tests.receiving import Receiver, receiving  # noqa: E402

DISTINCT_CROPS = 200
TARGET = 0.90


def rows_written(results: Path) -> int:
    try:
        return results.read_bytes().count(b"\r\n") - 1  # less the header (no file name here holds a line break)
    except FileNotFoundError:
        return 0


def one_run(work: Path, crops: list[bytes], count: int, receiver: Receiver | None) -> tuple[float, float | None]:
    """Files per second to the last row written, and (with a receiver) to the last row acknowledged."""
    work.mkdir()
    staging, inbox = work / "staging", work / "inbox"
    staging.mkdir()
    inbox.mkdir()
    names = [f"crop-{number:06}.png" for number in range(count)]
    for number, name in enumerate(names):
        (staging / name).write_bytes(crops[number % len(crops)])
    hook = f"hooks:\n  url: http://127.0.0.1:{receiver.port}/readings\n" if receiver is not None else ""
    daemon = DaemonProcess(write_e2e_config(work, extra=hook))
    try:
        daemon.wait_started(timeout=120)
        delivered_before = len(receiver.rows()) if receiver is not None else 0
        began = time.monotonic()
        for name in names:
            os.rename(staging / name, inbox / name)
        while rows_written(work / "results.csv") < count:
            time.sleep(0.01)
        written_s = time.monotonic() - began
        if receiver is None:
            return count / written_s, None
        while len(receiver.rows()) - delivered_before < count:
            time.sleep(0.01)
        return count / written_s, count / (time.monotonic() - began)
    finally:
        daemon.terminate(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="backlog size (default 2000)")
    parser.add_argument("--rounds", type=int, default=2, help="runs each way, alternately (default 2)")
    args = parser.parse_args()
    os.environ["no_proxy"] = "*"  # the receiver is on 127.0.0.1
    crops = [scan for _, scan in mnist_scans(DISTINCT_CROPS)]
    plain: list[float] = []
    hooked: list[tuple[float, float]] = []
    with (
        tempfile.TemporaryDirectory(prefix="dw-bench-hooks-", dir=ROOT / "bench") as temporary,
        receiving() as receiver,
    ):
        for round_number in range(args.rounds):
            plain.append(one_run(Path(temporary) / f"plain-{round_number}", crops, args.files, None)[0])
            written, acknowledged = one_run(Path(temporary) / f"hooked-{round_number}", crops, args.files, receiver)
            assert acknowledged is not None
            hooked.append((written, acknowledged))
            print(
                f"round {round_number + 1}: without hooks {plain[-1]:.0f} files/s; with hooks.url {written:.0f}"
                f" files/s to the CSV, {acknowledged:.0f} to the receiver",
                flush=True,
            )
        batches = len(receiver.batches)
    best_plain, best_written, best_acknowledged = max(plain), max(w for w, _ in hooked), max(a for _, a in hooked)
    ratio = best_written / best_plain
    print(f"\nbacklog of {args.files} crops, best of {args.rounds} rounds each way ({batches} POSTs in all)\n")
    print(f"{'':34}{'files/s':>10}")
    print(f"{'without hooks':34}{best_plain:>10.0f}")
    print(f"{'with hooks.url, rows written':34}{best_written:>10.0f}")
    print(f"{'with hooks.url, rows acknowledged':34}{best_acknowledged:>10.0f}\n")
    print(f"ratio (rows written): {ratio:.1%}; to the receiver: {best_acknowledged / best_plain:.1%}")
    print(f"target: at least {TARGET:.0%}: {'met' if ratio >= TARGET else 'NOT met'}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
