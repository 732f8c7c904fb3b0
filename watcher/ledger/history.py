"""The results CSV read back: what waits for a person, and what people decided, as the rows say."""

from __future__ import annotations

import csv
import fcntl
import io
import os
from pathlib import Path

from watcher.ledger import record
from watcher.ledger.record import COLUMNS, COLUMNS_BEFORE_PAGES, Row, unguard
from watcher.vocabulary import DECISIONS, PERSON, Status

READ_CHUNK = 4 << 20  # the results file is read this much at a time, however long it has grown

HEADERS = (COLUMNS, COLUMNS_BEFORE_PAGES)  # this version's results, and those of the version before pages
Key = tuple[str, str, str, str]  # a reading: file, page, field, sha256
PageKey = tuple[str, str, str]  # a page: file, page, sha256


def is_decision(row: Row) -> bool:
    """A person's review decision (SPEC: status verified or corrected, model person:NAME)."""
    return row.status in DECISIONS and row.model.startswith(PERSON)


class Results:
    """The results CSV read incrementally, for what waits in review and what people decided.

    Kept: the latest unsure reading or decision for each `moved_to` and for each reading, every decision in order,
    and, for form pages sent to the review folder (`waiting_in`, as `moved_to` names it), every field's last row.
    The file only grows (rows are appended under its lock); one set aside or cut back is read afresh.
    """

    def __init__(self, path: Path, *, waiting_in: str = "") -> None:
        self.path = path
        self.waiting_in = waiting_in
        self._below_review = os.path.join(waiting_in, "")  # what moved_to starts with in a subfolder of it
        self.latest: dict[str, Row] = {}
        self.last_of: dict[Key, Row] = {}
        self.readings: dict[Key, Row] = {}
        self.decisions: list[Row] = []
        self._at: dict[str, dict[Key, Row]] = {}
        self._form_pages: dict[PageKey, dict[str, Row]] = {}
        self._last_move: dict[tuple[str, str], str] = {}
        self._identity: tuple[int, int] | None = None
        self._offset = 0
        self._width = len(COLUMNS)  # the live file's columns: this version's, or the version's before pages
        self._set_aside_read = False

    def refresh(self) -> None:
        """Take in the rows appended since the last call, a few MB at a time (and once, first, the files an
        upgrade set aside beside it: what they sent to review still waits there)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if self._identity is not None:
                self._reset(None)
            self._take_set_aside()
            return
        try:
            # A shared lock waits for an append in progress, so only whole rows are read.
            fcntl.flock(fd, fcntl.LOCK_SH)
            info = os.fstat(fd)
            identity = (info.st_dev, info.st_ino)
            if identity != self._identity or info.st_size < self._offset:
                self._reset(identity)
            self._take_set_aside()
            chunk = READ_CHUNK
            while self._offset < info.st_size:
                data = os.pread(fd, chunk, self._offset)
                if not self._take_rows(data, info.st_size):
                    if self._offset + len(data) >= info.st_size:
                        break  # the rest is a line torn by a power cut, read once it is repaired
                    chunk *= 2  # a row longer than the chunk
        finally:
            os.close(fd)

    def _take_rows(self, data: bytes, size: int) -> bool:
        """Index the whole rows at the start of `data`; False when it holds none."""
        end = _rows_end(data)
        if not end:
            return False
        table = list(csv.reader(io.StringIO(data[:end].decode("utf-8", errors="replace"), newline="")))
        if self._offset == 0 and table:
            header, table = table[0], table[1:]
            if tuple(header) not in HEADERS:
                # Not a results file: none of its rows can be read as this version's.
                self._offset = size
                return False
            self._width = len(header)
        self._offset += end
        for cells in table:
            if len(cells) == self._width:
                self._take(_row(cells))
        return True

    def _take_set_aside(self) -> None:
        """The rows of the results files an upgrade set aside (results.old.csv, …), oldest first, read once."""
        if self._set_aside_read:
            return
        self._set_aside_read = True
        for aside in record.set_aside_files(self.path):
            try:
                with open(aside, encoding="utf-8", errors="replace", newline="") as file:
                    reader = csv.reader(file)
                    header = tuple(next(reader, ()))
                    if header in HEADERS:
                        for cells in reader:
                            if len(cells) == len(header):
                                self._take(_row(cells))
            except (OSError, csv.Error):
                continue  # unreadable: its items are not shown, as before

    def reading_before(self, decision: Row) -> Row | None:
        """The model's reading that a review decision decided."""
        return self.readings.get(_key(decision))

    def waiting_at(self, moved_to: str) -> list[Row]:
        """The unsure readings whose last row put them at `moved_to`, of the file there now (its latest rows' file)."""
        newest = self.latest.get(moved_to)
        if newest is None:
            return []
        return [
            row
            for row in self._at.get(moved_to, {}).values()
            if row.status == Status.LOW_CONFIDENCE and (row.file, row.sha256) == (newest.file, newest.sha256)
        ]

    def waiting(self) -> list[Row]:
        """Every unsure reading whose last row put it in the review folder (`waiting_in`), its file there or not."""
        return [row for moved_to in self._at if self._in_review(moved_to) for row in self.waiting_at(moved_to)]

    def now_at(self, row: Row) -> str:
        """Where the file of `row` went last, as the rows say (a form decided field by field moves more than once)."""
        return self._last_move.get((row.file, row.sha256), row.moved_to)

    def is_last_word(self, row: Row) -> bool:
        """Whether `row` is still the latest row of its reading (no decision or undo came after it)."""
        return self.last_of.get(_key(row)) == row

    def form_page(self, row: Row) -> dict[str, Row]:
        """The last row of each field on the form page `row` is a field of, in template order (empty: none kept)."""
        return dict(self._form_pages.get(_page_key(row), {}))

    def stands(self, decision: Row) -> bool:
        """Whether a decision is still the last word on its reading and its file is still where it put it (not
        undone, not replaced by another file of that name)."""
        newest = self.latest.get(decision.moved_to)
        return (
            self.is_last_word(decision)
            and newest is not None
            and (newest.file, newest.sha256) == (decision.file, decision.sha256)
        )

    def _in_review(self, moved_to: str) -> bool:
        """Whether a row's file went into the review folder (or a subfolder of it, from one of the inbox)."""
        folder = os.path.dirname(moved_to)
        return folder == self.waiting_in or (bool(self.waiting_in) and folder.startswith(self._below_review))

    def _take(self, row: Row) -> None:
        page = _page_key(row)
        if row.field and (page in self._form_pages or self._in_review(row.moved_to)):
            self._form_pages.setdefault(page, {})[row.field] = row
        # Only what waits or was decided is kept: a year of `ok` rows costs no memory here.
        if row.status != Status.LOW_CONFIDENCE and not is_decision(row):
            return
        key = _key(row)
        previous = self.last_of.get(key)
        if previous is not None:
            self._at.get(previous.moved_to, {}).pop(key, None)
        self._at.setdefault(row.moved_to, {})[key] = row
        self.latest[row.moved_to] = row
        self._last_move[(row.file, row.sha256)] = row.moved_to
        self.last_of[key] = row
        if row.status == Status.LOW_CONFIDENCE:
            self.readings[key] = row
        else:
            self.decisions.append(row)

    def _reset(self, identity: tuple[int, int] | None) -> None:
        self.latest, self.last_of, self.readings, self.decisions = {}, {}, {}, []
        self._at, self._form_pages, self._last_move = {}, {}, {}
        self._identity, self._offset, self._width, self._set_aside_read = identity, 0, len(COLUMNS), False


def _rows_end(data: bytes) -> int:
    """Where the last whole row in `data` ends: after its CRLF, one outside quotes (a name may hold a line break)."""
    end = data.rfind(b"\r\n")
    while end >= 0 and data.count(b'"', 0, end) % 2:
        end = data.rfind(b"\r\n", 0, end)
    return end + 2 if end >= 0 else 0


def _row(cells: list[str]) -> Row:
    """A row of this version's header, or of the one before pages (a single image: page 1, no field)."""
    unguarded = [unguard(cell) for cell in cells]
    return Row(*unguarded, *("1", "")[: len(COLUMNS) - len(unguarded)])


def _key(row: Row) -> Key:
    return (row.file, row.page, row.field, row.sha256)


def _page_key(row: Row) -> PageKey:
    return (row.file, row.page, row.sha256)
