"""Pages through the real daemon (issues 15, 34): a backlog of A4 300-dpi sheets as PNG, JPEG, PDF and bilevel TIFF
against the decode floor, a lone A4 JPEG's drop-to-row time, and peak memory while one long PDF is read.

    .venv/bin/python bench/pagebench.py                      # 40 sheets a format, a 2,000-page PDF
    .venv/bin/python bench/pagebench.py --long-pages 200     # a shorter long file
    .venv/bin/python bench/pagebench.py --sheets 30 --long-pages 0 --formats JPEG TIFF   # the backlog alone
    .venv/bin/python bench/pagebench.py --sheets 0 --no-lone --long-pages 0 --lone-long 40 --before ../old-tree
        # a lone 40-page scanned PDF and bilevel TIFF, drop to last row, this tree against another one alternately
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
from PIL import Image

from bench import MODEL, ROOT, CsvTail, RssSampler, percentile
from tests.documents import (
    A4_MM,
    MM_PER_INCH,
    POINTS_PER_INCH,
    add_vector_page,
    bilevel,
    bilevel_tiff,
    saved,
    written_sheet,
)
from watcher.intake.decode import read_file
from watcher.intake.pages import open_pages

# PDF: a JPEG scan on each page, as a scanner's scan-to-PDF writes it; TIFF: 1-bit, CCITT G4, as its black-and-white
# mode does
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "PDF": ".pdf", "TIFF": ".tif"}
DPI = 300
LONE_DROPS = 5
TARGETS = {"vs decode floor": 0.70, "lone JPEG ms": 250.0, "long PDF RSS MB": 700.0}
LIMITS = "limits:\n  max_pages: 5000\n  max_bytes: 200000000\n"


def write_sheets(folder: Path, kind: str, count: int) -> list[str]:
    """`count` A4 sheets at 300 dpi, each with a written number somewhere, in one format."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for number in range(count):
        page, _ = written_sheet(number * 3 % 90, 3, dpi=DPI, seed=number)
        if kind == "PDF":
            data = jpeg_pdf([jpeg(page)])
        elif kind == "TIFF":
            data = bilevel_tiff(page, dpi=DPI)
        elif kind == "JPEG":
            data = jpeg(page)
        else:
            data = bytes(cv2.imencode(FORMATS[kind], page)[1])
        name = f"{kind.lower()}-{number:04}{FORMATS[kind]}"
        (folder / name).write_bytes(bytes(data))
        names.append(name)
    return names


def jpeg(page: np.ndarray) -> bytes:
    return bytes(cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, 85])[1])


def jpeg_pdf(scans: list[bytes]) -> bytes:
    """A4 pages as a scanner's scan-to-PDF writes them: each scan's JPEG stream itself (DCTDecode) filling its page."""
    document = pdfium.PdfDocument.new()
    size = (A4_MM[0] / MM_PER_INCH * POINTS_PER_INCH, A4_MM[1] / MM_PER_INCH * POINTS_PER_INCH)
    for scan in scans:
        page = document.new_page(*size)
        picture = pdfium.PdfImage.new(document)
        picture.load_jpeg(io.BytesIO(scan), pages=[page], inline=False)
        picture.set_matrix(pdfium.PdfMatrix().scale(*size))
        page.insert_obj(picture)
        page.gen_content()
    return saved(document)


def bilevel_tiffs(pages: list[np.ndarray]) -> bytes:
    """Grey pages as one 1-bit TIFF of several pages, CCITT G4, as an office scanner's feeder writes a stack."""
    first, *rest = [Image.fromarray(bilevel(page)) for page in pages]
    buffer = io.BytesIO()
    first.save(buffer, "TIFF", compression="group4", dpi=(DPI, DPI), save_all=True, append_images=rest)
    return buffer.getvalue()


def long_scans(pages: int) -> dict[str, bytes]:
    """A file of `pages` A4 300-dpi sheets each with a written number, as a scanned PDF and as a bilevel TIFF."""
    sheets = [written_sheet(number * 3 % 90, 3, dpi=DPI, seed=number)[0] for number in range(pages)]
    return {"scan.pdf": jpeg_pdf([jpeg(sheet) for sheet in sheets]), "scan.tif": bilevel_tiffs(sheets)}


def long_pdf(pages: int) -> bytes:
    """A PDF of `pages` A4 pages of drawings (no scan on them), each drawn at the daemon's 300 dpi."""
    document = pdfium.PdfDocument.new()
    size = (A4_MM[0] / MM_PER_INCH * POINTS_PER_INCH, A4_MM[1] / MM_PER_INCH * POINTS_PER_INCH)
    for number in range(pages):
        add_vector_page(document, size, (100 + number % 300, 300, 8, 30))
    return saved(document)


