"""The review queue and its decisions through the ledger: one row and one move each, exactly once."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.daemons import DaemonProcess, write_e2e_config
from tests.helpers import digit_png, drop, mnist_scans, result_rows, wait_for
from tests.reviewing import kill_while_deciding, open_desk, review_config, send_to_review
from watcher.ledger import history
from watcher.ledger.lease import LEASE_NAME
from watcher.ledger.record import COLUMNS_BEFORE_PAGES
from watcher.review.decide import AlreadyDecided, Desk, NothingToUndo
from watcher.review.queue import Queue
from watcher.service import config as configuration
from watcher.service.config import Config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return review_config(tmp_path)


@pytest.fixture
def desk(config: Config) -> Desk:
    opened = open_desk(config)
    yield opened  # type: ignore[misc]
    opened.close()


def decisions(config: Config) -> list[dict[str, str]]:
    return [row for row in result_rows(config.paths.results) if row["model"].startswith("person:")]


def review_files(config: Config) -> list[str]:
    assert config.paths.review is not None
    return sorted(name for name in os.listdir(config.paths.review) if not name.startswith("."))


def test_the_queue_is_the_files_in_review_joined_to_their_latest_row_by_moved_to(config: Config, desk: Desk) -> None:
    send_to_review(config, "a.png", digit_png(rows=1), prediction="1")
    send_to_review(config, "scan.pdf.page-3.png", digit_png(rows=4), prediction="4", file="scan.pdf", page=3)
    assert config.paths.review is not None
    (config.paths.review / "no-row.png").write_bytes(digit_png())
    (config.paths.review / "link.png").symlink_to(config.paths.review / "a.png")
    items = desk.queue.items()
    assert [(item.name, item.row.file, item.row.page, item.row.prediction) for item in items] == [
        ("a.png", "a.png", "1", "1"),
        ("scan.pdf.page-3.png", "scan.pdf", "3", "4"),
    ]
    assert items[0].why(0.9) == "confidence 0.5500 below 0.9"
    assert all("png" not in item.id for item in items)


def test_accepting_writes_a_verified_row_and_moves_the_item_to_done(config: Config, desk: Desk) -> None:
    send_to_review(config, "scan.pdf.page-3.png", digit_png(), prediction="7", file="scan.pdf", page=3)
    (item,) = desk.queue.items()
    outcome = desk.decide(item.id, "")
    (row,) = decisions(config)
    assert row["file"] == "scan.pdf"
    assert row["page"] == "3"
    assert (row["status"], row["prediction"], row["model"]) == ("verified", "7", "person:ann")
    assert row["sha256"] == item.row.sha256
    assert row["moved_to"] == outcome.moved_to == "inbox/done/scan.pdf.page-3.png"
    assert (config.paths.done / "scan.pdf.page-3.png").read_bytes() == digit_png()
    assert review_files(config) == []
    assert desk.queue.items() == []


def test_a_value_typed_is_a_corrected_row_with_that_prediction(config: Config, desk: Desk) -> None:
    send_to_review(config, "a.png", digit_png(), prediction="7")
    (item,) = desk.queue.items()
    desk.decide(item.id, "1")
    (row,) = decisions(config)
    assert (row["status"], row["prediction"], row["detail"]) == ("corrected", "1", "read as 7")


def test_a_name_a_spreadsheet_would_run_is_guarded_once_in_the_decision_row(config: Config, desk: Desk) -> None:
    send_to_review(config, "=1+1.png", digit_png())
    (item,) = desk.queue.items()
    desk.decide(item.id, "")
    assert [row["file"] for row in result_rows(config.paths.results)] == ["'=1+1.png", "'=1+1.png"]


def test_two_reviewers_deciding_one_item_at_once_one_wins_the_other_is_told(config: Config) -> None:
    send_to_review(config, "a.png", digit_png())
    desks = [open_desk(config, reviewer="ann"), open_desk(config, reviewer="bob")]
    (item_id,) = {item.id for desk in desks for item in desk.queue.items()}
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(desk: Desk, value: str) -> None:
        start.wait()
        try:
            outcomes.append(desk.decide(item_id, value).status)
        except AlreadyDecided:
            outcomes.append("already decided")

    threads = [threading.Thread(target=decide, args=(desk, value)) for desk, value in zip(desks, "71", strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for desk in desks:
        desk.close()
    assert sorted(outcomes) in (["already decided", "verified"], ["already decided", "corrected"])
    assert len(decisions(config)) == 1
    assert os.listdir(config.paths.done) == ["a.png"]


@pytest.mark.parametrize(("stage", "decided"), [("claimed", False), ("appended", True)])
def test_a_reviewer_killed_mid_decision_is_finished_or_undone_on_the_next_start(
    config: Config, stage: str, decided: bool
) -> None:
    send_to_review(config, "a.png", digit_png())
    kill_while_deciding(config.source, stage)
    assert review_files(config) == []  # the item is in the dead reviewer's claim
    desk = open_desk(config)
    try:
        assert len(decisions(config)) == (1 if decided else 0)
        assert review_files(config) == ([] if decided else ["a.png"])
        assert os.listdir(config.paths.done) == (["a.png"] if decided else [])
        assert len(desk.queue.items()) == (0 if decided else 1)
    finally:
        desk.close()
    assert config.paths.review is not None
    assert os.listdir(config.paths.review / ".digit-watcher") == []


def test_a_station_that_dies_while_another_runs_has_its_claim_given_back_by_it(config: Config) -> None:
    send_to_review(config, "a.png", digit_png())
    desk = open_desk(config, recover_every_s=0.2)
    try:
        kill_while_deciding(config.source, "claimed")
        wait_for(lambda: review_files(config) == ["a.png"], timeout=10, what="the dead station's claim given back")
        (item,) = desk.queue.items()
        assert desk.decide(item.id, "").status == "verified"
    finally:
        desk.close()
    assert len(decisions(config)) == 1


def test_an_open_station_renews_its_lease_for_stations_on_other_hosts(config: Config, desk: Desk) -> None:
    lease = desk.deciding.workspace.folder / LEASE_NAME
    first = lease.read_bytes()
    wait_for(lambda: lease.read_bytes() != first, timeout=10, what="the lease renewed")


def test_undo_is_a_new_row_sending_the_item_back_to_review_with_its_reading(config: Config, desk: Desk) -> None:
    send_to_review(config, "a.png", digit_png(), prediction="7")
    (item,) = desk.queue.items()
    desk.decide(item.id, "1")
    outcome = desk.undo()
    reading, _, undone = result_rows(config.paths.results)
    assert undone["status"] == "low_confidence"
    assert undone["detail"] == "undone by person:ann"
    for column in ("file", "prediction", "confidence", "top3", "model", "sha256", "page"):
        assert undone[column] == reading[column], column
    assert undone["moved_to"] == outcome.moved_to == "inbox/review/a.png"
    (back,) = desk.queue.items()
    assert back.id != item.id
    desk.decide(back.id, "")
    assert [row["status"] for row in decisions(config)] == ["corrected", "verified"]


def test_undo_goes_back_one_decision_at_a_time_and_never_takes_another_reviewers(config: Config, desk: Desk) -> None:
    for name in ("a.png", "b.png", "c.png"):
        send_to_review(config, name, name.encode())
    other = open_desk(config, reviewer="bob")
    try:
        by_name = {item.name: item.id for item in desk.queue.items()}
        desk.decide(by_name["a.png"], "")
        desk.decide(by_name["b.png"], "")
        other.decide(by_name["c.png"], "")
        assert desk.undo().name == "b.png"
        assert desk.undo().name == "a.png"
        with pytest.raises(NothingToUndo):
            desk.undo()
    finally:
        other.close()
    assert review_files(config) == ["a.png", "b.png"]


def test_an_id_not_waiting_is_already_decided(config: Config, desk: Desk) -> None:
    with pytest.raises(AlreadyDecided):
        desk.decide("0" * 24, "")


def test_results_appended_meanwhile_are_read_incrementally_and_a_new_file_read_afresh(config: Config) -> None:
    assert config.paths.review is not None
    queue = Queue(review=config.paths.review, results=config.paths.results, root=config.root, secret=b"k")
    send_to_review(config, "a.png", b"a")
    assert [item.name for item in queue.items()] == ["a.png"]
    send_to_review(config, "b.png", b"b")
    assert [item.name for item in queue.items()] == ["a.png", "b.png"]
    os.rename(config.paths.results, config.root / "results-2026-11.csv")  # rotated by hand: not followed
    assert queue.items() == []
    # Set aside by an upgrade, which starts a new file at once: both are read, the set-aside one first.
    os.rename(config.root / "results-2026-11.csv", config.root / "results.old.csv")
    send_to_review(config, "c.png", b"c")
    assert [item.name for item in queue.items()] == ["a.png", "b.png", "c.png"]


def test_the_results_file_is_read_in_chunks_cut_only_between_rows(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Names may hold quotes and line breaks: a chunk must never end inside one.
    names = ['a"\r\nb.png', "c,\r\nd.png", 'e"".png', "f\n.png", "plain.png"]
    for name in names:
        send_to_review(config, name, name.encode())
    monkeypatch.setattr(history, "READ_CHUNK", 200)
    assert config.paths.review is not None
    queue = Queue(review=config.paths.review, results=config.paths.results, root=config.root, secret=b"k")
    assert sorted(item.name for item in queue.items()) == sorted(names)
    assert {item.row.file for item in queue.items()} == set(names)


def test_a_torn_last_line_is_not_read_and_another_header_holds_no_items(config: Config, desk: Desk) -> None:
    send_to_review(config, "a.png", b"a")
    with open(config.paths.results, "ab") as results:
        results.write(b"2026-12-02T00:00:00.000Z,b.png,low_confidence,7")
    assert [item.name for item in desk.queue.items()] == ["a.png"]
    config.paths.results.write_bytes(b"name,value\r\na.png,1\r\n")
    assert desk.queue.items() == []


def test_what_a_version_before_pages_sent_to_review_still_waits_after_the_upgrade(config: Config) -> None:
    # Its results file has the header without `page` and `field`; the first decision sets it aside.
    old_header = ",".join(COLUMNS_BEFORE_PAGES)
    reading = "2026-11-20T10:00:00.000Z,a.png,low_confidence,7,0.5500,7:0.5500,mnist-cnn/3,abc,3.0,inbox/review/a.png,"
    config.paths.results.write_bytes(f"{old_header}\r\n{reading}\r\n".encode())
    assert config.paths.review is not None
    (config.paths.review / "a.png").write_bytes(digit_png())
    desk = open_desk(config)
    try:
        (item,) = desk.queue.items()
        assert (item.name, item.row.page, item.row.field, item.row.prediction) == ("a.png", "1", "", "7")
        desk.decide(item.id, "")
        assert desk.queue.items() == []
    finally:
        desk.close()
    assert (config.paths.results.parent / "results.old.csv").exists()
    (row,) = decisions(config)
    assert (row["file"], row["status"], row["moved_to"]) == ("a.png", "verified", "inbox/done/a.png")


def test_a_reading_of_nothing_must_be_typed(config: Config, desk: Desk) -> None:
    send_to_review(config, "a.png", b"a", prediction="")
    (item,) = desk.queue.items()
    with pytest.raises(ValueError, match="type the value"):
        desk.decide(item.id, "")
    assert review_files(config) == ["a.png"]
    assert desk.decide(item.id, "5").status == "corrected"


@pytest.mark.slow
def test_decisions_while_the_daemon_writes_each_scan_one_reading_and_at_most_one_decision(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    config = configuration.load(
        write_e2e_config(tmp_path, extra="paths:\n  review: inbox/review\nreview:\n  threshold: 1.0\n")
    )
    configuration.prepare_folders(config)
    daemon = DaemonProcess(config.source)
    desk = open_desk(config)
    names = [f"scan-{number:02d}.png" for number in range(60)]
    try:
        daemon.wait_started()
        for name, (_, data) in zip(names, mnist_scans(60), strict=True):
            drop(config.paths.inbox, name, data)

        def all_placed() -> bool:
            # Decide whatever waits, as a person keeping up with the daemon would.
            for item in desk.queue.items():
                desk.decide(item.id, "")
            return sorted(os.listdir(config.paths.done)) == names

        wait_for(all_placed, timeout=60, what="every scan in done/, by the daemon or by a decision")
    finally:
        desk.close()
        assert daemon.terminate() == 0
    rows = result_rows(config.paths.results)
    readings = [row["file"] for row in rows if not row["model"].startswith("person:")]
    decided = [row["file"] for row in decisions(config)]
    assert sorted(readings) == names
    assert len(decided) == len(set(decided)) > 0
    assert set(decided) == {row["file"] for row in rows if row["status"] == "low_confidence"}
    assert review_files(config) == []
