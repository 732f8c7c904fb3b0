"""Every current behaviour holds (issue 14): one fixed set of 2,000 scans, read by two trees, gives the same rows.

    python bench/golden.py make /work/golden/scans
    python bench/golden.py run /work/golden/scans --code /work/wt-base --out /work/golden/before.csv
    python bench/golden.py run /work/golden/scans --code /work/main --out /work/golden/main.csv
    python bench/golden.py compare /work/golden/before.csv /work/golden/main.csv

The set: single digits and numbers (2-6 digits) rendered from MNIST test digits as scans in every file kind,
and hostile files (empty, truncated, mislabelled, bombs, oversized, links, odd names, odd pictures, and things
the daemon must leave alone). `compare` ignores only `time` and `latency_ms`.
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
from common import DEFAULT_DATA
from PIL import Image

from watcher.model.dataset import load_mnist
from watcher.model.synthetic import NUMBER_LENGTHS, compose_number, render_number_scan, render_scan

SEED = 14
FILES = 2000
NUMBERS = 700
MAX_BYTES = 2_000_000
MTIME = 1_780_000_000  # every file is long settled, so `run --once` takes the whole set in its first listing
PYTHON = "/work/main/.venv/bin/python"
IGNORED = ("time", "latency_ms")
CONFIG = """\
paths:
  inbox: inbox
  done: inbox/done
  error: inbox/error
  review: inbox/review
  results: results.csv
model:
  path: "{model}"
watch:
  extensions: [.png, .jpg, .jpeg, .tif, .tiff, .bmp]
limits:
  max_bytes: {max_bytes}
recognition:
  mode: auto
log:
  format: json
  level: warning
"""


def encode(scan: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """The scan in one of the file kinds that can hold its depth and channels, and that kind's extension."""
    grey, alpha, eight_bit = scan.ndim == 2, scan.ndim == 3 and scan.shape[2] == 4, scan.dtype == np.uint8
    kinds = ["png", "tif", "tiff"]
    if eight_bit and not alpha:
        kinds += ["jpg", "jpeg", "progressive jpg", "bmp"]
    if eight_bit:
        kinds += ["bilevel png" if grey else "grey+alpha png" if alpha else "palette png"]
    kind = str(rng.choice(kinds))
    ext = "." + kind.split()[-1]
    if ext in (".jpg", ".jpeg"):
        quality = int(rng.integers(60, 96))
        flags = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_PROGRESSIVE, int(kind.startswith("progressive"))]
        return cv2.imencode(".jpg", scan, flags)[1].tobytes(), ext
    if kind == ext[1:]:
        return cv2.imencode(ext, scan)[1].tobytes(), ext
    # Kinds OpenCV never writes, and a scanner may: 1-bit, grey with alpha, a colour palette.
    if grey:
        picture = Image.fromarray(scan).point(lambda value: 255 if value > 160 else 0).convert("1")
    elif alpha:
        picture = Image.fromarray(cv2.cvtColor(scan, cv2.COLOR_BGRA2RGBA)).convert("LA")
    else:
        picture = Image.fromarray(cv2.cvtColor(scan, cv2.COLOR_BGR2RGB)).quantize(int(rng.integers(4, 17)))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue(), ".png"


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, kind, data and checksum."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, body: bytes = b"", *, depth: int = 8) -> bytes:
    """A grey PNG with exactly the header and pixel data given (valid or not)."""
    header = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


