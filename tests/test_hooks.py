"""Hooks that lose nothing: each commit's rows handed on as one batch, retried until acknowledged (SPEC "Hooks").

Run the kill -9 test large by hand (the issue's size):
    DW_HOOK_FILES=1000 DW_HOOK_KILLS=10 .venv/bin/python -m pytest tests/test_hooks.py -s -k kill_9
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.conftest import FakeClassifier, write_config
from tests.daemons import ROOT, DaemonProcess, run_once, write_e2e_config
from tests.helpers import digit_png, drop, mnist_scans, result_rows, rows_by_id, wait_for
from tests.receiving import Receiver, by_id, receiving
from tests.reviewing import open_desk, review_config, send_to_review
from tests.test_crash import children
from tests.test_daemon import make_daemon, running
from watcher.ledger import outbox
from watcher.service import config as configuration
from watcher.service import hooks
from watcher.service.config import Config
from watcher.service.metrics import Metrics

FILES = int(os.environ.get("DW_HOOK_FILES", "150"))
KILLS = int(os.environ.get("DW_HOOK_KILLS", "3"))
STORE = """\
import fcntl, sys
data = sys.stdin.buffer.read()
with open(sys.argv[1], "ab") as out:
    fcntl.flock(out, fcntl.LOCK_EX)
    out.write(data + b"\\n")
