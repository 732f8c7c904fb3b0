"""The hook's outbox: each commit's rows as one batch, there exactly when its rows are in the CSVs, delivered once."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from tests.helpers import rows_by_id
from tests.reviewing import daemon_ledger
from tests.test_commit import crash_between, fixed_now, processed
from watcher.ledger import ledger as ledgers
from watcher.ledger import outbox
from watcher.ledger.ledger import Folders, Ledger
from watcher.ledger.record import Reading, Sheet
from watcher.service.config import Config
from watcher.vocabulary import Status


def open_ledger(config: Config) -> Ledger:
    return daemon_ledger(config, clock=lambda: 0.25, now=fixed_now, outbox=config.work / outbox.OUTBOX)


def batches(config: Config) -> list[Path]:
    return sorted((config.work / outbox.OUTBOX).iterdir())


def sent(batch: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = json.loads(batch.read_bytes())["rows"]
    return rows


def by_id(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["id"]: {column: value for column, value in row.items() if column != "id"} for row in rows}


def test_a_commit_puts_its_rows_in_the_outbox_as_one_batch_with_the_ids_of_the_csv_rows(config: Config) -> None:
    ledger = open_ledger(config)
    seven = Reading(status=Status.OK, prediction="7", confidence=0.99)
    batch = [
        processed(ledger, config.paths.inbox, 'a,\n"b".png', seven),
        processed(ledger, config.paths.inbox, "c.png", Reading(status=Status.ERROR, detail="not a PNG image")),
    ]
    ledger.commit(batch, model="fake/1")
    ledger.new_batch()
    ledger.commit([processed(ledger, config.paths.inbox, "d.png", seven)], model="fake/1")
    first, second = batches(config)
    assert (outbox.rows_in(first.name), outbox.rows_in(second.name)) == (2, 1)
    delivered = sent(first) + sent(second)
    assert by_id(delivered) == rows_by_id(config.paths.results, "results")
    assert [row["file"] for row in delivered] == ['a,\n"b".png', "c.png", "d.png"], "in the order written"
    ledger.close()


def test_a_form_row_goes_in_the_same_batch_as_its_results_rows_named_by_its_sheet(config: Config) -> None:
    ledger = open_ledger(config)
    sheet = Sheet(config.paths.results.parent / "forms" / "meter.csv", ("file", "page", "reading"))
    sheet.path.parent.mkdir()
    item = processed(ledger, config.paths.inbox, "a.png", Reading(status=Status.OK, prediction="7", confidence=0.9))
    ledger.commit([dataclasses.replace(item, sheet_rows=[(sheet, ["a.png", "1", "=7"])])], model="fake/1")
    (batch,) = batches(config)
    rows = sent(batch)
    assert [row["csv"] for row in rows] == ["forms/meter", "results"]
    assert rows[0]["reading"] == "'=7", "values as written to the CSV"
    assert by_id(rows) == rows_by_id(sheet.path, "forms/meter") | rows_by_id(config.paths.results, "results")
    ledger.close()


def test_without_hooks_a_commit_writes_no_batch(config: Config) -> None:
    ledger = ledgers.Ledger(
        results=config.paths.results,
        folders=Folders(done=config.paths.done, error=config.paths.error),
        inbox=config.paths.inbox,
        work=config.work,
        shown_from=config.root,
        clock=lambda: 0.25,
        now=fixed_now,
    )
    ledger.commit([processed(ledger, config.paths.inbox, "a.png", Reading(status=Status.NO_DIGIT))], model="f/1")
    assert not (config.work / outbox.OUTBOX).exists()
    ledger.close()


@pytest.mark.parametrize("fail", ["before append", "torn append", "after one move"])
def test_a_replayed_journal_puts_the_batch_in_the_outbox_once(
    config: Config, monkeypatch: pytest.MonkeyPatch, fail: str
) -> None:
    ledger = open_ledger(config)
    crash_between(config, ledger, monkeypatch, fail=fail)
    ledger.close()  # as a kill would: its lock let go, its workspace left
    survivor = open_ledger(config)
    survivor.start()
    (batch,) = batches(config)
    assert {row["id"] for row in sent(batch)} == set(rows_by_id(config.paths.results, "results"))
    assert len(sent(batch)) == 3
    survivor.close()


def test_a_commit_killed_before_its_journal_leaves_no_batch_and_its_files_are_read_again(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Killed(BaseException):
        pass

    def dying(*args: object, **kwargs: object) -> None:
        raise Killed

    ledger = open_ledger(config)
    item = processed(ledger, config.paths.inbox, "a.png", Reading(status=Status.NO_DIGIT))
    monkeypatch.setattr(ledgers, "_write_journal", dying)
    with pytest.raises(Killed):
        ledger.commit([item], model="f/1")
    monkeypatch.undo()
    ledger.close()
    survivor = open_ledger(config)
    (taken,) = survivor.start()
    assert taken.name == "a.png"
    assert batches(config) == []
    survivor.close()


def put(config: Config, *names: str) -> None:
    (config.work / outbox.OUTBOX).mkdir(parents=True, exist_ok=True)
    for name in names:
        (config.work / outbox.OUTBOX / name).write_bytes(json.dumps({"rows": [{"id": name}]}).encode())


def test_batches_are_claimed_in_order_and_a_delivered_one_is_gone(config: Config) -> None:
    put(config, "2026-b.1.json", "2026-a.2.json")
    deliveries = outbox.Deliveries(config.work, clock=time.monotonic)
    assert deliveries.waiting() == ["2026-a.2.json", "2026-b.1.json"]
    taken = deliveries.claim("2026-a.2.json")
    assert taken is not None and sent(taken.path) == [{"id": "2026-a.2.json"}]
    assert deliveries.waiting() == ["2026-b.1.json"]
    deliveries.delivered(taken)
    assert not taken.path.exists()
    back = deliveries.claim("2026-b.1.json")
    assert back is not None
    deliveries.give_back(back)
    assert deliveries.waiting() == ["2026-b.1.json"]
    deliveries.close()
    assert list((config.work / outbox.DELIVERING).iterdir()) == [], "nothing in hand: the workspace is gone"


def test_of_two_daemons_one_alone_claims_a_batch(config: Config) -> None:
    put(config, "a.1.json")
    first = outbox.Deliveries(config.work, clock=time.monotonic)
    second = outbox.Deliveries(config.work, clock=time.monotonic)
    assert first.claim("a.1.json") is not None
    assert second.claim("a.1.json") is None
    assert second.recover() == [], "a live daemon's batch is not taken over"
    first.close()
    second.close()


def test_a_dead_daemons_batch_is_taken_over_whole_to_be_delivered_again(config: Config) -> None:
    put(config, "a.1.json")
    dead = outbox.Deliveries(config.work, clock=time.monotonic)
    taken = dead.claim("a.1.json")
    assert taken is not None
    content = taken.path.read_bytes()
    dead.close()  # as a kill would: its lock let go, the batch in hand left in its workspace
    survivor = outbox.Deliveries(config.work, clock=time.monotonic)
    (again,) = survivor.recover()
    assert again.name == "a.1.json" and again.path.read_bytes() == content
    survivor.delivered(again)
    survivor.close()
    assert list((config.work / outbox.DELIVERING).iterdir()) == []


def test_a_batch_name_orders_commits_and_counts_rows() -> None:
    early = outbox.batch_name(fixed_now(), workspace="host.lan-1-ab", number=9, rows=64)
    later = outbox.batch_name(fixed_now().replace(second=1), workspace="host.lan-1-ab", number=10, rows=1)
    assert early < later
    assert (outbox.rows_in(early), outbox.rows_in(later)) == (64, 1)


def test_with_the_inbox_away_no_delivery_workspace_is_made_in_its_place(config: Config) -> None:
    away = config.paths.inbox.with_name("inbox-away")
    config.paths.inbox.rename(away)
    with pytest.raises(FileNotFoundError):
        outbox.Deliveries(config.work, clock=time.monotonic)
    assert not config.paths.inbox.exists()