def decode_one(path: Path) -> int:
    """Read and decode (or draw) one file's page at its full size."""
    (page,) = open_pages(
        read_file(path, max_bytes=200_000_000), name=path.name, max_pixels=40_000_000, max_pages=1
    ).pages
    return 0 if page.image is None else page.image.size


def decode_floor(folder: Path, names: list[str]) -> tuple[float, float]:
    """Pages per second for reading and decoding (or drawing) alone, on every core, as the daemon's workers do; and
    the CPU seconds the workers spent a page."""
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(decode_one, [folder / names[0]] * (os.cpu_count() or 1)))
        workers = list(pool._processes)
        spent = cpu_seconds(workers)
        began = time.monotonic()
        list(pool.map(decode_one, [folder / name for name in names]))
        took = time.monotonic() - began
        return len(names) / took, (cpu_seconds(workers) - spent) / len(names)


def cpu_seconds(pids: list[int]) -> float:
    """The CPU time (user and system) the processes have spent so far; one that has ended counts nothing."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def waited_for_cpu(pids: list[int]) -> float:
    """The seconds the processes' threads have spent runnable but waiting for a CPU (schedstat): what others' load
    cost them, which idle cores would not."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[1])
            except FileNotFoundError:
                continue
    return total / 1e9


def family(pid: int) -> list[int]:
    """The process and its children (the daemon's workers and their helpers), from /proc."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


class Daemon:
    """The real daemon on a work folder, started and READY, its rows followed."""

    def __init__(self, work: Path, *, settings: str = LIMITS, tree: Path = ROOT) -> None:
        self.inbox = work / "inbox"
        self.inbox.mkdir(parents=True)
        self.results = work / "results.csv"
        config = work / "config.yaml"
        extensions = "watch:\n  extensions: [.png, .jpg, .pdf, .tif]\n"
        config.write_text(f"model:\n  path: {MODEL}\nlog:\n  format: json\n  level: warning\n{extensions}{settings}")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(work / "notify.sock"))
        self.notify.settimeout(120)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(config)],
            cwd=tree,
            env={**os.environ, "NOTIFY_SOCKET": str(work / "notify.sock"), "PYTHONPATH": str(tree)},
            stdout=subprocess.DEVNULL,
        )
        while b"READY=1" not in self.notify.recv(4096):
            pass
        self.tail = CsvTail(self.results)

    def rows(self) -> int:
        try:
            return self.results.read_bytes().count(b"\r\n") - 1
        except FileNotFoundError:
            return 0

    def wait_rows(self, count: int) -> None:
        while self.rows() < count:
            time.sleep(0.01)

    def close(self) -> None:
        self.tail.close()
        self.process.terminate()
        self.process.wait(timeout=120)
        self.notify.close()


def lone_jpeg(work: Path) -> float:
    """The median time from a lone A4 JPEG renamed into an idle daemon's inbox to its row."""
    staging = work / "staging-lone"
    lone = write_sheets(staging, "JPEG", LONE_DROPS)
    daemon = Daemon(work / "daemon-lone")
    try:
        latencies = []
        for name in lone:
            dropped = time.monotonic()
            os.rename(staging / name, daemon.inbox / name)
            while name not in daemon.tail.seen:
                time.sleep(0.001)
            latencies.append((daemon.tail.seen[name] - dropped) * 1000)
            time.sleep(1.0)
    finally:
        daemon.close()
    print(f"\nlone A4 JPEG dropped in, drop to row: {', '.join(f'{ms:.0f}' for ms in latencies)} ms")
    return percentile(latencies, 0.5)


def long_file(work: Path, pages: int) -> float:
    """Peak RSS (MB) of the daemon and its workers while one PDF of `pages` pages is read."""
    daemon = Daemon(work / "daemon-long")
    try:
        rss = RssSampler(daemon.process.pid)
        (work / "long.pdf").write_bytes(long_pdf(pages))
        began = time.monotonic()
        os.rename(work / "long.pdf", daemon.inbox / "long.pdf")
        daemon.wait_rows(pages)
        took = time.monotonic() - began
        peak = rss.close()
    finally:
        daemon.close()
    print(f"{pages}-page PDF: {took:.0f} s ({pages / took:.1f} pages/s, one file)")
    return peak


