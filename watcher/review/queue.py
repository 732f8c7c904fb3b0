"""What waits in review/: each unsure reading whose latest results row put it in a file there."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from watcher.filesystem import files_below, visible
from watcher.ledger.history import Results
from watcher.ledger.record import Row


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


class Queue:
    """The items in review/, joined to their rows by `moved_to` (never by parsing names): a file's unsure
    reading, or each unsure field of a form page."""

    def __init__(self, *, review: Path, results: Path, root: Path, secret: bytes) -> None:
        self.review = review
        self.shown = os.path.relpath(review, root)
        self.results = Results(results, waiting_in=self.shown)
        self.root = root
        self.secret = secret
        self._lock = threading.Lock()

    def items(self) -> list[Item]:
        """What waits now, oldest reading first (a form's fields in template order)."""
        # Pages poll from the server's threads while decisions are made: one refresh of the index at a time.
        with self._lock:
            self.results.refresh()
            items = [
                Item(id=self._id(entry, row), name=entry, row=row)
                for entry in _regular_files(self.review)
                for row in self.results.waiting_at(os.path.join(self.shown, entry))
            ]
        return sorted(items, key=lambda item: (item.row.time, item.name))

    def waiting_on(self, name: str) -> list[Row]:
        """The readings still waiting on review/`name`, as the rows say (the file itself may be claimed)."""
        with self._lock:
            self.results.refresh()
            return self.results.waiting_at(os.path.join(self.shown, name))

    def still_waits(self, row: Row) -> bool:
        """Whether no decision has come after the reading `row` (a claim can be won after another reviewer's
        decision put a form back in review/, for its other fields)."""
        with self._lock:
            self.results.refresh()
            return self.results.is_last_word(row)

    def form_page(self, row: Row) -> dict[str, Row]:
        """The last row of each field on the form page the reading `row` is a field of."""
        with self._lock:
            self.results.refresh()
            return self.results.form_page(row)

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
        """The item `item_id` names if its reading still waits, its file listed or held for a moment by a decision
        on another field of its form."""
        with self._lock:
            self.results.refresh()
            waiting = self.results.waiting()
        return next(
            (Item(item_id, self._name(row), row) for row in waiting if self._id(self._name(row), row) == item_id), None
        )

    def _name(self, row: Row) -> str:
        """The name in review/ of the file a row put there (in a subfolder, from a subfolder of the inbox)."""
        return os.path.relpath(row.moved_to, self.shown)

    def _id(self, name: str, row: Row) -> str:
        # Keyed by the row too: a new file under a decided one's name is a new item, and a stale page's id is refused.
        message = "\0".join((name, row.time, row.sha256, row.page, row.field)).encode("utf-8", "surrogateescape")
        return hashlib.blake2b(message, key=self.secret, digest_size=12).hexdigest()


def _regular_files(folder: Path) -> list[str]:
    """The names of the plain files in `folder` and its subfolders: no hidden ones (the reviewers' workspaces),
    no links."""
    try:
        return [name for name, entry in files_below(folder, enters=visible) if visible(name) and _is_plain_file(entry)]
    except FileNotFoundError:
        return []


def _is_plain_file(entry: os.DirEntry[str]) -> bool:
    try:
        return stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False  # decided, by another reviewer, while the folder was listed
