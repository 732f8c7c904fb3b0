"""Rows handed on to a hook: each commit's rows as one batch file in the outbox, claimed, delivered and deleted.

A commit writes its batch into its own workspace before its journal, and moves it into the outbox with its files
(docs/PROTOCOL.md, step 3.4): so a batch is in the outbox exactly when its rows are in the CSVs, whatever moment a
daemon is killed at, and a replayed journal finishes the move. A daemon hands a batch on by claiming it as it claims
an inbox file (a rename into a workspace of its own, under `.delivering/`), and deletes it once the hook has taken
it. One killed in between leaves its claim to another daemon, which takes the workspace over as it takes over a
dead daemon's claims and delivers the batch again, byte for byte the same.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from watcher.ledger import claim, lease, place, record
from watcher.ledger.claim import Claim

OUTBOX = ".hooks"  # in the inbox's work folder: the batches waiting for the hook (hidden: not a workspace)
DELIVERING = ".delivering"  # beside it: the workspaces of the daemons handing batches on
STAGED = "hooks.json"  # a commit's batch in its workspace, until the commit moves it into the outbox
BATCH = re.compile(r"\.(\d+)\.json$")  # a batch's name ends with its count of rows


class Part(NamedTuple):
    """The rows a commit writes to one CSV: `csv` as the hook names it, each row's bytes, the first's offset."""

    csv: str
    header: Sequence[str]
    offset: int
    rows: Sequence[bytes]


def row_id(csv_name: str, offset: int, row: bytes) -> str:
    """A row's id: derived from its CSV, where it starts there and its bytes, so the same row always has the same."""
    return hashlib.sha256(f"{csv_name}\n{offset}\n".encode() + row).hexdigest()[:32]


def body(parts: Sequence[Part]) -> bytes:
    """`{"rows": [...]}` for a commit's rows in the order written: each one's id, its CSV, its cells by column."""
    rows = []
    for part in parts:
        offset = part.offset
        for row in part.rows:
            (cells,) = csv.reader(io.StringIO(row.decode("utf-8"), newline=""))
            by_column = dict(zip(part.header, cells, strict=True))
            rows.append({"id": row_id(part.csv, offset, row), "csv": part.csv, **by_column})
            offset += len(row)
    return json.dumps({"rows": rows}, ensure_ascii=False).encode("utf-8")


def stage(folder: Path, data: bytes) -> Path:
    """Write a commit's batch durably into its workspace (the journal, written next, makes its name durable)."""
    path = folder / STAGED
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        record.write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def batch_name(moment: datetime, *, workspace: str, number: int, rows: int) -> str:
    """A batch's name in the outbox: in the order committed, unique to its commit, with its count of rows."""
    return f"{moment.astimezone(UTC):%Y%m%dT%H%M%S%f}-{workspace}-{number}.{rows}.json"


def rows_in(name: str) -> int:
    """How many rows the batch of this name holds."""
    found = BATCH.search(name)
    assert found is not None, name
    return int(found[1])


class Deliveries:
    """This daemon's side of the outbox: batches claimed in order, and each one's delivery recorded by its deletion.

    Creating it creates a workspace under `.delivering/` (locked and leased for its life, as a ledger's is).
    """

    def __init__(self, work: Path, *, clock: Callable[[], float]) -> None:
        self.outbox = work / OUTBOX
        # Never its parents: with the inbox away (a share unmounted) they would be made on the mount point, where the
        # daemon would take them for the inbox come back. FileNotFoundError then.
        self.outbox.mkdir(exist_ok=True)
        self.clock = clock
        self.workspace = claim.Workspace(work / DELIVERING, inbox=self.outbox, clock=clock)
        self.leases = lease.Leases(clock=clock)

    def recover(self) -> list[Claim]:
        """The batches dead daemons claimed and may not have delivered, taken over: to be delivered first."""
        taken: list[Claim] = []
        for folder in claim.dead_workspaces(self.workspace, leases=self.leases):
            taken.extend(self.workspace.adopt_all(folder, ready_at=self.clock()))
        return taken

    def waiting(self) -> list[str]:
        """The names of the batches in the outbox, oldest first."""
        try:
            return sorted(entry.name for entry in os.scandir(self.outbox) if BATCH.search(entry.name))
        except FileNotFoundError:
            return []  # the inbox went away; its batches are delivered once it is back

    def claim(self, name: str) -> Claim | None:
        """Take a batch from the outbox; None when another daemon took it first."""
        self.workspace.new_batch()
        return self.workspace.claim(name, ready_at=self.clock())

    def delivered(self, claimed: Claim) -> None:
        """Record that the hook took a batch: its deletion, made durable."""
        os.unlink(claimed.path)
        place.sync_folders([claimed.path.parent])
        self.workspace.release(claimed)

    def give_back(self, claimed: Claim) -> None:
        """Put a batch not delivered back in the outbox, for the next daemon to deliver."""
        os.rename(claimed.path, self.outbox / claimed.name)
        place.sync_folders([self.outbox])
        self.workspace.release(claimed)

    def renew(self) -> None:
        self.workspace.lease.renew()

    def close(self) -> None:
        self.workspace.close()
