"""`digit-watcher report`: summarise the results CSV into one self-contained HTML page."""

from __future__ import annotations

import base64
import csv
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from watcher.intake.decode import Unreadable, read_file
from watcher.intake.limits import LimitsConfig
from watcher.intake.pages import open_pages
from watcher.ledger.record import COLUMNS, COLUMNS_BEFORE_PAGES
from watcher.report.counts import SheetRow, Summary, Thumbnail
from watcher.report.page import render

THUMBNAIL_SIDE = 96
LIMITS = LimitsConfig(max_pages=100_000)  # the default limits, but any page: it is looked up, the file never all read


class ReportError(Exception):
    """The report cannot be made; str(e) is a one-line message naming the path."""


def summarise(results: Path) -> Summary:
    """Stream the CSV once, keeping only counters and the newest review/error rows."""
    summary = Summary()
    try:
        with open(results, encoding="utf-8", errors="replace", newline="") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is not None and tuple(header) not in (COLUMNS, COLUMNS_BEFORE_PAGES):
                raise ReportError(
                    f"{results}: not a results file (its first line is not the header {','.join(COLUMNS)})"
                )
            for cells in reader:
                if header is not None and len(cells) == len(header):
                    summary.add(cells)
                else:
                    summary.malformed_rows += 1
        summary.forms.close()
    except FileNotFoundError:
        raise ReportError(f"results file not found: {results}") from None
    except csv.Error as exc:
        raise ReportError(f"{results}: unreadable CSV near line {reader.line_num}: {exc}") from None
    except OSError as exc:
        raise ReportError(f"cannot read results file {results}: {exc.strerror}") from None
    return summary


def thumbnail(row: SheetRow, *, root: Path) -> Thumbnail:
    """A ≤96 px PNG of the row's page where the row says it went (a page's own picture, or the page in its
    file), or why it cannot be shown."""
    if not row.moved_to:
        return Thumbnail(row, None, "no location recorded")
    path = root / row.moved_to
    try:
        os.lstat(path)
        data = read_file(path, max_bytes=LIMITS.max_bytes)
        # A page's picture in review/ holds that page alone; a file of several pages is opened at the row's page.
        first = 1 if path.suffix.lower() == ".png" else row.page
        opened = open_pages(data, name=path.name, max_pixels=LIMITS.max_pixels, max_pages=LIMITS.max_pages, first=first)
        page = next(opened.pages, None)
        if page is None or page.image is None:
            return Thumbnail(row, None, page.error if page else f"the file has no page {row.page}")
        png = to_thumbnail_png(page.image)
    except FileNotFoundError:
        return Thumbnail(row, None, "no longer there (moved or deleted since)")
    except Unreadable as exc:
        return Thumbnail(row, None, str(exc))
    except (OSError, ValueError, cv2.error) as exc:
        return Thumbnail(row, None, f"cannot read: {getattr(exc, 'strerror', None) or exc}")
    return Thumbnail(row, "data:image/png;base64," + base64.b64encode(png).decode("ascii"), None)


def to_thumbnail_png(image: np.ndarray) -> bytes:
    """Shrink to fit THUMBNAIL_SIDE, make it 8-bit and opaque on white, and encode as PNG."""
    height, width = image.shape[:2]
    scale = min(1.0, THUMBNAIL_SIDE / max(height, width))
    if scale < 1.0:
        # Shrinking before compositing keeps a 40 Mpx scan from needing a float copy of itself.
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    pixels = image.astype(np.float32) / (65535.0 if image.dtype == np.uint16 else 255.0)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        alpha = pixels[:, :, 3:4]
        pixels = pixels[:, :, :3] * alpha + (1.0 - alpha)
    ok, png = cv2.imencode(".png", np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if not ok:
        raise Unreadable("cannot encode a thumbnail")
    return png.tobytes()


def write_atomically(out: Path, text: str) -> None:
    """Replace `out` in one step, so a browser reloading it never sees half a page."""
    try:
        fd, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise ReportError(f"cannot write report {out}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, out)
    except OSError as exc:
        os.unlink(temporary)
        raise ReportError(f"cannot write report {out}: {exc.strerror}") from None


def run(*, results: Path, out: Path, root: Path) -> int:
    """Write the HTML report for `results` to `out`; `moved_to` paths are relative to `root`."""
    summary = summarise(results)
    sheet = sorted(summary.sheet_rows, key=lambda row: row.time, reverse=True)
    thumbnails = [thumbnail(row, root=root) for row in sheet]
    generated = datetime.now(UTC)
    forms = summary.forms.per_template(results)
    write_atomically(out, render(summary, thumbnails, forms, results=results, generated=generated))
    return 0
