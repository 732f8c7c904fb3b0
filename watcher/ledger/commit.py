"""Record a batch's rows and place its files, crash-safely: journal, append, move, forget.

Under the results file's exclusive lock: choose each file's destination, write the batch's
rows and moves to the workspace journal (fsync), append the rows to the CSV (fsync), move the
files (fsync the folders), delete the journal. A daemon killed at any point leaves either no
journal (its claims are processed again) or a journal that `replay` finishes exactly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from watcher.ledger import place, record
from watcher.ledger.claim import Claim, Workspace
from watcher.service.config import Config
from watcher.recognise import Reading

log = structlog.get_logger()


@dataclass(frozen=True)
class Processed:
    """A claimed file with what was read in it."""

    claim: Claim
    sha256: str
    reading: Reading


def commit(
    batch: Sequence[Processed],
    *,
    config: Config,
    workspace: Workspace,
    model: str,
    now: Callable[[], datetime],
    clock: Callable[[], float],
) -> list[record.Row]:
    """Write the batch's rows and move its files; returns the rows written."""
    with record.locked(config.paths.results) as results:
        taken: dict[Path, set[str]] = {}
        shown: dict[Path, str] = {}
        rows, moves = [], []
        written_at, written_clock = record.timestamp(now()), clock()
        for item in batch:
            folder = destination_folder(config, item.reading.status)
            name = place.free_name(folder, item.claim.name, taken=taken.setdefault(folder, set()))
            taken[folder].add(name)
            moves.append((item.claim.path, folder / name))
            shown.setdefault(folder, os.path.relpath(folder, config.root))
            moved_to = os.path.join(shown[folder], name)
            rows.append(_row(item, model=model, at=written_at, latency_s=written_clock - item.claim.ready_at, moved_to=moved_to))
        data = record.encode(rows)
        _write_journal(workspace.journal, results=config.paths.results, offset=results.size, data=data, moves=moves)
        results.append(data)
        _finish_moves(moves)
        os.unlink(workspace.journal)
    for item in batch:
        workspace.release(item.claim)
    return rows


def destination_folder(config: Config, status: str) -> Path:
    if status == "error":
        return config.paths.error
    if status == "low_confidence" and config.paths.review is not None:
        return config.paths.review
    return config.paths.done


def replay(journal: Path) -> list[record.Row]:
    """Finish a half-committed batch: its rows once in the CSV, its files moved; returns its rows."""
    entry = json.loads(journal.read_text(encoding="utf-8"))
    data = entry["rows"].encode("utf-8")
    offset = entry["offset"]
    with record.locked(Path(entry["results"])) as results:
        if results.read(offset, len(data)) != data:
            written = results.read(offset, len(data))
            if results.size <= offset + len(data) and data.startswith(written):
                results.truncate(offset)
            results.append(data)
        _finish_moves([(Path(source), Path(destination)) for source, destination in entry["moves"]])
    os.unlink(journal)
    return record.decode(data)


def _finish_moves(moves: list[tuple[Path, Path]]) -> None:
    """Move each claimed file still in place, then make the moves durable."""
    moved = [destination.parent for source, destination in moves if _finish_move(source, destination)]
    place.sync_folders(moved)


def _finish_move(source: Path, destination: Path) -> bool:
    # A claimed file can be gone: deleted while it was read, or moved before a crash.
    if not os.path.lexists(source):
        return False
    if os.path.lexists(destination):
        if os.path.samestat(os.lstat(source), os.lstat(destination)):
            os.unlink(source)
            return True
        # Another daemon took the name after this one died; the row's moved_to is then stale.
        taken = destination
        destination = destination.parent / place.free_name(destination.parent, destination.name)
        log.warning("destination_taken", wanted=str(taken), used=str(destination))
    place.move(source, destination)
    return True


def _write_journal(path: Path, *, results: Path, offset: int, data: bytes, moves: list[tuple[Path, Path]]) -> None:
    entry = {
        "results": os.fspath(results),
        "offset": offset,
        "rows": data.decode("utf-8"),
        "moves": [[os.fspath(source), os.fspath(destination)] for source, destination in moves],
    }
    partial = path.with_name(path.name + ".part")
    with open(partial, "w", encoding="utf-8") as file:
        json.dump(entry, file)
        file.flush()
        os.fsync(file.fileno())
    os.rename(partial, path)


def _row(item: Processed, *, model: str, at: str, latency_s: float, moved_to: str) -> record.Row:
    reading = item.reading
    return record.Row(
        time=at,
        file=item.claim.name,
        status=reading.status,
        prediction=reading.prediction,
        confidence=reading.confidence,
        top3=reading.top3,
        model=model,
        sha256=item.sha256,
        latency_ms=f"{max(latency_s, 0.0) * 1000:.1f}",
        moved_to=moved_to,
        detail=reading.detail,
    )
