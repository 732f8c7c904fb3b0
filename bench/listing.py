"""A 50,000-file inbox, polled: what the daemon's polling costs there, on a local disk and on GlusterFS.

    sudo .venv/bin/python bench/listing.py                  # 50,000 files, local disk and GlusterFS
    sudo .venv/bin/python bench/listing.py --files 5000 --where local

For each place: one listing of the names (what the daemon's polling observer does every half second, or less
often while listing is slow), the rescan (`Inbox.scan`: the listing, and the first slice of the files noted), one
call to `take` while all of them settle (one slice: the longest the worker waits on the inbox), and, for
comparison, one snapshot by watchdog's own polling observer (a stat of every file, which it took every half
second). The files are already complete. The GlusterFS volume is the test suite's own (tests/gluster.py: its own
glusterd, one brick, client mounts); it needs root.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watchdog.utils.dirsnapshot import DirectorySnapshot  # noqa: E402

from tests.gluster import unavailable, volume  # noqa: E402
from watcher.intake.observe import Inbox  # noqa: E402

SETTLE_S = 0.5


def fill(folder: Path, files: int) -> None:
    """`files` small PNG-named files, written with their mtime an hour ago (complete, as a backlog is)."""
    folder.mkdir(parents=True, exist_ok=True)
    past = time.time() - 3600
    for number in range(files):
        path = folder / f"scan-{number:06}.png"
        path.write_bytes(b"x")
        os.utime(path, (past, past))


def measure(folder: Path) -> dict[str, float]:
    """Seconds for what polling does in the daemon, and for what watchdog's own polling observer did instead."""
    started = time.perf_counter()
    with os.scandir(folder) as entries:
        names = [entry.name for entry in entries]
    listing_s = time.perf_counter() - started
    inbox = Inbox(folder, extensions=(".png",), settle_s=SETTLE_S, shared=True)
    started = time.perf_counter()
    inbox.scan()
    scan_s = time.perf_counter() - started
    # Each call to `take` looks at one slice of the settling files: the longest the worker waits on it.
    started = time.perf_counter()
    inbox.take(0, timeout=0)
    slice_s = time.perf_counter() - started
    started = time.perf_counter()
    DirectorySnapshot(os.fspath(folder), recursive=False)
    snapshot_s = time.perf_counter() - started
    return {"files": len(names), "listing_s": listing_s, "scan_s": scan_s, "slice_s": slice_s, "snapshot_s": snapshot_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--where", choices=("local", "gluster", "both"), default="both")
    args = parser.parse_args()
    print(f"{'where':10}{'files':>8}{'listing s':>11}{'rescan s':>10}{'take s':>8}{'watchdog snapshot s':>21}")
    with tempfile.TemporaryDirectory(dir=ROOT.parent) as scratch:
        places: list[tuple[str, Path]] = []
        if args.where in ("local", "both"):
            places.append(("local", Path(scratch) / "local"))
        reason = unavailable() if args.where in ("gluster", "both") else None
        if reason is not None:
            print(f"GlusterFS skipped: {reason}")
        use_gluster = args.where != "local" and reason is None
        with volume(Path(scratch) / "gluster") if use_gluster else contextlib.nullcontext() as mounted:
            if mounted is not None:
                places.append(("GlusterFS", mounted.mounts[0] / "inbox"))
            for name, folder in places:
                fill(folder, args.files)
                figures = measure(folder)
                print(
                    f"{name:10}{figures['files']:>8.0f}{figures['listing_s']:>11.2f}{figures['scan_s']:>10.2f}"
                    f"{figures['slice_s']:>8.2f}{figures['snapshot_s']:>21.2f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
