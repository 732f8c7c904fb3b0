from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from watcher.ledger import ledger as ledgers
from watcher.ledger import record
from watcher.ledger.ledger import Folders, Ledger, Processed
from watcher.ledger.record import Reading
from watcher.service.config import Config
from watcher.vocabulary import Status


def fixed_now() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


def open_ledger(config: Config, *, clock: float = 0.25) -> Ledger:
    paths = config.paths
    return Ledger(
        results=paths.results,
        folders=Folders(done=paths.done, error=paths.error, review=paths.review),
        inbox=paths.inbox,
        work=config.work,
        shown_from=config.root,
        clock=lambda: clock,
        now=fixed_now,
    )


def processed(ledger: Ledger, inbox: Path, name: str, *readings: Reading) -> Processed:
    (inbox / name).write_bytes(name.encode())
    taken = ledger.claim(name, ready_at=0.0)
    assert taken is not None
    return Processed(claim=taken, sha256="abc", readings=readings)


def rows_of(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))[1:]


def claimed_files(ledger: Ledger) -> list[Path]:
    return list(ledger.workspace.folder.glob("*/*"))


def test_commit_writes_rows_then_places_files(config: Config) -> None:
    ledger = open_ledger(config)
    seven = Reading(status=Status.OK, prediction="7", confidence=0.99, top3=(((7, 0.99), (1, 0.005), (2, 0.001)),))
    batch = [
        processed(ledger, config.paths.inbox, "a.png", seven),
        processed(ledger, config.paths.inbox, "b.png", Reading(status=Status.ERROR, detail="not a PNG image")),
    ]
    (config.paths.done / "a.png").write_bytes(b"an older a.png")
    recorded = ledger.commit(batch, model="fake/1")
    assert [r.moved_to for r in recorded] == ["inbox/done/a-1.png", "inbox/error/b.png"]
    assert [r.latency_s for r in recorded] == [0.25, 0.25]
    assert (config.paths.done / "a.png").read_bytes() == b"an older a.png"
    assert (config.paths.done / "a-1.png").read_bytes() == b"a.png"
    assert rows_of(config.paths.results) == [
        [
            "2026-01-01T00:00:00.000Z",
            "a.png",
            "ok",
            "7",
            "0.9900",
            "7:0.9900 1:0.0050 2:0.0010",
            "fake/1",
            "abc",
            "250.0",
            "inbox/done/a-1.png",
            "",
            "1",
            "",
        ],
        [
            "2026-01-01T00:00:00.000Z",
            "b.png",
            "error",
            "",
            "",
            "",
            "fake/1",
            "abc",
            "250.0",
            "inbox/error/b.png",
            "not a PNG image",
            "1",
            "",
        ],
    ]
    assert not ledger.journal.exists()
    ledger.close()
    assert not ledger.workspace.folder.exists()


