"""The results CSV: rows encoded as SPEC says, appended under an exclusive lock, and made durable."""

from __future__ import annotations

import csv
import fcntl
import io
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import structlog

from watcher.ledger import coherent, place
from watcher.vocabulary import Event, Status

log = structlog.get_logger()

COLUMNS = (
    "time",
    "file",
    "status",
    "prediction",
    "confidence",
    "top3",
    "model",
    "sha256",
    "latency_ms",
    "moved_to",
    "detail",
    "page",
    "field",
)
COLUMNS_BEFORE_PAGES = COLUMNS[:-2]  # the header of versions that read one image per file, for their journals
SET_ASIDE_MARK = ".old"  # results.csv with another header is moved to results.old.csv (then -1, -2, ...)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Sheet:
    """A CSV file rows are appended to; its header is written once, by whoever finds it empty."""

    path: Path
    header: tuple[str, ...]


class Row(NamedTuple):
    time: str
    file: str
    status: str
    prediction: str
    confidence: str
    top3: str
    model: str
    sha256: str
    latency_ms: str
    moved_to: str
    detail: str
    page: str
    field: str


@dataclass(frozen=True)
class Reading:
    """What was read in one page (or a form's field), in numbers; the ledger formats it once, for the CSV and
    `predict`. The recogniser makes it, a page kept for later reads it back, a person's decision is one."""

    status: Status
    prediction: str = ""
    confidence: float | None = None
    top3: tuple[tuple[tuple[int, float], ...], ...] = ()  # per digit, its three likeliest (digit, probability)
    detail: str = ""
    page: int = 1  # 1-based, as the CSV counts pages
    field: str = ""  # the form field's name; empty on a page without a template


class ReadingCells(NamedTuple):
    """A reading as the CSV and `predict` spell it."""

    status: str
    prediction: str
    confidence: str
    top3: str
    detail: str


def reading_cells(reading: Reading) -> ReadingCells:
    """Format a reading once, as SPEC says: confidence and each probability with 4 decimals, digits apart by ` | `."""
    return ReadingCells(
        status=str(reading.status),
        prediction=reading.prediction,
        confidence="" if reading.confidence is None else f"{reading.confidence:.4f}",
        top3=" | ".join(
            " ".join(f"{digit}:{probability:.4f}" for digit, probability in likeliest) for likeliest in reading.top3
        ),
        detail=reading.detail,
    )


def timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-11-24T22:48:34.123Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def guard(cell: str) -> str:
    """Stop a spreadsheet from running a cell as a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def unguard(cell: str) -> str:
    """The cell as it was before `guard` protected it from spreadsheets."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell


def encode(rows: Sequence[Sequence[str]]) -> bytes:
    """RFC 4180 lines (CRLF, minimal quoting) for the rows, each cell formula-guarded."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([guard(cell) for cell in row] for row in rows)
    # A name that is not valid UTF-8 keeps its odd bytes visible, as \\udcNN escapes (Python's surrogates).
    return buffer.getvalue().encode("utf-8", errors="backslashreplace")


def decode(data: bytes) -> list[Row]:
    """The rows `encode` wrote, read back (cells keep their formula guard)."""
    return [Row(*cells) for cells in csv.reader(io.StringIO(data.decode("utf-8"), newline=""))]


HEADER = encode([Row(*COLUMNS)])


class LockedResults:
    """The results file while this process holds its lock: rows appended here never interleave.

    Every decision taken under the lock (where rows start, whether a journal's rows are there,
    whether the last line is torn, whether the header is ours) reads the file as the server has
    it (`coherent.ServerView`): another host may have appended to it a moment ago.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._server = coherent.ServerView(fd)

    @property
    def size(self) -> int:
        return self._server.size()

    def append(self, data: bytes) -> int:
        """Write `data` at the end and make it durable; returns the offset it was written at."""
        offset = self.size
        write_all(self.fd, data)
        os.fsync(self.fd)
        return offset

    def read(self, offset: int, length: int) -> bytes:
        return self._server.read(offset, length)

    def truncate(self, length: int) -> None:
        os.ftruncate(self.fd, length)
        os.fsync(self.fd)

    def repair_torn_line(self) -> int:
        """Cut a last line left half-written by a power cut; returns how many bytes were cut."""
        size = self.size
        if size == 0:
            return 0
        tail = self.read(max(0, size - 65536), min(size, 65536))
        if tail.endswith(b"\n"):
            return 0
        end = tail.rfind(b"\r\n")
        keep = size - len(tail) + end + 2 if end >= 0 else 0
        self.truncate(keep)
        return size - keep

    def close(self) -> None:
        self._server.close()
        os.close(self.fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data`: one write(2) may take only part of it."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@contextmanager
def locked(path: Path, *, header: Sequence[str] = COLUMNS) -> Iterator[LockedResults]:
    """Open a CSV file for appending under an exclusive lock, writing its header if it is new.

    The file is opened afresh each time, so a results file renamed away (rotated) is followed
    by a new one with its own header; one whose header is another is set aside, never appended to.
    """
    wanted = encode([header])
    while True:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        results = LockedResults(fd)
        # Another daemon may have set the file aside while this one waited for the lock: open the new one.
        if _still_at(fd, path):
            if results.size == 0:
                results.append(wanted)
                break
            if results.read(0, len(wanted)) == wanted:
                break
            _set_aside(path)
        results.close()
    try:
        yield results
    finally:
        results.close()


def _still_at(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def set_aside_files(path: Path) -> list[Path]:
    """The CSVs `_set_aside` moved away from `path`, oldest first: results.old.csv, results.old-1.csv, …"""
    stem, suffix = f"{path.stem}{SET_ASIDE_MARK}", path.suffix

    def number(candidate: Path) -> int | None:
        rest = candidate.name[len(stem) : len(candidate.name) - len(suffix)]
        if rest == "":
            return 0
        return int(rest[1:]) if rest.startswith("-") and rest[1:].isdigit() else None

    found = [
        (n, candidate) for candidate in path.parent.glob(f"{stem}*{suffix}") if (n := number(candidate)) is not None
    ]
    return [candidate for _, candidate in sorted(found)]


def _set_aside(path: Path) -> None:
    """Move a CSV written with another header out of the way, saying once where it went."""
    aside = path.parent / place.free_name(path.parent, f"{path.stem}{SET_ASIDE_MARK}{path.suffix}")
    os.rename(path, aside)
    place.sync_folders([path.parent])
    log.warning(Event.RESULTS_SET_ASIDE, file=str(path), moved_to=str(aside), reason="its header is another version's")
