from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from watcher.ledger import claim, commit, record
from watcher.service.config import Config
from watcher.recognise import Reading


def processed(workspace: claim.Workspace, inbox: Path, name: str, reading: Reading) -> commit.Processed:
    (inbox / name).write_bytes(name.encode())
    taken = workspace.claim(name, ready_at=0.0)
    assert taken is not None
    return commit.Processed(claim=taken, sha256="abc", reading=reading)


def rows_of(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))[1:]


def fixed_now() -> datetime:
    return datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_commit_writes_rows_then_places_files(config: Config) -> None:
    workspace = claim.Workspace(config.work, inbox=config.paths.inbox)
    batch = [
        processed(workspace, config.paths.inbox, "a.png", Reading(status="ok", prediction="7", confidence="0.9900")),
        processed(workspace, config.paths.inbox, "b.png", Reading(status="error", detail="not a PNG image")),
    ]
    (config.paths.done / "a.png").write_bytes(b"an older a.png")
    rows = commit.commit(batch, config=config, workspace=workspace, model="fake/1", now=fixed_now, clock=lambda: 0.25)
    assert [r.moved_to for r in rows] == ["inbox/done/a-1.png", "inbox/error/b.png"]
    assert (config.paths.done / "a.png").read_bytes() == b"an older a.png"
    assert (config.paths.done / "a-1.png").read_bytes() == b"a.png"
    assert rows_of(config.paths.results) == [
        ["2026-01-01T00:00:00.000Z", "a.png", "ok", "7", "0.9900", "", "fake/1", "abc", "250.0", "inbox/done/a-1.png", ""],
        ["2026-01-01T00:00:00.000Z", "b.png", "error", "", "", "", "fake/1", "abc", "250.0", "inbox/error/b.png", "not a PNG image"],
    ]
    assert not workspace.journal.exists()
    workspace.close()
    assert not workspace.folder.exists()


def crash_between(config: Config, workspace: claim.Workspace, monkeypatch: pytest.MonkeyPatch, *, fail: str) -> list[commit.Processed]:
    """Commit a batch, dying at `fail` as a kill -9 would (the journal stays)."""
    batch = [processed(workspace, config.paths.inbox, f"{n}.png", Reading(status="ok", prediction=str(n), confidence="0.9")) for n in range(3)]

    class Killed(BaseException):
        pass

    calls = {"n": 0}
    real_move = commit.place.move

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
        monkeypatch.setattr(commit.place, "move", dying_move)
    else:
        original_append = record.LockedResults.append

        def append(self: record.LockedResults, data: bytes) -> int:
            return original_append(self, data) if data == record.HEADER else dying_append(self, data)

        monkeypatch.setattr(record.LockedResults, "append", append)
    with pytest.raises(Killed):
        commit.commit(batch, config=config, workspace=workspace, model="fake/1", now=fixed_now, clock=lambda: 1.0)
    monkeypatch.undo()
    return batch


@pytest.mark.parametrize("fail", ["before append", "torn append", "after one move"])
def test_replay_finishes_a_batch_exactly_once(config: Config, monkeypatch: pytest.MonkeyPatch, fail: str) -> None:
    workspace = claim.Workspace(config.work, inbox=config.paths.inbox)
    crash_between(config, workspace, monkeypatch, fail=fail)
    assert workspace.journal.exists()
    rows = commit.replay(workspace.journal)
    assert [r.file for r in rows] == ["0.png", "1.png", "2.png"]
    assert [r[1] for r in rows_of(config.paths.results)] == ["0.png", "1.png", "2.png"]
    assert sorted(p.name for p in config.paths.done.iterdir()) == ["0.png", "1.png", "2.png"]
    assert claim.claimed_files(workspace.folder) == []
    assert not workspace.journal.exists()
    workspace.close()


def test_replay_after_the_link_but_before_the_unlink(config: Config) -> None:
    workspace = claim.Workspace(config.work, inbox=config.paths.inbox)
    item = processed(workspace, config.paths.inbox, "a.png", Reading(status="ok", prediction="1", confidence="0.9"))
    destination = config.paths.done / "a.png"
    data = record.encode([record.Row("t", "a.png", "ok", "1", "0.9", "", "m", "abc", "1", "inbox/done/a.png", "")])
    with record.locked(config.paths.results) as results:
        offset = results.append(data)
    workspace.journal.write_text(json.dumps({"results": str(config.paths.results), "offset": offset, "rows": data.decode(), "moves": [[str(item.claim.path), str(destination)]]}))
    os.link(item.claim.path, destination)
    commit.replay(workspace.journal)
    assert not item.claim.path.exists() and destination.read_bytes() == b"a.png"
    assert len(rows_of(config.paths.results)) == 1
    workspace.close()
