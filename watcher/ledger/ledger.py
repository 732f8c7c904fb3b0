"""The exactly-once ledger: claims, the journal, the commit, its replay and the recovery of dead daemons.

Every step of docs/PROTOCOL.md is here, in the order that page gives. The ledger knows paths and
plain values only (no config, no recognition), so nothing on the crash-safety path loads OpenCV.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import structlog

from watcher.ledger import claim, lease, outbox, place, progress, record
from watcher.ledger.claim import Claim
from watcher.ledger.record import Sheet
from watcher.vocabulary import Event, Status

log = structlog.get_logger()

JOURNAL_NAME = "journal.json"


@dataclass(frozen=True)
class Folders:
    """Where processed files go."""

    done: Path
    error: Path
    review: Path | None = None

    def destination(self, statuses: Collection[Status]) -> Path:
        """error/ if any reading failed, review/ (when on) if any is unsure, else done/."""
        if Status.ERROR in statuses:
            return self.error
        if Status.LOW_CONFIDENCE in statuses and self.review is not None:
            return self.review
        return self.done


@dataclass(frozen=True)
class Processed:
    """A claimed file with what was read in it: a results row per reading, and any rows for other sheets.

    A file of several pages (`paged`) is placed page by page: the file goes to done/ and each unsure page's
    picture (from `pictures`, or kept with its earlier pages) to review/. Its earlier pages' readings, kept
    by `Ledger.keep_pages`, are committed with these.

    `file` is the name its rows give, when that is not the claimed name (a review item that is a page of `file`).
    `destination` is where the file goes when not where its readings send it (a form with fields still to review).
    """

    claim: Claim
    sha256: str
    readings: Sequence[record.Reading]
    sheet_rows: Sequence[tuple[Sheet, Sequence[str]]] = ()
    paged: bool = False
    pictures: Mapping[int, bytes] = field(default_factory=dict)  # page number -> PNG, for review
    file: str | None = None
    destination: Path | None = None


class Recorded(NamedTuple):
    """One results row as written, in numbers, for logs and metrics."""

    file: str
    reading: record.Reading
    latency_s: float
    moved_to: str


class Ledger:
    """This daemon's side of the protocol: its workspace, and every row and move it commits.

    Creating it creates the workspace (locked for the ledger's life); `close` removes it when empty. With an
    `outbox` (hooks on), each commit also puts its rows there as one batch for the hook (outbox.py).
    """

    def __init__(
        self,
        *,
        results: Path,
        folders: Folders,
        inbox: Path,
        work: Path,
        shown_from: Path,
        clock: Callable[[], float],
        now: Callable[[], datetime],
        outbox: Path | None = None,
    ) -> None:
        self.results = Sheet(results, record.COLUMNS)
        self.folders = folders
        self.work = work
        self.shown_from = shown_from
        self.clock = clock
        self.now = now
        self.workspace = claim.Workspace(work, inbox=inbox, clock=clock)
        self.leases = lease.Leases(clock=clock)
        self.journal = self.workspace.folder / JOURNAL_NAME
        self._journaled: list[Recorded] = []
        self.outbox = outbox
        if outbox is not None:
            outbox.mkdir(parents=True, exist_ok=True)
        self._batches = itertools.count(1)

    def start(self) -> list[Claim]:
        """Recover dead daemons' workspaces and repair a torn last line; returns the claims taken over."""
        adopted = self.recover()
        with record.locked(self.results.path) as results:
            cut = results.repair_torn_line()
        if cut:
            log.warning(Event.RESULTS_REPAIRED, file=str(self.results.path), bytes_cut=cut)
        return adopted

    def recover(self) -> list[Claim]:
        """Finish the journal of each dead daemon and take over its other claims, to be processed as new."""
        adopted: list[Claim] = []
        for folder in claim.dead_workspaces(self.workspace, leases=self.leases):
            journal = folder / JOURNAL_NAME
            finished = replay(journal) if journal.exists() else 0
            taken = self.workspace.adopt_all(folder, ready_at=self.clock())
            adopted.extend(taken)
            log.info(Event.RECOVERED, workspace=folder.name, rows_finished=finished, files_taken_over=len(taken))
        return adopted

    def renew(self) -> None:
        """Say this daemon is alive to daemons on other hosts (cheap: it writes at most once a second)."""
        self.workspace.lease.renew()

    def new_batch(self) -> None:
        self.workspace.new_batch()

    def claim(self, name: str, *, ready_at: float) -> Claim | None:
        return self.workspace.claim(name, ready_at=ready_at)

    def keep_pages(
        self,
        claimed: Claim,
        readings: Sequence[record.Reading],
        pictures: Mapping[int, bytes],
        sheet_rows: Sequence[tuple[Sheet, Sequence[str]]] = (),
    ) -> None:
        """Keep what a run of a file's pages gave (readings, pictures, other sheets' rows) until its last page
        is committed."""
        progress.keep(claimed.path, readings, pictures, sheet_rows)

    def next_page(self, claimed: Claim) -> int:
        """The first page of a claimed file not read yet: 1, or after the pages kept before a restart."""
        return max((reading.page for reading in progress.kept(claimed.path).readings), default=0) + 1

    def commit(self, batch: Sequence[Processed], *, model: str) -> list[Recorded]:
        """Write the batch's rows and move its files, exactly once; returns its results rows.

        Called again after an OSError, it finishes the journal of the failed try if one was
        written (its rows may be in the CSV already), else commits the batch afresh.
        """
        if os.path.lexists(self.journal):
            replay(self.journal)
        else:
            self._commit(batch, model=model)
        recorded, self._journaled = self._journaled, []
        # What was kept beside the files goes first, so their claim folders are empty when released.
        for item in batch:
            progress.forget(item.claim.path)
        for item in batch:
            self.workspace.release(item.claim)
        return recorded

    def close(self) -> None:
        self.workspace.close()

    def _picture(self, item: Processed, reading: record.Reading) -> Path | None:
        """An unsure page's picture beside the claimed file (written there now if it came with this commit)."""
        if reading.status != Status.LOW_CONFIDENCE:
            return None
        if reading.page in item.pictures:
            return progress.keep_picture(item.claim.path, reading.page, item.pictures[reading.page])
        kept = progress.picture_path(item.claim.path, reading.page)
        return kept if kept.exists() else None

    def _commit(self, batch: Sequence[Processed], *, model: str) -> None:
        kept = {item.claim: progress.kept(item.claim.path) for item in batch if item.paged}
        sheet_rows = {
            item.claim: [*(kept[item.claim].sheet_rows if item.paged else ()), *item.sheet_rows] for item in batch
        }
        sheets = sorted(
            {self.results, *(sheet for rows in sheet_rows.values() for sheet, _ in rows)}, key=lambda s: s.path
        )
        with ExitStack() as held:
            # Locked in path order, so two daemons committing to the same sheets can never deadlock.
            locked = {sheet: held.enter_context(record.locked(sheet.path, header=sheet.header)) for sheet in sheets}
            rows, moves, recorded = self._placed(batch, kept=kept, sheet_rows=sheet_rows, sheets=sheets, model=model)
            encoded = {sheet: [record.encode([cells]) for cells in rows[sheet]] for sheet in sheets if rows[sheet]}
            parts = [(sheet, locked[sheet].size, b"".join(encoded[sheet])) for sheet in encoded]
            if self.outbox is not None:
                moves.append(self._stage_batch([(sheet, offset, encoded[sheet]) for sheet, offset, _ in parts]))
            # Kept before the journal exists, so a retry that finds the journal reports these rows.
            self._journaled = recorded
            _write_journal(self.journal, parts=parts, moves=moves)
            for sheet, _, data in parts:
                locked[sheet].append(data)
            _finish_moves(moves)
            _remove_journal(self.journal)

    def _placed(
        self,
        batch: Sequence[Processed],
        *,
        kept: Mapping[Claim, progress.Kept],
        sheet_rows: Mapping[Claim, Sequence[tuple[Sheet, Sequence[str]]]],
        sheets: Sequence[Sheet],
        model: str,
    ) -> tuple[dict[Sheet, list[Sequence[str]]], list[tuple[Path, Path]], list[Recorded]]:
        """Each sheet's rows for the batch, the moves of its files (and unsure pages' pictures) to free names, and
        its results rows as recorded; with the sheets locked, nothing moved or written yet."""
        taken: dict[Path, set[str]] = {}
        shown: dict[Path, str] = {}
        rows: dict[Sheet, list[Sequence[str]]] = {sheet: [] for sheet in sheets}
        recorded, moves = [], []
        written_at, written_clock = record.timestamp(self.now()), self.clock()

        def place_as(source: Path, folder: Path, wanted: str) -> str:
            """Add the move of `source` into `folder` under a free name; returns its `moved_to`."""
            name = place.free_name(folder, wanted, taken=taken.setdefault(folder, set()))
            taken[folder].add(name)
            moves.append((source, folder / name))
            return os.path.join(shown.setdefault(folder, os.path.relpath(folder, self.shown_from)), name)

        for item in batch:
            readings = [*kept[item.claim].readings, *item.readings] if item.paged else list(item.readings)
            statuses = {reading.status for reading in readings}
            folder = item.destination or (self.folders.done if item.paged else self.folders.destination(statuses))
            file_moved_to = place_as(item.claim.path, folder, item.claim.name)
            latency_s = max(written_clock - item.claim.ready_at, 0.0)
            for reading in readings:
                moved_to = file_moved_to
                picture = self._picture(item, reading) if item.paged else None
                if picture is not None and self.folders.review is not None:
                    wanted = progress.picture_name(item.claim.name, reading.page)
                    moved_to = place_as(picture, self.folders.review, wanted)
                recorded.append(Recorded(item.file or item.claim.name, reading, latency_s, moved_to))
                rows[self.results].append(
                    _results_row(item, reading, model=model, at=written_at, latency_s=latency_s, moved_to=moved_to)
                )
            for sheet, cells in sheet_rows[item.claim]:
                rows[sheet].append(cells)
        return rows, moves, recorded

    def _stage_batch(self, parts: Sequence[tuple[Sheet, int, Sequence[bytes]]]) -> tuple[Path, Path]:
        """Write the hook's batch of these rows into the workspace; returns its move into the outbox."""
        assert self.outbox is not None
        batch = [outbox.Part(self._csv_name(sheet), sheet.header, offset, rows) for sheet, offset, rows in parts]
        name = outbox.batch_name(
            self.now(),
            workspace=self.workspace.id,
            number=next(self._batches),
            rows=sum(len(rows) for _, _, rows in parts),
        )
        return outbox.stage(self.workspace.folder, outbox.body(batch)), self.outbox / name

    def _csv_name(self, sheet: Sheet) -> str:
        """A sheet as the hook names it: `results`, or `forms/NAME` for a sheet beside the results file."""
        if sheet == self.results:
            return "results"
        return Path(os.path.relpath(sheet.path, self.results.path.parent)).with_suffix("").as_posix()


def replay(journal: Path) -> int:
    """Finish a half-committed batch: each sheet's rows once, its files moved; returns how many rows it holds."""
    entry = json.loads(journal.read_text(encoding="utf-8"))
    parts = _parts(entry)
    with ExitStack() as held:
        # Locked in the order of the paths they name, as a commit locks them, so the two can never deadlock.
        for part in sorted(parts, key=lambda p: _located(journal, p["path"])):
            sheet = held.enter_context(record.locked(_located(journal, part["path"]), header=part["header"]))
            _restore(sheet, offset=part["offset"], data=part["rows"].encode("utf-8"))
        _finish_moves([(_located(journal, source), _located(journal, target)) for source, target in entry["moves"]])
        _remove_journal(journal)
    return sum(len(list(csv.reader(io.StringIO(part["rows"], newline="")))) for part in parts)


def _parts(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The journal's sheets; a journal left by a version before several sheets names one results file."""
    if "sheets" in entry:
        sheets: list[dict[str, Any]] = entry["sheets"]
        return sheets
    return [
        {
            "path": entry["results"],
            "header": list(record.COLUMNS_BEFORE_PAGES),
            "offset": entry["offset"],
            "rows": entry["rows"],
        }
    ]


def _restore(sheet: record.LockedResults, *, offset: int, data: bytes) -> None:
    """Leave the rows at `offset` if they are there, else write them, cutting back a write cut short first."""
    written = sheet.read(offset, len(data))
    if written == data:
        return
    # Only a prefix of the rows with nothing after is a write cut short; anything else (a rotated file) is kept.
    if offset <= sheet.size <= offset + len(data) and data.startswith(written):
        sheet.truncate(offset)
    sheet.append(data)


def _located(journal: Path, path: str) -> Path:
    """A path the journal names: relative to its folder (older journals hold absolute ones, kept as they are)."""
    return Path(os.path.normpath(os.path.join(journal.parent, path)))


def _write_journal(path: Path, *, parts: list[tuple[Sheet, int, bytes]], moves: list[tuple[Path, Path]]) -> None:
    # Paths relative to the journal, so a daemon on another host, with the share mounted elsewhere, replays
    # it through its own mount.
    def relative(target: Path) -> str:
        return os.path.relpath(target, path.parent)

    entry = {
        "sheets": [
            {
                "path": relative(sheet.path),
                "header": list(sheet.header),
                "offset": offset,
                "rows": data.decode("utf-8"),
            }
            for sheet, offset, data in parts
        ],
        "moves": [[relative(source), relative(destination)] for source, destination in moves],
    }
    partial = path.with_name(path.name + ".part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        record.write_all(fd, json.dumps(entry).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(partial, path)
    # Without this a power cut could lose the journal yet keep the rows appended next: the claims would be read again.
    place.sync_folders([path.parent])


def _remove_journal(path: Path) -> None:
    os.unlink(path)
    # Else a power cut could bring the journal back: replayed after the CSV was rotated, it would add its rows again.
    place.sync_folders([path.parent])


def _finish_moves(moves: list[tuple[Path, Path]]) -> None:
    """Move each claimed file still in place, then make the moves durable."""
    moved = [destination.parent for source, destination in moves if _finish_move(source, destination)]
    place.sync_folders(moved)


def _finish_move(source: Path, destination: Path) -> bool:
    # The server's answer to the move decides, not this client's cache of names: on a network filesystem that
    # can lag another host's renames by a second either way.
    wanted, tried = destination, {destination.name}
    while True:
        try:
            place.move(source, destination)
            break
        except FileNotFoundError:
            # Deleted while it was read, or moved before a crash; or moved by a retried request whose first reply
            # was lost (NFS), and then it is at its destination.
            if os.path.lexists(destination) and not os.path.lexists(source):
                break
            return False
        except FileExistsError:
            if os.path.samestat(os.lstat(source), os.lstat(destination)):
                os.unlink(source)  # linked before a crash, not yet unlinked
                break
            # Another daemon took the name after this one died; the row's moved_to is then stale.
            destination = destination.parent / place.free_name(destination.parent, wanted.name, taken=tried)
            tried.add(destination.name)
    if destination != wanted:
        log.warning(Event.DESTINATION_TAKEN, wanted=str(wanted), used=str(destination))
    return True


def _results_row(
    item: Processed, reading: record.Reading, *, model: str, at: str, latency_s: float, moved_to: str
) -> record.Row:
    cells = record.reading_cells(reading)
    return record.Row(
        time=at,
        file=item.claim.name if item.file is None else item.file,
        status=cells.status,
        prediction=cells.prediction,
        confidence=cells.confidence,
        top3=cells.top3,
        model=model,
        sha256=item.sha256,
        latency_ms=f"{latency_s * 1000:.1f}",
        moved_to=moved_to,
        detail=cells.detail,
        page=str(reading.page),
        field=reading.field,
    )
