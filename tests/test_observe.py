from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from watchdog.events import (
    DirCreatedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent
from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper, PathedInotifyEvent

from watcher.intake.observe import (
    SETTLE_SLICE,
    SHARED_SETTLE_S,
    Inbox,
    InboxEventHandler,
    InboxObserver,
    _UnpairedMoves,
    is_candidate,
    observer_alive,
    start_observer,
    stop_observer,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_inbox(folder: Path, *, clock: Clock | None = None, settle_s: float = 0.5) -> Inbox:
    return Inbox(folder, extensions=(".png",), settle_s=settle_s, clock=clock or Clock())


@pytest.mark.parametrize(
    ("name", "wanted"),
    [
        ("scan.png", True),
        ("SCAN.PNG", True),
        ('a,b "c"\n.png', True),
        (".hidden.png", False),
        ("~lock.png", False),
        ("scan.png.part", False),
        ("scan.png.tmp", False),
        ("scan.jpg", False),
        ("notes.txt", False),
    ],
)
def test_which_names_are_picked_up(name: str, wanted: bool) -> None:
    assert is_candidate(name, (".png",)) is wanted


def test_a_file_renamed_in_is_ready_at_once(tmp_path: Path) -> None:
    inbox = make_inbox(tmp_path)
    handler = InboxEventHandler(inbox)
    handler.dispatch(FileMovedEvent(str(tmp_path.parent / "elsewhere.png"), str(tmp_path / "a.png")))
    assert [a.name for a in inbox.take(10, timeout=0)] == ["a.png"]


def test_a_file_closed_after_writing_is_ready_at_once(tmp_path: Path) -> None:
    inbox = make_inbox(tmp_path)
    handler = InboxEventHandler(inbox)
    (tmp_path / "a.png").write_bytes(b"x")
    handler.dispatch(FileCreatedEvent(str(tmp_path / "a.png")))
    handler.dispatch(FileClosedEvent(str(tmp_path / "a.png")))
    assert [a.name for a in inbox.take(10, timeout=0)] == ["a.png"]
    assert inbox.take(10, timeout=0) == []


def test_a_file_being_written_waits_until_it_settles(tmp_path: Path) -> None:
    clock = Clock()
    inbox = make_inbox(tmp_path, clock=clock)
    handler = InboxEventHandler(inbox)
    path = tmp_path / "slow.png"
    path.write_bytes(b"part")
    handler.dispatch(FileCreatedEvent(str(path)))
    assert inbox.take(10, timeout=0) == []
    clock.now += 0.3
    with open(path, "ab") as file:
        file.write(b"more")
    handler.dispatch(FileModifiedEvent(str(path)))
    assert inbox.take(10, timeout=0) == []
    clock.now += 0.3
    assert inbox.take(10, timeout=0) == [], "changed since the last look: not settled yet"
    clock.now += 0.6
    assert [a.name for a in inbox.take(10, timeout=0)] == ["slow.png"]


def test_a_file_unchanged_for_the_settle_time_is_ready(tmp_path: Path) -> None:
    path = tmp_path / "old.png"
    path.write_bytes(b"done long ago")
    os.utime(path, (time.time() - 60, time.time() - 60))
    inbox = make_inbox(tmp_path)
    assert inbox.scan() == 1
    assert [a.name for a in inbox.take(10, timeout=0)] == ["old.png"]


def test_on_a_shared_filesystem_only_seeing_it_unchanged_long_enough_makes_a_file_ready(tmp_path: Path) -> None:
    # Another host's clock set the mtime, and this client's view of it may be a second old.
    path = tmp_path / "old.png"
    path.write_bytes(b"written on another host")
    os.utime(path, (time.time() - 60, time.time() - 60))
    clock = Clock()
    with capture_logs() as logs:
        inbox = Inbox(tmp_path, extensions=(".png",), settle_s=0.5, clock=clock, shared=True)
    assert inbox.settle_s == SHARED_SETTLE_S
    assert [entry["event"] for entry in logs] == ["settle_lengthened"]
    assert inbox.scan() == 1
    assert inbox.take(10, timeout=0) == [], "an old mtime is not proof here"
    clock.now += SHARED_SETTLE_S / 2
    assert inbox.take(10, timeout=0) == []
    clock.now += SHARED_SETTLE_S
    assert [a.name for a in inbox.take(10, timeout=0)] == ["old.png"]


def test_a_large_backlog_is_looked_at_a_slice_at_a_time(tmp_path: Path) -> None:
    # On a network filesystem each look is a round trip: one call never looks at more than a slice.
    for number in range(2 * SETTLE_SLICE + 100):
        (tmp_path / f"{number:05}.png").write_bytes(b"x")
    past = time.time() - 60
    for path in tmp_path.iterdir():
        os.utime(path, (past, past))
    inbox = make_inbox(tmp_path)
    inbox.scan()  # looks at the first slice
    taken = [len(inbox.take(10**6, timeout=0)) for _ in range(3)]  # each looks at the next one
    assert taken == [2 * SETTLE_SLICE, 100, 0]


def test_events_outside_the_top_level_and_for_folders_are_ignored(tmp_path: Path) -> None:
    inbox = make_inbox(tmp_path)
    handler = InboxEventHandler(inbox)
    handler.dispatch(FileClosedEvent(str(tmp_path / "done" / "a.png")))
    handler.dispatch(DirCreatedEvent(str(tmp_path / "x.png")))
    handler.dispatch(FileMovedEvent(str(tmp_path / "a.png"), str(tmp_path / "done" / "a.png")))
    handler.dispatch(FileClosedEvent(str(tmp_path / ".a.png")))
    assert inbox.take(10, timeout=0) == []
    assert len(inbox) == 0


def test_a_name_is_queued_once(tmp_path: Path) -> None:
    inbox = make_inbox(tmp_path)
    inbox.ready("a.png")
    inbox.ready("a.png")
    inbox.changed("a.png")
    assert len(inbox.take(10, timeout=0)) == 1


def test_take_hands_out_at_most_the_limit_in_arrival_order(tmp_path: Path) -> None:
    inbox = make_inbox(tmp_path)
    for number in range(5):
        inbox.ready(f"{number}.png")
    assert [a.name for a in inbox.take(3, timeout=0)] == ["0.png", "1.png", "2.png"]
    assert [a.name for a in inbox.take(3, timeout=0)] == ["3.png", "4.png"]


def test_an_exception_in_the_handler_is_caught_and_logged(tmp_path: Path) -> None:
    class Broken(Inbox):
        def ready(self, name: str) -> None:
            raise RuntimeError("boom")

    handler = InboxEventHandler(Broken(tmp_path, extensions=(".png",), settle_s=0.5))
    with capture_logs() as logs:
        handler.dispatch(FileClosedEvent(str(tmp_path / "a.png")))
    assert logs[0]["event"] == "event_handler_failed"


@pytest.mark.parametrize("polling", [False, True])
def test_the_real_observer_sees_a_renamed_in_file(tmp_path: Path, polling: bool) -> None:
    inbox_folder = tmp_path / "inbox"
    inbox_folder.mkdir()
    inbox = Inbox(inbox_folder, extensions=(".png",), settle_s=0.2)
    observer = start_observer(inbox, polling=polling)
    try:
        assert observer_alive(observer)
        (tmp_path / "a.png").write_bytes(b"x")
        os.rename(tmp_path / "a.png", inbox_folder / "a.png")
        taken = []
        deadline = time.monotonic() + 10
        while not taken and time.monotonic() < deadline:
            taken = inbox.take(10, timeout=0.1)
        assert [a.name for a in taken] == ["a.png"]
    finally:
        stop_observer(observer)
    assert not observer_alive(observer)


def test_auto_watches_a_local_inbox_with_inotify(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path, extensions=(".png",), settle_s=0.2)
    with capture_logs() as logs:
        observer = start_observer(inbox, polling="auto")
    try:
        assert isinstance(observer, InboxObserver)
    finally:
        stop_observer(observer)
    assert [entry for entry in logs if entry["event"] == "polling_chosen"] == []


def test_a_move_in_is_reported_without_pairing() -> None:
    moved_from = PathedInotifyEvent(InotifyEvent(1, InotifyConstants.IN_MOVED_FROM, 7, b"a.png"), b"/in/a.png")
    moved_to = PathedInotifyEvent(InotifyEvent(1, InotifyConstants.IN_MOVED_TO, 7, b"b.png"), b"/in/b.png")
    stock, unpaired = InotifyMoveEventGrouper(), _UnpairedMoves()
    for grouper in (stock, unpaired):
        grouper._queue.put(moved_from)  # queued as watchdog would, ready at once
        grouper.put_event(moved_to)
    # watchdog pairs the two halves after searching its queue; the inbox's grouper passes the move on as it came.
    assert stock.read_event() == (moved_from, moved_to)
    assert [unpaired.read_event(), unpaired.read_event()] == [moved_from, moved_to]


def test_the_real_observer_sees_each_file_of_a_burst_once(tmp_path: Path) -> None:
    staging, inbox_folder = tmp_path / "staging", tmp_path / "inbox"
    staging.mkdir()
    (inbox_folder / "claimed").mkdir(parents=True)
    inbox = Inbox(inbox_folder, extensions=(".png",), settle_s=0.2)
    names = [f"{number:04}.png" for number in range(500)]
    for name in names:
        (staging / name).write_bytes(b"x")
    observer = start_observer(inbox, polling=False)
    try:
        for name in names:
            os.rename(staging / name, inbox_folder / name)
        taken: list[str] = []
        deadline = time.monotonic() + 10
        while len(taken) < len(names) and time.monotonic() < deadline:
            arrivals = inbox.take(64, timeout=0.1)
            for arrival in arrivals:  # claimed as the daemon does: renamed out of the top level
                os.rename(inbox_folder / arrival.name, inbox_folder / "claimed" / arrival.name)
            taken += [arrival.name for arrival in arrivals]
        assert sorted(taken) == names
    finally:
        stop_observer(observer)