def crash_between(config: Config, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, *, fail: str) -> list[Processed]:
    """Commit a batch, dying at `fail` as a kill -9 would (the journal stays)."""
    batch = [
        processed(ledger, config.paths.inbox, f"{n}.png", Reading(status=Status.OK, prediction=str(n), confidence=0.9))
        for n in range(3)
    ]

    class Killed(BaseException):
        pass

    calls = {"n": 0}
    real_move = ledgers.place.move

    def dying_move(source: Path, destination: Path) -> None:
        calls["n"] += 1
        if fail == "after one move" and calls["n"] == 2:
            raise Killed
        real_move(source, destination)

    def dying_append(self: record.LockedResults, data: bytes) -> int:
        if fail == "torn append":
            os.write(self.fd, data[: len(data) // 2])
        raise Killed

    if fail == "after one move":
        monkeypatch.setattr(ledgers.place, "move", dying_move)
    else:
        original_append = record.LockedResults.append

        def append(self: record.LockedResults, data: bytes) -> int:
            return original_append(self, data) if data == record.HEADER else dying_append(self, data)

        monkeypatch.setattr(record.LockedResults, "append", append)
    with pytest.raises(Killed):
        ledger.commit(batch, model="fake/1")
    monkeypatch.undo()
    return batch


@pytest.mark.parametrize("fail", ["before append", "torn append", "after one move"])
def test_replay_finishes_a_batch_exactly_once(config: Config, monkeypatch: pytest.MonkeyPatch, fail: str) -> None:
    ledger = open_ledger(config)
    crash_between(config, ledger, monkeypatch, fail=fail)
    assert ledger.journal.exists()
    assert ledgers.replay(ledger.journal) == 3
    assert [r[1] for r in rows_of(config.paths.results)] == ["0.png", "1.png", "2.png"]
    assert sorted(p.name for p in config.paths.done.iterdir()) == ["0.png", "1.png", "2.png"]
    assert claimed_files(ledger) == []
    assert not ledger.journal.exists()
    ledger.close()


@pytest.mark.parametrize("fail", ["before append", "torn append", "after one move"])
def test_a_commit_retried_after_a_fault_finishes_its_journal(
    config: Config, monkeypatch: pytest.MonkeyPatch, fail: str
) -> None:
    ledger = open_ledger(config)
    batch = crash_between(config, ledger, monkeypatch, fail=fail)
    recorded = ledger.commit(batch, model="fake/1")
    assert [r.file for r in recorded] == ["0.png", "1.png", "2.png"]
    assert [r[1] for r in rows_of(config.paths.results)] == ["0.png", "1.png", "2.png"]
    assert sorted(p.name for p in config.paths.done.iterdir()) == ["0.png", "1.png", "2.png"]
    assert not ledger.journal.exists()
    ledger.close()
    assert not ledger.workspace.folder.exists(), "the claim folders went with their files"


def test_replay_after_the_link_but_before_the_unlink(config: Config) -> None:
    ledger = open_ledger(config)
    item = processed(ledger, config.paths.inbox, "a.png", Reading(status=Status.OK, prediction="1", confidence=0.9))
    destination = config.paths.done / "a.png"
    data = record.encode(
        [record.Row("t", "a.png", "ok", "1", "0.9", "", "m", "abc", "1", "inbox/done/a.png", "", "1", "")]
    )
    with record.locked(config.paths.results) as results:
        offset = results.append(data)
    sheet = {"path": str(config.paths.results), "header": list(record.COLUMNS), "offset": offset, "rows": data.decode()}
    ledger.journal.write_text(json.dumps({"sheets": [sheet], "moves": [[str(item.claim.path), str(destination)]]}))
    os.link(item.claim.path, destination)
    ledgers.replay(ledger.journal)
    assert not item.claim.path.exists() and destination.read_bytes() == b"a.png"
    assert len(rows_of(config.paths.results)) == 1
    ledger.close()


def test_a_journal_of_the_version_before_sheets_is_replayed(config: Config) -> None:
    ledger = open_ledger(config)
    item = processed(ledger, config.paths.inbox, "a.png", Reading(status=Status.OK, prediction="1", confidence=0.9))
    destination = config.paths.done / "a.png"
    # That version wrote one row per file, without the page and field columns.
    data = record.encode([("t", "a.png", "ok", "1", "0.9", "", "m", "abc", "1", "inbox/done/a.png", "")])
    with record.locked(config.paths.results, header=record.COLUMNS_BEFORE_PAGES) as results:
        offset = results.size
    old = {"results": str(config.paths.results), "offset": offset, "rows": data.decode()}
    ledger.journal.write_text(json.dumps({**old, "moves": [[str(item.claim.path), str(destination)]]}))
    assert ledgers.replay(ledger.journal) == 1
    assert destination.read_bytes() == b"a.png"
    assert config.paths.results.read_bytes() == record.encode([record.COLUMNS_BEFORE_PAGES]) + data
    ledger.close()


def test_replay_into_a_rotated_results_file_appends_without_padding(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = open_ledger(config)
    ledger.commit([processed(ledger, config.paths.inbox, "first.png", Reading(status=Status.NO_DIGIT))], model="fake/1")
    ledger.new_batch()
    crash_between(config, ledger, monkeypatch, fail="before append")
    config.paths.results.rename(config.root / "results.old.csv")
    ledgers.replay(ledger.journal)
    text = config.paths.results.read_bytes()
    assert b"\0" not in text and text.startswith(record.HEADER)
    assert [r[1] for r in rows_of(config.paths.results)] == ["0.png", "1.png", "2.png"]
    ledger.close()


def test_replay_gives_a_destination_taken_meanwhile_the_next_free_name(config: Config) -> None:
    ledger = open_ledger(config)
    item = processed(ledger, config.paths.inbox, "a.png", Reading(status=Status.OK, prediction="1", confidence=0.9))
    (config.paths.done / "a.png").write_bytes(b"another daemon's a.png")
    (config.paths.done / "a-1.png").write_bytes(b"and its a-1.png")
    journal = {"sheets": [], "moves": [[os.path.relpath(item.claim.path, ledger.journal.parent), "../../done/a.png"]]}
    ledger.journal.write_text(json.dumps(journal))
    with capture_logs() as logs:
        ledgers.replay(ledger.journal)
    assert (config.paths.done / "a-2.png").read_bytes() == b"a.png"
    assert (config.paths.done / "a.png").read_bytes() == b"another daemon's a.png"
    (taken,) = [entry for entry in logs if entry["event"] == "destination_taken"]
    assert taken["used"] == str(config.paths.done / "a-2.png")
    ledger.close()


def test_a_move_that_answers_enoent_after_moving_the_file_is_finished_and_synced(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What NFS does when an unlink's reply is lost: the retried request finds the name gone.
    ledger = open_ledger(config)
    batch = [processed(ledger, config.paths.inbox, "a.png", Reading(status=Status.OK, prediction="7", confidence=0.99))]
    unlink = os.unlink
    synced: list[Path] = []

    def retried(path: os.PathLike[str]) -> None:
        unlink(path)
        if Path(path).suffix == ".png":
            raise FileNotFoundError(2, "No such file or directory", os.fspath(path))

    monkeypatch.setattr(ledgers.place.os, "unlink", retried)
    monkeypatch.setattr(ledgers.place, "sync_folders", lambda folders: synced.extend(folders))
    (recorded,) = ledger.commit(batch, model="m/1")
    monkeypatch.undo()
    assert recorded.moved_to == "inbox/done/a.png"
    assert (config.paths.done / "a.png").read_bytes() == b"a.png"
    assert config.paths.done in synced
    ledger.close()
