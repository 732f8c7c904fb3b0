from __future__ import annotations

import errno
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from structlog.testing import capture_logs

from tests.conftest import FakeClassifier
from tests.helpers import digit_png, drop, result_rows, wait_for
from watcher.ledger import place, record
from watcher.service.config import Config
from watcher.service.daemon import Daemon
from watcher.service.metrics import Metrics
from watcher.service.notify import Notifier


def make_daemon(config: Config, classifier: FakeClassifier) -> Daemon:
    return Daemon(config, classifier, notifier=Notifier.from_environ({}), metrics=Metrics())


@contextmanager
def running(daemon: Daemon) -> Iterator[dict[str, int]]:
    outcome: dict[str, int] = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("code", daemon.run()))
    thread.start()
    try:
        yield outcome
    finally:
        daemon.stop()
        thread.join(timeout=30)
        assert not thread.is_alive()


def test_files_present_renamed_in_and_written_slowly_each_get_one_row(
    config: Config, fake_classifier: FakeClassifier
) -> None:
    inbox = config.paths.inbox
    (inbox / "before.png").write_bytes(digit_png())
    daemon = make_daemon(config, fake_classifier)
    with running(daemon) as outcome:
        wait_for(lambda: len(result_rows(config.paths.results)) == 1, what="the file present at start")
        drop(inbox, "renamed.png", digit_png(rows=3))
        data = digit_png(rows=5)
        with open(inbox / "slow.png", "wb") as file:
            for start in range(0, len(data), 100):
                file.write(data[start : start + 100])
                file.flush()
                time.sleep(0.05)
        (inbox / "notes.txt").write_text("left alone")
        (inbox / ".hidden.png").write_bytes(digit_png())
        rows = wait_for(lambda: (r := result_rows(config.paths.results)) and len(r) == 3 and r, what="three rows")
    assert outcome["code"] == 0
    assert sorted(r["file"] for r in rows) == ["before.png", "renamed.png", "slow.png"]
    assert {r["status"] for r in rows} == {"ok"}
    assert sorted(p.name for p in config.paths.done.iterdir()) == ["before.png", "renamed.png", "slow.png"]
    assert (config.paths.done / "slow.png").read_bytes() == data, "taken only once complete"
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == [".hidden.png", "notes.txt"]
    assert len(result_rows(config.paths.results)) == 3


@pytest.mark.slow
def test_a_burst_is_classified_in_few_model_calls(config: Config, fake_classifier: FakeClassifier) -> None:
    daemon = make_daemon(config, fake_classifier)
    with running(daemon):
        wait_for(lambda: daemon.notifier is not None and config.work.exists(), what="start")
        staging = config.root / "staging"
        staging.mkdir()
        for number in range(200):
            # Bars taller than wide: one image each, as a bar wider than tall may also be offered as two digits.
            (staging / f"{number:03}.png").write_bytes(digit_png(rows=number % 6 + 4))
        for number in range(200):
            (staging / f"{number:03}.png").rename(config.paths.inbox / f"{number:03}.png")
        wait_for(lambda: len(result_rows(config.paths.results)) == 200, what="200 rows")
    assert sum(fake_classifier.calls) == 200
    assert len(fake_classifier.calls) < 100, fake_classifier.calls


def test_a_bad_file_goes_to_error_with_a_reason(config: Config, fake_classifier: FakeClassifier) -> None:
    daemon = make_daemon(config, fake_classifier)
    with running(daemon):
        drop(config.paths.inbox, "letter.png", b"Dear Sir, this is not a picture")
        drop(config.paths.inbox, "blank.png", cv2.imencode(".png", np.full((40, 40), 240, np.uint8))[1].tobytes())
        rows = wait_for(lambda: (r := result_rows(config.paths.results)) and len(r) == 2 and r, what="two rows")
    by_file = {r["file"]: r for r in rows}
    assert by_file["letter.png"]["status"] == "error"
    assert by_file["letter.png"]["detail"] == "not a PNG image"
    assert by_file["letter.png"]["moved_to"] == "inbox/error/letter.png"
    assert by_file["blank.png"]["status"] == "no_digit"
    assert by_file["blank.png"]["prediction"] == "" and by_file["blank.png"]["confidence"] == ""
    assert (config.paths.error / "letter.png").exists()


def test_once_processes_the_inbox_and_returns(config: Config, fake_classifier: FakeClassifier) -> None:
    for number in range(5):
        (config.paths.inbox / f"{number}.png").write_bytes(digit_png())
    assert make_daemon(config, fake_classifier).run(once=True) == 0
    assert len(result_rows(config.paths.results)) == 5
    assert len(list(config.paths.done.iterdir())) == 5


