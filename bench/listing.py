"""A 50,000-file inbox, listed: what the daemon's polling costs there, on a local disk and on GlusterFS.

    sudo .venv/bin/python bench/listing.py                  # 50,000 files, local disk and GlusterFS
    sudo .venv/bin/python bench/listing.py --files 5000 --where local

For each place: the rescan (`Inbox.scan`: one listing, and one look at every file noted), a settle pass over
every file noted (what `take` does a few times per settle period while files settle), and one snapshot of the
folder by watchdog's polling observer (what it takes every half second). Each is timed alone, on files that are
already complete, so the figures are the listing's own cost. The GlusterFS volume is the test suite's own
(tests/gluster.py: its own glusterd, one brick, client mounts); it needs root.
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
    """Seconds for a rescan, a settle pass over every file noted, and a polling observer's snapshot."""
    inbox = Inbox(folder, extensions=(".png",), settle_s=SETTLE_S, shared=False)
    started = time.perf_counter()
    inbox.scan()
    scan_s = time.perf_counter() - started
    taken = len(inbox.take(10**9, timeout=0))
    # A second inbox sees every file as new and settling: one pass over all of them, as `take` makes.
    settling = Inbox(folder, extensions=(".png",), settle_s=3600.0, shared=False)
    for entry in os.scandir(folder):
        settling.changed(entry.name)
    started = time.perf_counter()
    settling.take(0, timeout=0)  # its first call looks at every settling file
    settle_s = time.perf_counter() - started
    started = time.perf_counter()
    DirectorySnapshot(os.fspath(folder), recursive=False)
    snapshot_s = time.perf_counter() - started
    return {"files": taken, "scan_s": scan_s, "settle_pass_s": settle_s, "snapshot_s": snapshot_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--where", choices=("local", "gluster", "both"), default="both")
    args = parser.parse_args()
    print(f"{'where':10}{'files':>8}{'rescan s':>10}{'settle pass s':>15}{'poll snapshot s':>17}")
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
                    f"{name:10}{figures['files']:>8.0f}{figures['scan_s']:>10.2f}{figures['settle_pass_s']:>15.2f}"
                    f"{figures['snapshot_s']:>17.2f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
