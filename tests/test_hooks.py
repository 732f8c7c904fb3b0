"""Hooks that lose nothing: each commit's rows handed on as one batch, retried until acknowledged (SPEC "Hooks")."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.conftest import FakeClassifier, write_config
from tests.helpers import digit_png, result_rows, rows_by_id, wait_for
from tests.receiving import by_id, receiving
from tests.test_daemon import make_daemon, running
from watcher.ledger import outbox
from watcher.service import config as configuration
from watcher.service import hooks
from watcher.service.config import Config
from watcher.service.metrics import Metrics

STORE = """\
import fcntl, sys
data = sys.stdin.buffer.read()
with open(sys.argv[1], "ab") as out:
    fcntl.flock(out, fcntl.LOCK_EX)
    out.write(data + b"\\n")
"""


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
