"""The results CSV read back: what waits for a person, and what people decided, as the rows say."""

from __future__ import annotations

import csv
import fcntl
import io
import os
from pathlib import Path

from watcher.ledger.record import COLUMNS, Row, unguard
from watcher.vocabulary import DECISIONS, PERSON, Status

READ_CHUNK = 4 << 20  # the results file is read this much at a time, however long it has grown


def is_decision(row: Row) -> bool:
    """A person's review decision (SPEC: status verified or corrected, model person:NAME)."""
    return row.status in DECISIONS and row.model.startswith(PERSON)


class Results:
    """The results CSV read incrementally, for what waits in review and what people decided.

    Kept: the latest unsure reading or decision for each `moved_to` and for each reading, and every decision in
    order. The file only grows (rows are appended under its lock); one set aside or cut back is read afresh.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.latest: dict[str, Row] = {}
        self.last_of: dict[tuple[str, str, str, str], Row] = {}
        self.readings: dict[tuple[str, str, str, str], Row] = {}
        self.decisions: list[Row] = []
        self._identity: tuple[int, int] | None = None
        self._offset = 0

    def refresh(self) -> None:
        """Take in the rows appended since the last call, a few MB at a time."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._reset(None)
            return
        try:
            # A shared lock waits for an append in progress, so only whole rows are read.
            fcntl.flock(fd, fcntl.LOCK_SH)
            info = os.fstat(fd)
            identity = (info.st_dev, info.st_ino)
            if identity != self._identity or info.st_size < self._offset:
                self._reset(identity)
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
            if tuple(header) != COLUMNS:
                # Another version's header: none of its rows can be read as this version's.
                self._offset = size
                return False
        self._offset += end
        for cells in table:
            if len(cells) == len(COLUMNS):
                self._take(Row(*(unguard(cell) for cell in cells)))
        return True

    def reading_before(self, decision: Row) -> Row | None:
        """The model's reading that a review decision decided."""
        return self.readings.get(_key(decision))

    def stands(self, decision: Row) -> bool:
        """Whether a decision is still the last word on its reading and on the file where it put it (not undone)."""
        return self.latest.get(decision.moved_to) == decision and self.last_of.get(_key(decision)) == decision

    def _take(self, row: Row) -> None:
        # Only what waits or was decided is kept: a year of `ok` rows costs no memory here.
        if row.status != Status.LOW_CONFIDENCE and not is_decision(row):
            return
        self.latest[row.moved_to] = row
        self.last_of[_key(row)] = row
        if row.status == Status.LOW_CONFIDENCE:
            self.readings[_key(row)] = row
        else:
            self.decisions.append(row)

    def _reset(self, identity: tuple[int, int] | None) -> None:
        self.latest, self.last_of, self.readings, self.decisions = {}, {}, {}, []
        self._identity, self._offset = identity, 0


def _rows_end(data: bytes) -> int:
    """Where the last whole row in `data` ends: after its CRLF, one outside quotes (a name may hold a line break)."""
    end = data.rfind(b"\r\n")
    while end >= 0 and data.count(b'"', 0, end) % 2:
        end = data.rfind(b"\r\n", 0, end)
    return end + 2 if end >= 0 else 0


def _key(row: Row) -> tuple[str, str, str, str]:
    return (row.file, row.page, row.field, row.sha256)
