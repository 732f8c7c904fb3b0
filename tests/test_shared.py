"""Sharing one inbox across hosts: daemons on separate GlusterFS client mounts of one volume (tests/gluster.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from watchdog.observers.polling import PollingObserver

from tests.conftest import write_config
from tests.gluster import Shared
from tests.test_commit import open_ledger, processed, rows_of
from watcher.intake.observe import Inbox, start_observer, stop_observer
from watcher.ledger import ledger as ledgers
from watcher.ledger.ledger import Ledger, Processed
from watcher.recognise import Reading
from watcher.service import config as configuration
from watcher.vocabulary import Status

pytestmark = pytest.mark.gluster


def test_auto_polls_on_gluster_and_sees_another_clients_file(shared: Shared) -> None:
    here, elsewhere = shared.through[0], shared.through[1]
    inbox = Inbox(here, extensions=(".png",), settle_s=0.2)
    with capture_logs() as logs:
        observer = start_observer(inbox, polling="auto")
    try:
        assert isinstance(observer, PollingObserver)
        (elsewhere / "a.png.part").write_bytes(b"x")
        os.rename(elsewhere / "a.png.part", elsewhere / "a.png")
        taken = []
        for _ in range(100):
            taken += inbox.take(10, timeout=0.1)
            if taken:
                break
        assert [a.name for a in taken] == ["a.png"]
    finally:
        stop_observer(observer)
    (chosen,) = [entry for entry in logs if entry["event"] == "polling_chosen"]
    assert chosen["filesystem"] == "FUSE"


def test_a_journal_replayed_through_another_client_writes_its_rows_once(
    shared: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = []
    for through in shared.through[:2]:
        write_config(through, "model:\n  path: models/fake\n")
        loaded = configuration.load(through / "config.yaml")
        configuration.prepare_folders(loaded)
        configs.append(loaded)
    host_a, host_b = (open_ledger(config) for config in configs)
    inbox_a, inbox_b = (config.paths.inbox for config in configs)

    def batch(ledger: Ledger, inbox: Path, first: int) -> list[Processed]:
        ledger.new_batch()
        reading = Reading(status=Status.OK, prediction="1", confidence=0.9)
        return [processed(ledger, inbox, f"{n}.png", reading) for n in range(first, first + 3)]

    # Each host appends in turn, so each client's view of results.csv lags the other's last batch.
    host_b.commit(batch(host_b, inbox_b, 0), model="fake/1")
    host_a.commit(batch(host_a, inbox_a, 3), model="fake/1")
    host_b.commit(batch(host_b, inbox_b, 6), model="fake/1")

    class Killed(BaseException):
        pass

    def killed(moves: object) -> None:
        raise Killed

    # Host A dies with its rows appended and its files not yet moved: the journal stays.
    monkeypatch.setattr(ledgers, "_finish_moves", killed)
    with pytest.raises(Killed):
        host_a.commit(batch(host_a, inbox_a, 9), model="fake/1")
    monkeypatch.undo()
    os.close(host_a.workspace._lock_fd)
    assert host_b.recover() == []
    host_b.close()

    rows = rows_of(shared.on_brick / "results.csv")
    assert [row[1] for row in rows] == [f"{n}.png" for n in range(12)]
    assert sorted(p.name for p in (shared.on_brick / "inbox" / "done").iterdir()) == sorted(
        f"{n}.png" for n in range(12)
    )