def backlog(work: Path, sheets: int, formats: list[str]) -> list[float]:
    """Each format's backlog of sheets through the daemon against its decode floor; returns the daemon's shares."""
    print(f"backlog of {sheets} A4 {DPI}-dpi sheets per format, renamed in at once\n")
    # The CPU columns: ms of CPU a page, the floor's workers' and the daemon's with its workers'; their ratio is
    # what the share comes to on idle cores, whatever else the machine runs meanwhile.
    print(
        f"{'format':8}{'decode floor p/s':>18}{'daemon p/s':>12}{'share':>8}"
        f"{'floor CPU ms':>14}{'daemon CPU ms':>15}{'ratio':>7}"
    )
    shares = []
    for kind in formats:
        staging = work / f"staging-{kind}"
        names = write_sheets(staging, kind, sheets)
        floor, floor_cpu = decode_floor(staging, names)
        daemon = Daemon(work / f"daemon-{kind}")
        try:
            processes = family(daemon.process.pid)
            spent = cpu_seconds(processes)
            began = time.monotonic()
            for name in names:
                os.rename(staging / name, daemon.inbox / name)
            daemon.wait_rows(len(names))
            pages_per_s = len(names) / (time.monotonic() - began)
            daemon_cpu = (cpu_seconds(processes) - spent) / len(names)
        finally:
            daemon.close()
        shares.append(pages_per_s / floor)
        print(
            f"{kind:8}{floor:>18.2f}{pages_per_s:>12.2f}{pages_per_s / floor:>8.0%}"
            f"{1000 * floor_cpu:>14.1f}{1000 * daemon_cpu:>15.1f}{floor_cpu / daemon_cpu:>7.0%}"
        )
    return shares


def lone_long(work: Path, pages: int, trees: dict[str, Path], rounds: int) -> None:
    """Wall time from a lone file of `pages` scanned sheets renamed into an idle daemon's inbox to its last row, and the
    CPU the daemon and its workers spent on it, for each format and each tree, the trees taken in turn in each round
    (the machine's load drifts: compare within a round)."""
    files = long_scans(pages)
    print(
        f"\nlone {pages}-page file dropped in: drop to last row, s (the daemon's and its workers' CPU, s / their time"
        " runnable but waiting for a CPU, s)"
    )
    print(f"{'file':10}" + "".join(f"{name:>23}" for name in trees) + ("   ratio" if len(trees) == 2 else ""))
    for round_ in range(rounds):
        for file, data in files.items():
            took: dict[str, tuple[float, float, float]] = {}
            for name, tree in trees.items():
                daemon = Daemon(work / f"daemon-long-{round_}-{file}-{name}", tree=tree)
                try:
                    (work / file).write_bytes(data)
                    processes = family(daemon.process.pid)
                    spent, waited = cpu_seconds(processes), waited_for_cpu(processes)
                    began = time.monotonic()
                    os.rename(work / file, daemon.inbox / file)
                    daemon.wait_rows(pages)
                    took[name] = (
                        time.monotonic() - began,
                        cpu_seconds(processes) - spent,
                        waited_for_cpu(processes) - waited,
                    )
                finally:
                    daemon.close()
            walls = [wall for wall, _, _ in took.values()]
            ratio = f"{walls[0] / walls[1]:>7.2f}x" if len(walls) == 2 else ""
            shown = "".join(f"{wall:>10.2f} ({cpu:4.1f} / {wait:4.1f})" for wall, cpu, wait in took.values())
            print(f"{file:10}{shown}{ratio}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sheets", type=int, default=40, help="sheets per format in the backlog (default 40)")
    parser.add_argument("--long-pages", type=int, default=2000, help="pages of the long PDF (default 2000; 0: none)")
    parser.add_argument("--formats", nargs="+", choices=list(FORMATS), default=list(FORMATS), help="(default all)")
    parser.add_argument("--no-lone", action="store_true", help="leave out the lone JPEG's drop-to-row time")
    parser.add_argument(
        "--lone-long", type=int, default=0, help="pages of a lone scanned PDF and TIFF (default 0: none)"
    )
    parser.add_argument("--before", type=Path, help="--lone-long also on this checkout's code, in turn with this one's")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of --lone-long (default 2)")
    args = parser.parse_args()
    measured: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dw-pages-", dir=ROOT / "bench") as temporary:
        work = Path(temporary)
        shares = backlog(work, args.sheets, args.formats) if args.sheets else []
        if shares:
            measured["vs decode floor"] = min(shares)
        if not args.no_lone:
            measured["lone JPEG ms"] = lone_jpeg(work)
        if args.long_pages:
            measured["long PDF RSS MB"] = long_file(work, args.long_pages)
        if args.lone_long:
            trees = {"before": args.before.resolve(), "this tree": ROOT} if args.before else {"this tree": ROOT}
            lone_long(work, args.lone_long, trees, args.rounds)
        print(f"\n{'measure':22}{'value':>10}{'target':>10}  met")
        all_met = True
        for measure, value in measured.items():
            target = TARGETS[measure]
            met = value >= target if measure.startswith("vs") else value <= target
            all_met &= met
            shown = f"{value:.0%}" if measure.startswith("vs") else f"{value:.0f}"
            shown_target = f"≥ {target:.0%}" if measure.startswith("vs") else f"≤ {target:g}"
            print(f"{measure:22}{shown:>10}{shown_target:>10}  {'yes' if met else 'NO'}")
        print("\nall targets met" if all_met else "\nsome targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