"""


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hooks of these tests are on 127.0.0.1: never sent through a proxy the environment names."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "*")


def hooked(tmp_path: Path, hooks_section: str) -> Config:
    loaded = configuration.load(
        write_config(
            tmp_path,
            "model:\n  path: models/fake\nwatch:\n  settle_ms: 100\n  rescan_s: 0.5\n" + hooks_section,
        )
    )
    configuration.prepare_folders(loaded)
    return loaded


def store_command(tmp_path: Path) -> tuple[str, Path]:
    """A `hooks.command` section running a real script that appends each batch it is given to a file."""
    script, out = tmp_path / "store.py", tmp_path / "stored.jsonl"
    script.write_text(STORE, encoding="utf-8")
    return f"  command: [{sys.executable}, store.py, {out.name}]\n", out


def stored(out: Path) -> list[list[dict[str, str]]]:
    if not out.exists():
        return []
    return [json.loads(line)["rows"] for line in out.read_text(encoding="utf-8").splitlines()]


def pending(config: Config) -> list[Path]:
    return sorted((config.work / outbox.OUTBOX).iterdir())


def sample(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None
    return value


def test_once_hands_every_row_on_with_the_ids_of_the_csv_rows(tmp_path: Path, fake_classifier: FakeClassifier) -> None:
    with receiving() as receiver:
        config = hooked(tmp_path, f"hooks:\n  url: http://127.0.0.1:{receiver.port}/readings\n")
        for number in range(5):
            (config.paths.inbox / f"{number}.png").write_bytes(digit_png())
        assert make_daemon(config, fake_classifier).run(once=True) == 0
        assert by_id(receiver.rows()) == rows_by_id(config.paths.results, "results")
        assert len(receiver.rows()) == 5
        assert all(h["Content-Type"] == "application/json" for h in receiver.headers)
    assert pending(config) == []
    assert list((config.work / outbox.DELIVERING).iterdir()) == []


@pytest.mark.slow
def test_a_refused_batch_is_retried_until_taken_with_credentials_sent_but_never_logged(
    tmp_path: Path, fake_classifier: FakeClassifier
) -> None:
    with receiving(refuse=2) as receiver, capture_logs() as logs:
        config = hooked(tmp_path, f"hooks:\n  url: http://ann:s3cret@127.0.0.1:{receiver.port}/r\n")
        daemon = make_daemon(config, fake_classifier)
        with running(daemon):
            (config.paths.inbox / "a.png").write_bytes(digit_png())
            wait_for(lambda: receiver.rows(), timeout=20, what="the batch, once the receiver takes it")
        assert sample(daemon.metrics, "digit_watcher_hook_failures_total") == 2
        assert sample(daemon.metrics, "digit_watcher_hook_pending") == 0
        assert sample(daemon.metrics, "digit_watcher_hook_rows_total") == 1
    assert by_id(receiver.rows()) == rows_by_id(config.paths.results, "results")
    assert {h["Authorization"] for h in receiver.headers} == {"Basic YW5uOnMzY3JldA=="}
    failed = [e for e in logs if e["event"] == "hook_failed"]
    assert [e["retry_in_s"] for e in failed] == [0.5, 1.0]
    assert failed[0]["error"] == f"http://127.0.0.1:{receiver.port}/r: answered HTTP 500 Internal Server Error"
    assert "s3cret" not in repr(logs)
    (started,) = [e for e in logs if e["event"] == "started"]
    assert started["hook_url"] == f"http://127.0.0.1:{receiver.port}/r"


@pytest.mark.slow
def test_a_hook_that_keeps_failing_never_stops_reading_and_keeps_every_row(
    tmp_path: Path, fake_classifier: FakeClassifier
) -> None:
    with receiving(refuse=10**6) as receiver:
        config = hooked(tmp_path, f"hooks:\n  url: http://127.0.0.1:{receiver.port}/\n")
        daemon = make_daemon(config, fake_classifier)
        with running(daemon):
            for number in range(6):
                (config.paths.inbox / f"{number}.png").write_bytes(digit_png())
                time.sleep(0.2)  # a commit each, as files arrive one by one
            wait_for(lambda: len(result_rows(config.paths.results)) == 6, what="every file read")
            wait_for(lambda: sample(daemon.metrics, "digit_watcher_hook_pending") == 6, what="every row pending")
        assert receiver.refused >= 1 and receiver.batches == []
    assert sum(outbox.rows_in(batch.name) for batch in pending(config)) == 6, "given back to the outbox on stop"
    assert len(list(config.paths.done.iterdir())) == 6


def test_once_with_a_failing_hook_exits_at_once_and_keeps_the_rows_for_the_next_run(
    tmp_path: Path, fake_classifier: FakeClassifier
) -> None:
    with receiving(refuse=10**6) as receiver:
        config = hooked(tmp_path, f"hooks:\n  url: http://127.0.0.1:{receiver.port}/\n")
        for number in range(3):
            (config.paths.inbox / f"{number}.png").write_bytes(digit_png())
        started = time.monotonic()
        assert make_daemon(config, fake_classifier).run(once=True) == 0
        assert time.monotonic() - started < 5
        assert receiver.refused >= 1
    assert sum(outbox.rows_in(batch.name) for batch in pending(config)) == 3


def test_a_review_decision_goes_to_the_outbox_with_the_id_of_its_row(tmp_path: Path) -> None:
    config = review_config(tmp_path, extra="hooks:\n  url: http://127.0.0.1:9/readings\n")
    send_to_review(config, "a.png", digit_png(), prediction="7")
    desk = open_desk(config)
    try:
        (item,) = desk.queue.items()
        desk.decide(item.id, "1")
    finally:
        desk.close()
    (batch,) = pending(config)
    (row,) = json.loads(batch.read_bytes())["rows"]
    assert (row["status"], row["prediction"], row["model"]) == ("corrected", "1", "person:ann")
    assert by_id([row]).items() <= rows_by_id(config.paths.results, "results").items()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_courier_that_dies_stops_the_daemon_for_a_restart(
    tmp_path: Path, fake_classifier: FakeClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: hooks.Courier, deliveries: outbox.Deliveries) -> bool:
        raise RuntimeError("a bug")

    monkeypatch.setattr(hooks.Courier, "_deliver_next", broken)
    config = hooked(tmp_path, "hooks:\n  url: http://127.0.0.1:9/\n")
    with capture_logs() as logs:
        assert make_daemon(config, fake_classifier).run() == 1
    assert "hook_courier_died" in [entry["event"] for entry in logs]


def test_a_command_is_given_each_batch_on_stdin(tmp_path: Path, fake_classifier: FakeClassifier) -> None:
    section, out = store_command(tmp_path)
    config = hooked(tmp_path, "hooks:\n" + section)
    for number in range(3):
        (config.paths.inbox / f"{number}.png").write_bytes(digit_png())
    assert make_daemon(config, fake_classifier).run(once=True) == 0
    assert by_id([row for batch in stored(out) for row in batch]) == rows_by_id(config.paths.results, "results")


def test_with_a_url_and_a_command_a_batch_is_delivered_once_both_took_it(tmp_path: Path) -> None:
    section, out = store_command(tmp_path)
    with receiving(refuse=1) as receiver:
        config = hooked(tmp_path, f"hooks:\n  url: http://127.0.0.1:{receiver.port}/\n{section}")
        batch = pending_batch(config)
        courier = hooks.Courier(config.hooks, work=config.work, root=config.root, metrics=Metrics())
        courier.start()
        wait_for(lambda: receiver.batches, timeout=10, what="the URL to take the batch")
        courier.close(finish=True)
    assert receiver.batches == stored(out) == [json.loads(batch)["rows"]]
    assert pending(config) == []


def test_a_command_that_fails_or_hangs_is_told_in_one_line(tmp_path: Path) -> None:
    failing = hooks.targets(configuration.HooksConfig(command=("sh", "-c", "echo 'no db' >&2; exit 3")), root=tmp_path)
    with pytest.raises(hooks.HookFailed, match=r"^exit status 3: no db$"):
        failing[0].send(b"{}")
    hanging = hooks.targets(configuration.HooksConfig(command=("sleep", "5"), timeout_s=0.2), root=tmp_path)
    with pytest.raises(hooks.HookFailed, match=r"killed after 0.2 s"):
        hanging[0].send(b"{}")


def test_a_url_nobody_listens_on_fails_in_one_line(tmp_path: Path) -> None:
    with receiving() as receiver:
        port = receiver.port
    (target,) = hooks.targets(configuration.HooksConfig(url=f"http://127.0.0.1:{port}/"), root=tmp_path)
    with pytest.raises(hooks.HookFailed, match="Connection refused"):
        target.send(b"{}")


def test_a_batch_a_dead_daemon_held_is_delivered_by_another(tmp_path: Path) -> None:
    with receiving() as receiver:
        config = hooked(tmp_path, f"hooks:\n  url: http://127.0.0.1:{receiver.port}/\n")
        batch = pending_batch(config)
        dead = outbox.Deliveries(config.work, clock=time.monotonic)
        (name,) = dead.waiting()
        assert dead.claim(name) is not None
        dead.close()  # as a kill would leave it: its lock let go, the batch in its workspace
        courier = hooks.Courier(config.hooks, work=config.work, root=config.root, metrics=Metrics())
        courier.start()
        courier.close(finish=True)
        assert receiver.batches == [json.loads(batch)["rows"]]
    assert list((config.work / outbox.DELIVERING).iterdir()) == []


def pending_batch(config: Config) -> bytes:
    """A batch in the outbox, as a commit leaves it; returns its bytes."""
    assert config.outbox is not None
    config.outbox.mkdir(parents=True, exist_ok=True)
    data = outbox.body([outbox.Part("results", ("file", "status"), 40, [b"a.png,ok\r\n"])])
    (config.outbox / "20260101T000000000000-host-1-ab-1.1.json").write_bytes(data)
    return data


def test_close_stops_promptly_while_the_hook_is_failing(tmp_path: Path) -> None:
    with receiving(refuse=10**6) as receiver:
        config = hooked(tmp_path, f"hooks:\n  url: http://127.0.0.1:{receiver.port}/\n")
        pending_batch(config)
        courier = hooks.Courier(config.hooks, work=config.work, root=config.root, metrics=Metrics())
        courier.start()
        wait_for(lambda: receiver.refused >= 2, timeout=10, what="two refusals")
        closing = threading.Thread(target=courier.close)
        started = time.monotonic()
        closing.start()
        closing.join(timeout=5)
        assert not closing.is_alive() and time.monotonic() - started < 2
    assert len(pending(config)) == 1, "the batch is back in the outbox"


def delivered_all(receiver: Receiver, results: Path, count: int) -> bool:
    in_csv = rows_by_id(results, "results")
    return len(in_csv) >= count and set(by_id(receiver.rows())) == set(in_csv)


@pytest.mark.slow
def test_a_daemon_hands_on_its_rows_with_the_ids_of_the_csv_rows(tmp_path: Path) -> None:
    with receiving() as receiver:
        config = write_e2e_config(tmp_path, extra=f"hooks:\n  url: http://ann:s3cret@127.0.0.1:{receiver.port}/in\n")
        daemon = DaemonProcess(config)
        daemon.wait_started()
        for number, (_, scan) in enumerate(mnist_scans(20)):
            drop(tmp_path / "inbox", f"{number}.png", scan)
        wait_for(lambda: delivered_all(receiver, tmp_path / "results.csv", 20), what="every row delivered")
        assert daemon.terminate() == 0
    assert by_id(receiver.rows()) == rows_by_id(tmp_path / "results.csv", "results")
    assert len(receiver.rows()) == 20, "each row once"
    assert "s3cret" not in daemon.output()
    assert {e["rows"] for e in daemon.events() if e["event"] == "hook_delivered"} <= set(range(1, 21))


@pytest.mark.slow
def test_a_receiver_answering_500_for_a_while_loses_nothing(tmp_path: Path) -> None:
    with receiving(refuse=4) as receiver:
        extra = f"metrics:\n  port: 0\nhooks:\n  url: http://127.0.0.1:{receiver.port}/\n"
        daemon = DaemonProcess(write_e2e_config(tmp_path, extra=extra))
        daemon.wait_started()
        for number, (_, scan) in enumerate(mnist_scans(12)):
            drop(tmp_path / "inbox", f"{number}.png", scan)
            time.sleep(0.1)
        wait_for(lambda: delivered_all(receiver, tmp_path / "results.csv", 12), timeout=60, what="every row")
        (serving,) = [e for e in daemon.events() if e["event"] == "metrics_serving"]

        def scraped_when_none_pending() -> str:
            # The receiver has every row a moment before the daemon has read its last answer.
            with urllib.request.urlopen(str(serving["url"]), timeout=5) as answer:
                text: str = answer.read().decode()
            return text if "digit_watcher_hook_pending 0.0" in text else ""

        scraped = wait_for(scraped_when_none_pending, timeout=10, what="no rows pending")
        assert daemon.terminate() == 0
    assert receiver.refused == 4
    assert "digit_watcher_hook_failures_total 4.0" in scraped
    assert len([e for e in daemon.events() if e["event"] == "hook_failed"]) == 4
    assert by_id(receiver.rows()) == rows_by_id(tmp_path / "results.csv", "results")


@pytest.mark.slow
def test_a_real_command_is_given_the_rows_of_run_once(tmp_path: Path) -> None:
    section, out = store_command(tmp_path)
    config = write_e2e_config(tmp_path, extra="hooks:\n" + section)
    (tmp_path / "inbox").mkdir()
    for number, (_, scan) in enumerate(mnist_scans(5)):
        drop(tmp_path / "inbox", f"{number}.png", scan)
    run_once(config)
    assert by_id([row for batch in stored(out) for row in batch]) == rows_by_id(tmp_path / "results.csv", "results")
    assert len(rows_by_id(tmp_path / "results.csv", "results")) == 5


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("hooks:\n  url: ftp://ann:s3cret@127.0.0.1/\n", "hooks.url"),
        ("hooks:\n  command: [./no-such-program]\n", "hooks.command"),
        ("hooks:\n  timeout_s: -1\n", "hooks.timeout_s"),
    ],
)
@pytest.mark.slow
def test_bad_hook_config_exits_78_with_one_line_naming_the_key(tmp_path: Path, section: str, key: str) -> None:
    config = write_e2e_config(tmp_path, extra=section)
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"digit-watcher: {key}: ")
    assert "s3cret" not in result.stderr


@pytest.mark.slow
def test_every_row_reaches_the_receiver_across_kill_9_of_one_of_two_daemons(tmp_path: Path) -> None:
    with receiving(delay_s=0.2) as receiver:  # slow, so a kill often finds a batch being sent
        extra = f"batch:\n  max_size: 16\nhooks:\n  url: http://127.0.0.1:{receiver.port}/\n"
        config = write_e2e_config(tmp_path, extra=extra)
        names = stage(tmp_path, FILES)
        feeding = threading.Thread(target=feed, args=(tmp_path / "staging", tmp_path / "inbox", names))
        steady = DaemonProcess(config, name="steady")
        steady.wait_started()
        feeding.start()
        chance = random.Random(11)
        killed = []
        try:
            for kill in range(KILLS):
                daemon = DaemonProcess(config, name=f"killed-{kill}")
                killed.append(daemon)
                daemon.wait_started()
                before = len(receiver.rows())
                wait_for(lambda b=before: len(receiver.rows()) > b or not feeding.is_alive(), what="new deliveries")
                time.sleep(chance.uniform(0, 0.5))
                workers = children(daemon.process.pid)
                daemon.kill()
                wait_for(lambda pids=workers: not any(Path(f"/proc/{pid}").exists() for pid in pids), what="workers")
        finally:
            feeding.join()
        results = tmp_path / "results.csv"
        wait_for(lambda: delivered_all(receiver, results, FILES), timeout=60 + FILES / 20, what="every row delivered")
        assert steady.terminate() == 0
    delivered, in_csv = receiver.rows(), rows_by_id(results, "results")
    events = [e for daemon in (steady, *killed) for e in daemon.events()]
    taken_over = sum(len(e["batches"]) for e in events if e["event"] == "hook_taken_over")
    print(
        f"\n{FILES} files, {KILLS} kills of one of two daemons: {len(in_csv)} rows, {len(delivered)} delivered,"
        f" {len(delivered) - len(by_id(delivered))} again (same id and content);"
        f" {taken_over} batches a killed daemon held were taken over"
    )
    assert by_id(delivered) == in_csv
    assert sorted(row["file"] for row in in_csv.values()) == sorted(names), "each file once in the CSV"


def stage(tmp_path: Path, count: int) -> list[str]:
    """`count` MNIST scans written beside the inbox, to be fed in; returns their names."""
    (tmp_path / "inbox").mkdir()
    (tmp_path / "staging").mkdir()
    scans = mnist_scans(50)
    names = [f"scan-{number:05}.png" for number in range(count)]
    for number, name in enumerate(names):
        (tmp_path / "staging" / name).write_bytes(scans[number % len(scans)][1])
    return names


def feed(staging: Path, inbox: Path, names: list[str]) -> None:
    """Rename files into the inbox ten at a time, spread over about a second and a half per planned kill."""
    pause = 1.5 * KILLS / (len(names) / 10)
    for start in range(0, len(names), 10):
        for name in names[start : start + 10]:
            os.rename(staging / name, inbox / name)
        time.sleep(pause)