@pytest.mark.slow
@pytest.mark.parametrize("when", ["once started", "while first listed"])
def test_an_inbox_that_goes_away_is_waited_for_and_used_again_once_back(
    config: Config, fake_classifier: FakeClassifier, when: str
) -> None:
    away = config.paths.inbox.with_name("inbox-away")
    daemon = make_daemon(config, fake_classifier)

    def unmount() -> None:
        config.paths.inbox.rename(away)  # as a share unmounted would look: gone, its folders with it

    if when == "while first listed":
        listing, listed = daemon.inbox.scan, []

        def unmounted_midway(under: str = "") -> int:
            if not listed:
                listed.append(under)
                unmount()  # between the watcher's start and the first listing
            return listing(under)

        daemon.inbox.scan = unmounted_midway  # type: ignore[method-assign]
    with capture_logs() as logs, running(daemon) as outcome:
        if when == "once started":
            wait_for(lambda: daemon.observer is not None, what="start")
            unmount()
        wait_for(lambda: "inbox_gone" in [entry["event"] for entry in logs], what="the inbox missed")
        assert "code" not in outcome, "waiting, not exiting"
        away.rename(config.paths.inbox)
        wait_for(lambda: "inbox_back" in [entry["event"] for entry in logs], what="the inbox found again")
        drop(config.paths.inbox, "after.png", digit_png())
        wait_for(lambda: result_rows(config.paths.results), what="a row for the file dropped after")
    assert outcome["code"] == 0
    assert [p.name for p in config.paths.done.iterdir()] == ["after.png"]


@pytest.mark.slow
def test_stopping_while_the_inbox_is_away_exits_cleanly(config: Config, fake_classifier: FakeClassifier) -> None:
    daemon = make_daemon(config, fake_classifier)
    with capture_logs() as logs, running(daemon) as outcome:
        wait_for(lambda: daemon.observer is not None, what="start")
        shutil.rmtree(config.paths.inbox)
        wait_for(lambda: "inbox_gone" in [entry["event"] for entry in logs], what="the inbox missed")
    assert outcome["code"] == 0


def test_the_daemon_exits_non_zero_rather_than_run_blind(config: Config, fake_classifier: FakeClassifier) -> None:
    daemon = make_daemon(config, fake_classifier)
    with capture_logs() as logs, running(daemon) as outcome:
        observer = wait_for(lambda: daemon.observer, what="start")
        observer.stop()
        wait_for(lambda: "code" in outcome, what="the daemon to give up")
    assert outcome["code"] == 1
    assert "observer_died" in [entry["event"] for entry in logs]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["done not writable", "disk full on the CSV"])
def test_faults_of_the_machine_are_retried_until_they_clear(
    config: Config, fake_classifier: FakeClassifier, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    failures = {"left": 3}

    def failing(real: Callable[..., object], error: OSError) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            if failures["left"] and not (fault == "disk full on the CSV" and args[1] == record.HEADER):
                failures["left"] -= 1
                raise error
            return real(*args, **kwargs)

        return call

    if fault == "done not writable":
        monkeypatch.setattr(
            place, "move", failing(place.move, PermissionError(errno.EACCES, "Permission denied", "inbox/done"))
        )
    else:
        monkeypatch.setattr(
            record.LockedResults,
            "append",
            failing(record.LockedResults.append, OSError(errno.ENOSPC, "No space left on device")),
        )
    daemon = make_daemon(config, fake_classifier)
    with capture_logs() as logs, running(daemon):
        for number in range(3):
            drop(config.paths.inbox, f"{number}.png", digit_png())
        wait_for(lambda: len(result_rows(config.paths.results)) == 3, timeout=60, what="rows once the fault clears")
    assert failures["left"] == 0
    assert sorted(r["file"] for r in result_rows(config.paths.results)) == ["0.png", "1.png", "2.png"]
    assert sorted(p.name for p in config.paths.done.iterdir()) == ["0.png", "1.png", "2.png"]
    assert [e["event"] for e in logs].count("commit_failed") >= 1


def test_a_file_deleted_while_being_read_does_not_stall_the_daemon(config: Config) -> None:
    class DeletingClassifier(FakeClassifier):
        """Someone deletes the claimed files while the model reads them."""

        def probabilities(self, digits: np.ndarray) -> np.ndarray:
            for claimed in config.work.glob("*/*/*.png"):
                claimed.unlink()
            return super().probabilities(digits)

    daemon = make_daemon(config, DeletingClassifier())
    with capture_logs() as logs, running(daemon):
        drop(config.paths.inbox, "gone.png", digit_png())
        wait_for(lambda: result_rows(config.paths.results), what="a row")
        drop(config.paths.inbox, "next.png", digit_png())
        wait_for(lambda: len(result_rows(config.paths.results)) == 2, what="the next file's row")
    assert [r["file"] for r in result_rows(config.paths.results)] == ["gone.png", "next.png"]
    assert "commit_failed" not in [e["event"] for e in logs]


def test_the_workers_keep_freed_memory_for_the_next_page_unless_told_otherwise(
    config: Config, fake_classifier: FakeClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")  # restored as it was when the test ends
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000")  # the user's own setting
    daemon = make_daemon(config, fake_classifier)
    with running(daemon):
        drop(config.paths.inbox, "one.png", digit_png())
        wait_for(lambda: len(result_rows(config.paths.results)) == 1, what="a row")
        workers = list(daemon.preparer.pool._processes)
        environments = [
            dict(entry.split("=", 1) for entry in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in entry)
            for pid in workers
        ]
    assert len(workers) == daemon.preparer.workers
    for environment in environments:
        assert environment["MALLOC_MMAP_THRESHOLD_"] == str(32 << 20)
        assert environment["MALLOC_TRIM_THRESHOLD_"] == "1000"