def hostile(rng: np.random.Generator, digits: np.ndarray) -> tuple[dict[str, bytes], dict[str, str], list[str]]:
    """Files (name -> bytes), symbolic links (name -> target) and folders meant to trip the daemon up."""
    extensions = (".png", ".jpg", ".tif", ".bmp")
    scans = [render_scan(digit, rng, variant="clean", max_side=200) for digit in digits]
    goods = [{ext: cv2.imencode(ext, scan)[1].tobytes() for ext in extensions} for scan in scans]
    good = goods[0]
    files = {f"empty{ext}": b"" for ext in good}
    for ext, data in good.items():
        for cut in (1, 8, 16, 30, *rng.integers(31, len(data), 16)):
            files[f"truncated-{cut:06}{ext}"] = data[:cut]
        files[f"magic-then-noise{ext}"] = data[:4] + rng.bytes(3000)
        files[f"trailing-junk{ext}"] = data + rng.bytes(500)
        for index, other in enumerate(goods):
            for named in [named for named in extensions if named != ext]:
                files[f"mislabelled-{index}-{ext[1:]}{named}"] = other[ext]
    for index in range(40):
        files[f"random-{index:02}{extensions[index % 4]}"] = rng.bytes(int(rng.integers(1, 20000)))
    texts = {
        "letter": b"Dear scanner, this is text.",
        "html": b"<!doctype html><title>not a scan</title>",
        "pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        "gif": b"GIF89a" + bytes(64),
        "zip": b"PK\x03\x04" + bytes(64),
        "utf16": "\ufeffdigits".encode("utf-16-le"),
        "svg": b'<svg xmlns="http://www.w3.org/2000/svg"><text>7</text></svg>',
        "bm-only": b"BM",
        "tiff-only": b"II*\x00",
        "soi-only": b"\xff\xd8\xff",
    }
    files.update({f"text-{name}.png": data for name, data in texts.items()})
    for width, height in ((30000, 30000), (100000, 1), (7000, 7000), (1, 50_000_000), (2**31 - 1, 2**31 - 1)):
        files[f"bomb-{width}x{height}.png"] = png(width, height, bytes(64))
    files["header-0x0.png"] = png(0, 0)
    files["header-16bit-lies.png"] = png(64, 64, bytes(100), depth=16)
    files["bomb-bmp.bmp"] = good[".bmp"][:18] + struct.pack("<ii", 40000, -40000) + good[".bmp"][26:]
    frame = good[".jpg"].index(b"\xff\xc0") + 5
    files["bomb-jpeg.jpg"] = good[".jpg"][:frame] + struct.pack(">HH", 65535, 65535) + good[".jpg"][frame + 4 :]
    files["oversized.png"] = good[".png"] + bytes(MAX_BYTES + 1 - len(good[".png"]))
    files["at-the-limit.png"] = good[".png"] + bytes(MAX_BYTES - len(good[".png"]))
    files["oversized-tiff.tif"] = good[".tif"] + bytes(3 * MAX_BYTES)
    pictures = {
        "white": np.full((300, 300), 255, np.uint8),
        "black": np.zeros((300, 300), np.uint8),
        "one-pixel": np.zeros((1, 1), np.uint8),
        "two-by-three": np.full((2, 3), 128, np.uint8),
        "strip": np.full((20, 5000), 255, np.uint8),
        "noise": rng.integers(0, 256, (200, 200), dtype=np.uint8),
        "gradient": np.tile(np.arange(256, dtype=np.uint8), (256, 1)),
        "checkers": np.kron((np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8), np.ones((25, 25), np.uint8)),
        "transparent": np.zeros((100, 100, 4), np.uint8),
        "faint-16bit": scans[0].astype(np.uint16) // 32 + 30000,
        "digit-on-big-page": np.pad(scans[0], 900, constant_values=255),
    }
    for name, picture in pictures.items():
        for ext in extensions if picture.dtype == np.uint8 and picture.ndim == 2 else (".png", ".tif"):
            files[f"picture-{name}{ext}"] = cv2.imencode(ext, picture)[1].tobytes()
    odd_names = [
        "comma, and more.png",
        'say "cheese".png',
        "it's.png",
        "two\nlines.png",
        "carriage\rreturn.png",
        "tab\there.png",
        "=HYPERLINK(1).png",
        "=1+1.png",
        "+41 79.png",
        "-2+3.png",
        "@SUM(A1).png",
        " leading space.png",
        "trailing space .png",
        "semi;colon.png",
        "back\\slash.png",
        "$(touch x).png",
        "%s%n.png",
        "<b>bold &amp; 1<2.png",
        "数字 ünïcödé.png",
        "Ελληνικά.png",
        "عربى.png",
        "emoji 🖊️.png",
        "CON.png",
        "LPT1.jpg",
        "...png",
        "a..png",
        "-.png",
        "'quoted'.png",
        "question?.png",
        "star*.png",
        "pipe|.png",
        "colon:.png",
        "#hash.png",
        "!bang.png",
        "[brackets].png",
        "{braces}.png",
        "nbsp\u00a0space.png",
        "zero\u200bwidth.png",
        "combining e\u0301.png",
        "precomposed \u00e9.png",
        "nul.png",
        "double.png.png",
        "UPPER.PNG",
        "Mixed.JpG",
        "scan.TIFF",
        "scan.JPEG",
        "old.BMP",
        "ü" * 125 + ".png",
        "x" * 251 + ".png",
        os.fsdecode(b"latin1-\xe9t\xe9.png"),
        os.fsdecode(b"\xff\xfe.png"),
    ]
    for name in odd_names:
        ext = "." + name.rsplit(".", 1)[1].lower()
        files[name] = good[{".jpeg": ".jpg", ".tiff": ".tif"}.get(ext, ext)]
    left_alone = [
        ".hidden.png",
        "~lock.png",
        "upload.png.part",
        "upload.tmp",
        "notes.txt",
        "picture.gif",
        "scan.pdf",
        "png",
    ]
    files.update(dict.fromkeys(left_alone, good[".png"]))
    links = {
        "link-to-scan.png": "mislabelled-0-png.jpg",
        "link-outside.png": "/etc/hostname",
        "link-dangling.png": "nowhere.png",
        "link-to-folder.png": "folder.png",
        "link-to-link.png": "link-to-scan.png",
        "link-loop.png": "link-loop.png",
        "link.jpg": "trailing-junk.jpg",
    }
    return files, links, ["folder.png", "empty-folder.tif"]


