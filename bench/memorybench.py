"""Peak memory of the daemon and its workers on the largest pages (issue 34 item 3): each file read by a fresh daemon,
its resident memory and its workers' sampled from /proc until the file's rows are written.

    .venv/bin/python bench/memorybench.py                     # every case; the 2,000-page PDF takes minutes
    .venv/bin/python bench/memorybench.py --long-pages 200    # a shorter long file
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from pagebench import Daemon, long_pdf

from bench import ROOT, RssSampler
from tests.documents import MM_PER_INCH, written_sheet

TARGET_MB = 700.0
DPI = 600
A3_MM = (297.0, 420.0)
# A3 at 600 dpi is 70 Mpx: above the default limits.max_pixels (40 Mpx), raised here so that the page is read.
LIMITS = "limits:\n  max_pages: 5000\n  max_bytes: 200000000\n  max_pixels: 80000000\n"
FORM = ROOT / "examples" / "form"
FORM_DPI = 200  # examples/form/filled-1.png is the card scanned at 200 dpi


def a4_sheet() -> tuple[str, bytes]:
    page, _ = written_sheet(0, 3, dpi=DPI)
    return "a4-600dpi.png", bytes(cv2.imencode(".png", page)[1])


def a3_sheet() -> tuple[str, bytes]:
    """An A3 colour scan at 600 dpi: the A4 sheet's writing on a page 1.4 times its size, as a JPEG."""
    page, _ = written_sheet(0, 3, dpi=DPI)
    high, wide = (round(side / MM_PER_INCH * DPI) for side in (A3_MM[1], A3_MM[0]))
    a3 = np.full((high, wide), 240, np.uint8)
    a3[: page.shape[0], : page.shape[1]] = page
    return "a3-600dpi.jpg", bytes(cv2.imencode(".jpg", cv2.cvtColor(a3, cv2.COLOR_GRAY2BGR))[1])


def form_page() -> tuple[str, bytes]:
    """The example form's first filled scan, enlarged from 200 to 600 dpi."""
    scan = cv2.imread(str(FORM / "filled-1.png"), cv2.IMREAD_UNCHANGED)
    assert scan is not None, "examples/form/filled-1.png is missing"
    big = cv2.resize(scan, None, fx=DPI / FORM_DPI, fy=DPI / FORM_DPI, interpolation=cv2.INTER_CUBIC)
    return "form-600dpi.png", bytes(cv2.imencode(".png", big)[1])


def statuses(work: Path) -> str:
    """What the file's rows say, counted by status (and the first error's reason), to show the page was read."""
    with (work / "results.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    reason = next((f" ({row['detail']})" for row in rows if row["status"] == "error"), "")
    return ", ".join(f"{count} {status}" for status, count in counts.items()) + reason


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-pages", type=int, default=2000, help="pages of the long PDF (default 2000)")
    args = parser.parse_args()
    cases: dict[str, tuple[Callable[[], tuple[str, bytes]], str]] = {
        "form, A5 card at 600 dpi": (form_page, f"forms:\n  templates: {FORM}\n"),
        "A4 sheet at 600 dpi": (a4_sheet, ""),
        "A3 colour JPEG at 600 dpi": (a3_sheet, ""),
        f"{args.long_pages}-page PDF": (lambda: ("long.pdf", long_pdf(args.long_pages)), ""),
    }
    print(f"{'file':28}{'peak RSS MB':>12}{'seconds':>9}  {f'under {TARGET_MB:.0f} MB':<14}rows")
    all_met = True
    with tempfile.TemporaryDirectory(prefix="dw-memory-") as temporary:
        for number, (title, (make, extra)) in enumerate(cases.items()):
            work = Path(temporary) / str(number)
            name, data = make()
            daemon = Daemon(work, settings=LIMITS + extra)
            try:
                rss = RssSampler(daemon.process.pid)
                (work / name).write_bytes(data)
                began = time.monotonic()
                shutil.move(work / name, daemon.inbox / name)
                while not (daemon.inbox / "done" / name).exists() and not (daemon.inbox / "error" / name).exists():
                    time.sleep(0.05)
                took = time.monotonic() - began
                peak = rss.close()
            finally:
                daemon.close()
            met = peak <= TARGET_MB
            all_met &= met
            print(f"{title:28}{peak:>12.0f}{took:>9.1f}  {'yes' if met else 'NO':<14}{statuses(work)}")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
