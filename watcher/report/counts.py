"""What the report shows, gathered in one streaming pass over the results CSV: the counters, the review and error
rows of the contact sheet, and their pictures."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.ledger.record import COLUMNS, COLUMNS_BEFORE_PAGES, unguard
from watcher.report.forms import FormsTally
from watcher.vocabulary import DECISIONS, PERSON, Status

MAX_SHEET_ROWS = 200
HISTOGRAM_BINS = 20
THROUGHPUT_MINUTES = 60
SHEET_STATUSES = (Status.LOW_CONFIDENCE, Status.ERROR)
MINUTE_FORMAT = "%Y-%m-%dT%H:%M"


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