def make(out: Path) -> None:
    """Write the set into `out` (which must not exist): the same bytes, names and mtimes every time."""
    rng = np.random.default_rng(SEED)
    _, _, x_test, y_test = load_mnist(DEFAULT_DATA)
    out.mkdir(parents=True)
    files, links, folders = hostile(rng, x_test[:3])
    singles = FILES - NUMBERS - len(files) - len(links) - len(folders)
    for number, index in enumerate(rng.choice(len(x_test), singles, replace=False)):
        data, ext = encode(render_scan(x_test[index], rng, max_side=400), rng)
        files[f"single-{number:04}-{y_test[index]}{ext}"] = data
    for number in range(NUMBERS):
        picked = rng.choice(len(x_test), int(rng.choice(NUMBER_LENGTHS)))
        ink, _ = compose_number(x_test[picked], rng)
        data, ext = encode(render_number_scan(ink, rng), rng)
        files[f"number-{number:03}-{''.join(map(str, y_test[picked]))}{ext}"] = data
    for name, data in files.items():
        (out / name).write_bytes(data)
    for name in folders:
        (out / name).mkdir()
    (out / "folder.png" / "inside.png").write_bytes(files["empty.png"])
    for name, target in links.items():
        (out / name).symlink_to(target)
    for path in [*out.rglob("*"), out]:
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    # Distinct names, and done/, review/ and error/ start empty: no file's moved_to depends on the order of work.
    assert len(list(out.iterdir())) == FILES, "every name is distinct"
    print(f"{out}: {FILES} entries ({singles} single digits, {NUMBERS} numbers, the rest hostile)")


def run(scans: Path, code: Path, out: Path) -> None:
    """Process a copy of the set with the daemon of `code` (`run --once`) and keep its results.csv as `out`."""
    with tempfile.TemporaryDirectory(prefix="golden-") as folder:
        work = Path(folder)
        # The daemon moves what it reads out of its inbox, so each run gets its own copy (links as links, mtimes kept).
        shutil.copytree(scans, work / "inbox", symlinks=True)
        config = work / "config.yaml"
        config.write_text(CONFIG.format(model=code.resolve() / "models" / "mnist-cnn", max_bytes=MAX_BYTES))
        command = [PYTHON, "-m", "watcher", "run", "--once", "--config", str(config)]
        started = time.monotonic()
        done = subprocess.run(
            command, cwd=code, env={**os.environ, "PYTHONPATH": str(code)}, capture_output=True, text=True
        )
        seconds = time.monotonic() - started
        if done.returncode != 0:
            sys.exit(f"{code}: exit {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        shutil.copyfile(work / "results.csv", out)
    rows = read_rows(out)
    statuses = collections.Counter(row["status"] for row in rows.values())
    print(f"{code}: {len(rows)} rows in {seconds:.1f} s ({dict(sorted(statuses.items()))}) -> {out}")


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    """The CSV's rows by file, without the columns that change from run to run."""
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as file:
        rows = list(csv.DictReader(file))
    by_file = {row["file"]: {key: value for key, value in row.items() if key not in IGNORED} for row in rows}
    if len(by_file) != len(rows):
        sys.exit(f"{path}: {len(rows) - len(by_file)} files have more than one row")
    return by_file


def compare(before: Path, after: Path, *, shown: int = 10) -> int:
    """Print how many rows match and the first differences; 0 when the two CSVs hold the same rows."""
    old, new = read_rows(before), read_rows(after)
    # A column only one side has (a newer header's) is shown by its values, and the rest compared.
    for rows, other, path in ((old, new, before), (new, old, after)):
        only = sorted({key for row in rows.values() for key in row} - {key for row in other.values() for key in row})
        for key in only:
            values = sorted({row[key] for row in rows.values()})
            print(f"column {key!r} only in {path}: values {values[:5]}")
            for row in rows.values():
                del row[key]
    differing = [name for name in old.keys() & new.keys() if old[name] != new[name]]
    print(
        f"{len(old.keys() & new.keys()) - len(differing)} identical rows; {len(differing)} differ, "
        f"{len(old.keys() - new.keys())} only in {before}, {len(new.keys() - old.keys())} only in {after}"
    )
    for name in sorted(differing)[:shown]:
        changes = ", ".join(
            f"{key}: {old[name][key]!r} -> {new[name][key]!r}"
            for key in old[name]
            if old[name][key] != new[name].get(key)
        )
        print(f"  {name!r}: {changes}")
    for name in sorted(old.keys() ^ new.keys())[:shown]:
        print(f"  {name!r}: only in {before if name in old else after}")
    return 0 if old == new else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("make", help="write the scan set").add_argument("out", type=Path)
    runner = commands.add_parser("run", help="process the set with one tree's daemon")
    runner.add_argument("scans", type=Path)
    runner.add_argument("--code", type=Path, required=True, help="the tree whose code and models/mnist-cnn are used")
    runner.add_argument("--out", type=Path, required=True, help="where its results.csv is copied")
    comparer = commands.add_parser("compare", help="compare two results CSVs, ignoring time and latency_ms")
    comparer.add_argument("before", type=Path)
    comparer.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "make":
        make(args.out)
    elif args.command == "run":
        run(args.scans, args.code, args.out)
    else:
        return compare(args.before, args.after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
