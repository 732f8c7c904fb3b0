"""`digit-watcher report`: summarise the results CSV into one self-contained HTML page."""

from __future__ import annotations

import base64
import csv
import os
import tempfile
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from watcher.intake.decode import Unreadable, read_file
from watcher.intake.pages import open_pages
from watcher.ledger.record import COLUMNS, COLUMNS_BEFORE_PAGES, unguard
from watcher.report.forms import FormsTally
from watcher.report.page import render
from watcher.vocabulary import DECISIONS, PERSON, Status

MAX_SHEET_ROWS = 200
HISTOGRAM_BINS = 20
THROUGHPUT_MINUTES = 60
THUMBNAIL_SIDE = 96
MAX_BYTES = 50_000_000
MAX_PIXELS = 40_000_000
MAX_PAGES = 100_000  # a page is looked up, never the whole file read
SHEET_STATUSES = (Status.LOW_CONFIDENCE, Status.ERROR)
MINUTE_FORMAT = "%Y-%m-%dT%H:%M"


class ReportError(Exception):
    """The report cannot be made; str(e) is a one-line message naming the path."""


@dataclass(frozen=True)
class SheetRow:
    """A review or error row, as the contact sheet shows it."""

    time: str
    file: str
    status: str
    prediction: str
    confidence: str
    moved_to: str
    detail: str
    page: int = 1

    @property
    def moment(self) -> datetime | None:
        return parse_time(self.time)


@dataclass(frozen=True)
class Thumbnail:
    """A sheet row's picture: a PNG data URI, or the reason there is none."""

    row: SheetRow
    png_data_uri: str | None
    missing_reason: str | None


@dataclass
class Summary:
    """Everything the page shows, gathered in one streaming pass over the CSV."""

    rows: int = 0
    malformed_rows: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_digit: Counter[str] = field(default_factory=Counter)
    # Predictions of more than one digit ("2024") count once here, not under each digit.
    numbers: int = 0
    confidence_bins: dict[str, list[int]] = field(default_factory=dict)
    first_time: str | None = None
    last_time: str | None = None
    latest_minute: datetime | None = None
    per_minute: dict[str, int] = field(default_factory=dict)
    sheet_rows: deque[SheetRow] = field(default_factory=lambda: deque(maxlen=MAX_SHEET_ROWS))
    # Review decisions by (person, UTC day, verified or corrected).
    reviews: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    forms: FormsTally = field(default_factory=FormsTally)
    # The model's readings by the inbox subfolder the file came from ("" for its top level) and status.
    by_folder: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, cells: list[str]) -> None:
        """One row, whether of this version's header or of the one before pages (its first columns)."""
        time, file, status, prediction, confidence, _top3, model, sha256, _latency, moved_to, detail = map(
            unguard, cells[: len(COLUMNS_BEFORE_PAGES)]
        )
        page, field_name = map(unguard, cells[len(COLUMNS_BEFORE_PAGES) :]) if len(cells) == len(COLUMNS) else ("1", "")
        self.rows += 1
        self.by_status[status] += 1
        if status in DECISIONS and model.startswith(PERSON):
            self.reviews[(model[len(PERSON) :], time[:10], status)] += 1
        else:
            self.forms.add(file=file, page=page, sha256=sha256, field_name=field_name, status=status, detail=detail)
            self.by_folder[(file.partition("/")[0] if "/" in file else "", status)] += 1
        if prediction.isdigit() and prediction.isascii():
            if len(prediction) == 1:
                self.by_digit[prediction] += 1
            else:
                self.numbers += 1
        self._add_confidence(status, confidence)
        self._add_time(time)
        if status in SHEET_STATUSES:
            number = int(page) if page.isdigit() and page.isascii() else 1
            self.sheet_rows.append(SheetRow(time, file, status, prediction, confidence, moved_to, detail, number))

    def _add_confidence(self, status: str, confidence: str) -> None:
        try:
            value = float(confidence)
        except ValueError:
            return
        if not 0.0 <= value <= 1.0:
            return
        bins = self.confidence_bins.setdefault(status, [0] * HISTOGRAM_BINS)
        bins[min(int(value * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1

    def _add_time(self, time: str) -> None:
        minute_key = time[:16]
        count = self.per_minute.get(minute_key)
        if count is not None:
            self.per_minute[minute_key] = count + 1
        else:
            moment = parse_time(time)
            if moment is None:
                return
            self._count_new_minute(minute_key, moment.replace(second=0, microsecond=0))
        if self.first_time is None or time < self.first_time:
            self.first_time = time
        if self.last_time is None or time > self.last_time:
            self.last_time = time

    def _count_new_minute(self, minute_key: str, minute: datetime) -> None:
        # Only the last hour before the newest row is kept, so a year of rows needs 60 counters.
        if self.latest_minute is None or minute > self.latest_minute:
            self.latest_minute = minute
            oldest_kept = (minute - timedelta(minutes=THROUGHPUT_MINUTES - 1)).strftime(MINUTE_FORMAT)
            self.per_minute = {key: n for key, n in self.per_minute.items() if key >= oldest_kept}
        if minute > self.latest_minute - timedelta(minutes=THROUGHPUT_MINUTES):
            self.per_minute[minute_key] = 1

    def span(self) -> tuple[datetime, datetime] | None:
        """When the oldest and the newest row were written."""
        first, last = parse_time(self.first_time or ""), parse_time(self.last_time or "")
        return (first, last) if first and last else None

    def throughput(self) -> list[tuple[datetime, int]]:
        """Rows per minute over the hour up to the newest row, oldest minute first."""
        if self.latest_minute is None:
            return []
        minutes = [self.latest_minute - timedelta(minutes=back) for back in range(THROUGHPUT_MINUTES - 1, -1, -1)]
        return [(minute, self.per_minute.get(minute.strftime(MINUTE_FORMAT), 0)) for minute in minutes]


def parse_time(value: str) -> datetime | None:
    """A `time` cell (ISO 8601 UTC, ending in Z) as an aware datetime, or None when it is not one."""
    if not value.endswith("Z"):
        return None
    try:
        return datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError:
        return None


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
        data = read_file(path, max_bytes=MAX_BYTES)
        # A page's picture in review/ holds that page alone; a file of several pages is opened at the row's page.
        first = 1 if path.suffix.lower() == ".png" else row.page
        opened = open_pages(data, name=path.name, max_pixels=MAX_PIXELS, max_pages=MAX_PAGES, first=first)
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
