"""What waits in review/: each file there whose latest results row says it was moved there, with that reading."""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from watcher.ledger.record import COLUMNS, Row, unguard
from watcher.vocabulary import DECISIONS, PERSON, Status


def is_decision(row: Row) -> bool:
    return row.status in DECISIONS and row.model.startswith(PERSON)


@dataclass(frozen=True)
class Item:
    """A file waiting in review/, named to the browser only by its opaque `id`."""

    id: str
    name: str
    row: Row

    def why(self, threshold: float) -> str:
        """Why a person is asked: the rule the reading broke, or its confidence under the threshold."""
        if self.row.detail:
            return self.row.detail
        if self.row.confidence:
            return f"confidence {self.row.confidence} below {threshold:g}"
        return f"read as {self.row.status}"


READ_CHUNK = 4 << 20  # the results file is read this much at a time, however long it has grown


class Results:
    """The results CSV read incrementally: the latest row for each `moved_to`, and every review decision in order.

    The file only grows (rows are appended under its lock); a file set aside or cut back is read again from the start.
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


class Queue:
    """The items in review/, joined to their rows by `moved_to` (never by parsing names)."""

    def __init__(self, *, review: Path, results: Path, root: Path, secret: bytes) -> None:
        self.review = review
        self.results = Results(results)
        self.root = root
        self.secret = secret
        self._lock = threading.Lock()

    def items(self) -> list[Item]:
        """What waits now, oldest reading first."""
        shown = os.path.relpath(self.review, self.root)
        items = []
        # Pages poll from the server's threads while decisions are made: one refresh of the index at a time.
        with self._lock:
            self.results.refresh()
            for entry in _regular_files(self.review):
                row = self.results.latest.get(os.path.join(shown, entry))
                if row is not None and row.status == Status.LOW_CONFIDENCE:
                    items.append(Item(id=self._id(entry, row), name=entry, row=row))
        return sorted(items, key=lambda item: (item.row.time, item.name))

    def decisions_standing(self, model: str) -> list[tuple[Row, Row]]:
        """`model`'s decisions whose file is still where they put it, newest first, each with the reading it decided."""
        with self._lock:
            self.results.refresh()
            return [
                (decision, reading)
                for decision in reversed(self.results.decisions)
                if decision.model == model
                and self.results.stands(decision)
                and (reading := self.results.reading_before(decision)) is not None
            ]

    def find(self, item_id: str) -> Item | None:
        return next((item for item in self.items() if item.id == item_id), None)

    def _id(self, name: str, row: Row) -> str:
        # Keyed by the row too: a new file under a decided one's name is a new item, and a stale page's id is refused.
        message = "\0".join((name, row.time, row.sha256, row.page, row.field)).encode("utf-8", "surrogateescape")
        return hashlib.blake2b(message, key=self.secret, digest_size=12).hexdigest()


def _regular_files(folder: Path) -> list[str]:
    """The names of the plain files in `folder`: no hidden ones (the reviewers' workspaces), no links."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    return [e.name for e in entries if not e.name.startswith(".") and _is_plain_file(e)]


def _is_plain_file(entry: os.DirEntry[str]) -> bool:
    try:
        return stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False  # decided, by another reviewer, while the folder was listed
