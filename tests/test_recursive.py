"""`watch.recursive`: files in the inbox's subfolders, named by their path, keeping it wherever they go."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest
from watchdog.events import DirCreatedEvent, FileClosedEvent, FileCreatedEvent

from tests.daemons import DaemonProcess, run_once, write_e2e_config
from tests.helpers import drop, mnist_scans, result_rows, wait_for
from tests.reviewing import open_desk, review_config, send_to_review
from tests.test_crash import children
from watcher.intake.observe import Inbox, InboxEventHandler, Scope, start_observer, stop_observer
from watcher.ledger import claim, place
from watcher.ledger.history import Results
from watcher.ledger.record import HEADER, Row, encode


def scope(folder: Path, *, recursive: bool = True) -> Scope:
    return Scope.of(folder, extensions=(".png",), recursive=recursive, skipped=[folder / "done", folder / "out/error"])


def test_the_scope_is_every_subfolder_but_hidden_ones_and_the_destinations(tmp_path: Path) -> None:
    for name in ("a.png", "x/b.png", "x/y/c.png", "x/notes.txt", ".hidden/d.png", "x/.w/e.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    for name in ("done/f.png", "done/x/g.png", "out/error/h.png", "out/i.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "j.png").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere", tmp_path / "linked")  # a link to a folder is never followed
    assert sorted(scope(tmp_path).names()) == ["a.png", "elsewhere/j.png", "out/i.png", "x/b.png", "x/y/c.png"]
    assert scope(tmp_path, recursive=False).names() == ["a.png"]
    assert scope(tmp_path).name_of(str(tmp_path / "x/y/c.png")) == "x/y/c.png"
    assert scope(tmp_path).name_of(str(tmp_path / "done/x/g.png")) is None
    assert scope(tmp_path).name_of(str(tmp_path.parent / "k.png")) is None
    assert scope(tmp_path, recursive=False).name_of(str(tmp_path / "x/b.png")) is None


def test_a_folder_made_or_moved_in_is_looked_into(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path, extensions=(".png",), settle_s=0.0, recursive=True, skipped=[tmp_path / "done"])
    handler = InboxEventHandler(inbox)
    (tmp_path / "dept" / "a").mkdir(parents=True)
    (tmp_path / "dept" / "a" / "1.png").write_bytes(b"x")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "2.png").write_bytes(b"x")
    handler.dispatch(DirCreatedEvent(str(tmp_path / "dept")))
    handler.dispatch(DirCreatedEvent(str(tmp_path / "done")))
    handler.dispatch(FileClosedEvent(str(tmp_path / "done" / "2.png")))
    handler.dispatch(FileCreatedEvent(str(tmp_path / ".digit-watcher" / "1" / "3.png")))
    assert [arrival.name for arrival in inbox.take(10, timeout=1)] == ["dept/a/1.png"]


@pytest.mark.parametrize("polling", [False, True])
def test_the_real_observer_sees_files_in_folders_made_after_it_started(tmp_path: Path, polling: bool) -> None:
    inbox_folder = tmp_path / "inbox"
    (inbox_folder / "done").mkdir(parents=True)
    inbox = Inbox(inbox_folder, extensions=(".png",), settle_s=0.2, recursive=True, skipped=[inbox_folder / "done"])
    observer = start_observer(inbox, polling=polling)
    try:
        (inbox_folder / "scanner1").mkdir()
        drop(inbox_folder / "scanner1", "a.png", b"x")
        (tmp_path / "batch" / "deep").mkdir(parents=True)
        (tmp_path / "batch" / "deep" / "b.png").write_bytes(b"x")
        os.rename(tmp_path / "batch", inbox_folder / "scanner2")  # a whole folder moved in at once
        drop(inbox_folder / "done", "c.png", b"x")
        taken: set[str] = set()
        deadline = time.monotonic() + 10
        while len(taken) < 2 and time.monotonic() < deadline:
            taken |= {arrival.name for arrival in inbox.take(10, timeout=0.1)}
        time.sleep(0.5)
        taken |= {arrival.name for arrival in inbox.take(10, timeout=0)}
        assert taken == {"scanner1/a.png", "scanner2/deep/b.png"}
    finally:
        stop_observer(observer)


def test_a_claim_from_a_subfolder_keeps_it_and_is_taken_over_whole(tmp_path: Path) -> None:
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "x" / "y" / "a.png").write_bytes(b"1")
    (tmp_path / "a.png").write_bytes(b"2")
    workspace = claim.Workspace(tmp_path / ".digit-watcher", inbox=tmp_path)
    nested = workspace.claim("x/y/a.png", ready_at=1.0)
    top = workspace.claim("a.png", ready_at=1.0)
    assert nested is not None and top is not None and nested.folder == top.folder
    assert nested.path == nested.folder / "x" / "y" / "a.png" and nested.path.read_bytes() == b"1"
    assert workspace.claim("x/y/a.png", ready_at=1.0) is None
    assert sorted(os.listdir(nested.folder)) == ["a.png", "x"], "a claim that failed leaves no folder behind"
    other = claim.Workspace(tmp_path / ".digit-watcher", inbox=tmp_path)
    adopted = other.adopt(nested.folder, ready_at=2.0)
    assert sorted(taken.name for taken in adopted) == ["a.png", "x/y/a.png"]
    for taken in adopted:
        taken.path.unlink()
        other.release(taken)
    assert not any(other.folder.glob("[0-9]*")), "the claim folder and its subfolders went with the last file"
    workspace.close()
    other.close()


def test_a_file_from_a_subfolder_is_placed_in_it_under_a_free_name(tmp_path: Path) -> None:
    done = tmp_path / "done"
    (done / "x").mkdir(parents=True)
    (done / "x" / "a.png").write_bytes(b"old")
    assert place.free_name(done, "x/a.png") == "x/a-1.png"
    assert place.free_name(done, "y/z/a.png") == "y/z/a.png"
    (tmp_path / "a.png").write_bytes(b"new")
    place.move(tmp_path / "a.png", done / "y" / "z" / "a.png")
    assert (done / "y" / "z" / "a.png").read_bytes() == b"new" and not (tmp_path / "a.png").exists()


@pytest.mark.slow
def test_the_daemon_reads_subfolders_and_keeps_them_under_done_and_review(tmp_path: Path) -> None:
    config = write_e2e_config(tmp_path, extra="paths:\n  review: inbox/review\nreview:\n  threshold: 0.9999\n")
    config.write_text(config.read_text(encoding="utf-8").replace("watch:\n", "watch:\n  recursive: true\n"))
    inbox = tmp_path / "inbox"
    scans = mnist_scans(6)
    for name, (_, data) in zip(
        ["top.png", "scanner1/a.png", "scanner1/2026/b.png", ".hidden/c.png", "done/d.png", "review/e.png"],
        scans,
        strict=True,
    ):
        (inbox / name).parent.mkdir(parents=True, exist_ok=True)
        (inbox / name).write_bytes(data)
    (inbox / "done" / "scanner1").mkdir()
    (inbox / "done" / "scanner1" / "a.png").write_bytes(b"an earlier file of that name")
    run_once(config)
    rows = {row["file"]: row for row in result_rows(tmp_path / "results.csv")}
    assert sorted(rows) == ["scanner1/2026/b.png", "scanner1/a.png", "top.png"]
    for name, row in rows.items():
        folder = "review" if row["status"] == "low_confidence" else "done"
        subfolder, own = os.path.split(name)
        expected = f"inbox/{folder}/{subfolder}/{own}".replace("//", "/")
        if name == "scanner1/a.png" and folder == "done":
            expected = "inbox/done/scanner1/a-1.png"
        assert row["moved_to"] == expected
        assert (tmp_path / row["moved_to"]).is_file()
    assert (inbox / "scanner1" / "2026").is_dir(), "the scanners' folders stay"
    assert (inbox / ".hidden" / "c.png").exists() and (inbox / "done" / "d.png").exists()
    assert (inbox / "review" / "e.png").exists()


def test_a_reviewer_decides_and_undoes_an_item_from_a_subfolder(tmp_path: Path) -> None:
    config = review_config(tmp_path, extra="watch:\n  recursive: true\n")
    (config.paths.inbox / "ward 3").mkdir()
    send_to_review(config, "ward 3/a.png", b"scan")
    assert (config.paths.inbox / "review" / "ward 3" / "a.png").exists()
    desk = open_desk(config)
    try:
        (item,) = desk.queue.items()
        assert item.name == "ward 3/a.png" and item.row.file == "ward 3/a.png"
        decided = desk.decide(item.id, "4")
        assert decided.moved_to == "inbox/done/ward 3/a.png"
        assert desk.queue.items() == []
        undone = desk.undo()
        assert undone.moved_to == "inbox/review/ward 3/a.png" and undone.name == "ward 3/a.png"
        (again,) = desk.queue.items()
        assert again.name == "ward 3/a.png"
    finally:
        desk.close()


@pytest.mark.slow
def test_exactly_once_across_kill_9_with_files_in_subfolders(tmp_path: Path) -> None:
    config = write_e2e_config(tmp_path, extra="batch:\n  max_size: 8\n")
    config.write_text(config.read_text(encoding="utf-8").replace("watch:\n", "watch:\n  recursive: true\n"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    scans = mnist_scans(10)
    names = [f"dept{number % 3}/{'deep/' * (number % 2)}scan-{number:03}.png" for number in range(120)]
    for number, name in enumerate(names):
        (inbox / name).parent.mkdir(parents=True, exist_ok=True)
        drop((inbox / name).parent, os.path.basename(name), scans[number % len(scans)][1])
    chance = random.Random(7)
    for _ in range(3):
        daemon = DaemonProcess(config)
        daemon.wait_started()
        time.sleep(chance.uniform(0.2, 1.0))
        workers = children(daemon.process.pid)
        daemon.kill()
        wait_for(lambda pids=workers: not any(Path(f"/proc/{pid}").exists() for pid in pids), what="workers gone")
    run_once(config)
    counted = Counter(row["file"] for row in result_rows(tmp_path / "results.csv"))
    assert sorted(counted) == sorted(names) and set(counted.values()) == {1}
    placed = sorted(str(path.relative_to(inbox / "done")) for path in (inbox / "done").rglob("*.png"))
    assert placed == sorted(names), "each file once in done/, in its own subfolder"
    assert [path for path in inbox.rglob("scan-*.png") if path.relative_to(inbox).parts[0] != "done"] == []
    assert list((inbox / ".digit-watcher").iterdir()) == []


def test_a_file_and_a_folder_of_one_name_are_claimed_apart(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"file")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.png").write_bytes(b"in b")
    workspace = claim.Workspace(tmp_path / ".digit-watcher", inbox=tmp_path)
    first = workspace.claim("a.png", ready_at=1.0)
    os.rename(tmp_path / "b", tmp_path / "a.png")  # now a folder named like the file just claimed
    second = workspace.claim("a.png/a.png", ready_at=1.0)
    assert first is not None and second is not None and first.folder != second.folder
    assert second.path.read_bytes() == b"in b"
    workspace.close()


def test_only_rows_in_the_review_folder_or_its_subfolders_wait(tmp_path: Path) -> None:
    def row(moved_to: str) -> Row:
        return Row(t, moved_to, "low_confidence", "7", "0.5", "7:0.5", "m/1", "0" * 64, "1", moved_to, "", "1", "")

    t = "2026-12-02T10:00:00.000Z"
    moved = ["inbox/review/a.png", "inbox/review/ward 3/b.png", "inbox/reviewed/c.png", "inbox/done/d.png"]
    (tmp_path / "results.csv").write_bytes(HEADER + encode([row(where) for where in moved]))
    waiting = Results(tmp_path / "results.csv", waiting_in="inbox/review")
    waiting.refresh()
    assert sorted(r.moved_to for r in waiting.waiting()) == moved[:2]
    anywhere = Results(tmp_path / "results.csv")  # no review folder named: nothing is in it
    anywhere.refresh()
    assert anywhere.waiting() == []
