"""Throughput of daemons sharing one inbox on GlusterFS: 1 and 2 daemons, each on its own client mount and core.

    sudo .venv/bin/python bench/shared.py                 # 2,000 files, 1 then 2 daemons
    sudo .venv/bin/python bench/shared.py --files 500 --daemons 1 2 4

Everything runs on this machine: the test suite's GlusterFS set-up (tests/gluster.py: its own
glusterd, one brick, a client mount per daemon and one more to drop the files), the shipped model.
For each count the backlog is renamed into the inbox through the last client first, then the
daemons start, daemon n on client n pinned to core n (sched_setaffinity, as `taskset -c n`; its
decoding workers inherit it); the time runs from the last daemon's `started` to the last row.
Needs root (FUSE mounts).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.daemons import DaemonProcess, write_e2e_config  # noqa: E402
from tests.gluster import Volume, complete_rows, unavailable, volume  # noqa: E402
from tests.helpers import drop, mnist_scans, wait_for  # noqa: E402


def run(mounted: Volume, *, daemons: int, files: int) -> float:
    """Files per second for `daemons` daemons taking a backlog of `files`; checks each was taken once."""
    relative = f"bench-{daemons}-{time.monotonic_ns()}"
    folders = [mount / relative for mount in mounted.mounts]
    folders[0].mkdir()
    write_e2e_config(folders[0])
    (folders[0] / "inbox").mkdir()
    scans = [data for _, data in mnist_scans(10)]
    names = [f"scan-{number:05}.png" for number in range(files)]
    for number, name in enumerate(names):
        drop(folders[-1] / "inbox", name, scans[number % len(scans)])
    cores = sorted(os.sched_getaffinity(0))
    started = []
    for number in range(daemons):
        daemon = DaemonProcess(folders[number] / "config.yaml", name=f"client{number}")
        os.sched_setaffinity(daemon.process.pid, {cores[number % len(cores)]})
        started.append(daemon)
    try:
        for daemon in started:
            daemon.wait_started(timeout=120)
        begun, busy_before = time.monotonic(), machine_busy_s()
        daemons_before = sum(cpu_s(daemon.process.pid) for daemon in started)
        results = mounted.brick / relative / "results.csv"
        wait_for(lambda: len(complete_rows(results)) >= files, timeout=60 + files, what=f"{files} rows")
        elapsed, busy = time.monotonic() - begun, machine_busy_s() - busy_before
        in_daemons = sum(cpu_s(daemon.process.pid) for daemon in started) - daemons_before
    finally:
        for daemon in started:
            daemon.terminate()
    counted = Counter(row["file"] for row in complete_rows(results))
    assert sorted(counted) == names and set(counted.values()) == {1}, "each file exactly once"
    shares = [sum(e["event"] == "file_processed" for e in d.events()) for d in started]
    print(f"  {daemons} daemon(s): {files / elapsed:6.1f} files/s  ({elapsed:.1f} s; files per daemon {shares})")
    print(
        f"    cores busy {busy / elapsed:.2f} of {os.cpu_count()}: daemons {in_daemons / elapsed:.2f},"
        f" the rest (GlusterFS server and clients) {(busy - in_daemons) / elapsed:.2f}"
    )
    return files / elapsed


def cpu_s(pid: int) -> float:
    """CPU seconds of a process and its live children (a daemon's decoding workers)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_s(int(child)) for child in children)


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent not idle since boot."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--daemons", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    reason = unavailable()
    if reason is not None:
        sys.exit(f"GlusterFS unavailable: {reason}")
    print(f"{args.files:,} files on GlusterFS, {os.cpu_count()} cores here, each daemon pinned to one")
    with tempfile.TemporaryDirectory() as folder, volume(Path(folder), clients=max(args.daemons) + 1) as mounted:
        rates = {count: run(mounted, daemons=count, files=args.files) for count in args.daemons}
    first = rates[args.daemons[0]]
    for count, rate in rates.items():
        print(f"  {count} daemon(s) / {args.daemons[0]}: {rate / first:.2f}x")


if __name__ == "__main__":
    main()
