"""End to end: the real daemon as a subprocess, the real observer, the shipped model."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests import sandbox
from tests.daemons import ROOT, SHIPPED_MODEL, SHIPPED_VERSION, DaemonProcess, run_once, write_e2e_config
from tests.helpers import MNIST_SAMPLE, drop, mnist_scans, result_rows, wait_for
from watcher.vocabulary import Event

SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.slow
def test_real_scans_are_read_correctly_and_placed(folder: Path) -> None:
    config = write_e2e_config(folder)
    scans = mnist_scans(40)
    inbox = folder / "inbox"
    inbox.mkdir()
    (inbox / "present-before-start.png").write_bytes(scans[0][1])
    os.utime(inbox / "present-before-start.png", (time.time() - 60, time.time() - 60))
    daemon = DaemonProcess(config)
    try:
        daemon.wait_started()
        for number, (_, data) in enumerate(scans[1:], start=1):
            drop(inbox, f"scan-{number:02}.png", data)
        slow = scans[0][1]
        with open(inbox / "written-slowly.png", "wb") as file:
            for start in range(0, len(slow), 100):
                file.write(slow[start : start + 100])
                file.flush()
                time.sleep(0.05)
        rows = wait_for(lambda: (r := result_rows(folder / "results.csv")) and len(r) == 41 and r, what="41 rows")
    finally:
        assert daemon.terminate() == 0
    truth = {f"scan-{n:02}.png": label for n, (label, _) in enumerate(scans) if n}
    truth["present-before-start.png"] = truth["written-slowly.png"] = scans[0][0]
    correct = sum(row["prediction"] == str(truth[row["file"]]) for row in rows)
    assert correct >= 39, [(r["file"], r["prediction"], truth[r["file"]]) for r in rows]
    assert sorted(row["file"] for row in rows) == sorted(truth)
    for row in rows:
        assert row["status"] == "ok" and row["model"] == f"mnist-cnn/{SHIPPED_VERSION.name}"
        assert row["moved_to"] == f"inbox/done/{row['file']}"
        assert len(row["top3"].split()) == 3 and float(row["confidence"]) > 0.5
        assert row["time"].endswith("Z") and float(row["latency_ms"]) >= 0
    assert (folder / "inbox/done/written-slowly.png").read_bytes() == slow
    assert (folder / "inbox/done/scan-05.png").read_bytes() == scans[5][1]
    processed = [e for e in daemon.events() if e["event"] == "file_processed"]
    assert len(processed) == 41 and {"file", "status", "prediction", "confidence", "latency_ms"} <= set(processed[0])


@pytest.mark.slow
def test_two_daemons_share_an_inbox_and_one_header(folder: Path) -> None:
    config = write_e2e_config(folder)
    (folder / "inbox").mkdir()
    (folder / "results.csv").touch()
    daemons = [DaemonProcess(config, name=f"d{n}") for n in range(2)]
    try:
        for daemon in daemons:
            daemon.wait_started()
        scans = mnist_scans(10)
        for number in range(300):
            drop(folder / "inbox", f"{number:03}.png", scans[number % 10][1])
        wait_for(lambda: len(result_rows(folder / "results.csv")) >= 300, what="300 rows")
    finally:
        codes = [daemon.terminate() for daemon in daemons]
    assert codes == [0, 0]
    text = (folder / "results.csv").read_text(encoding="utf-8")
    assert text.count("time,file,status") == 1
    rows = result_rows(folder / "results.csv")
    assert sorted(r["file"] for r in rows) == [f"{n:03}.png" for n in range(300)]
    assert len(list((folder / "inbox/done").iterdir())) == 300
    taken = [{e["file"] for e in d.events() if e["event"] == "file_processed"} for d in daemons]
    assert all(taken), f"each daemon took files: {[len(files) for files in taken]}"
    assert not taken[0] & taken[1] and taken[0] | taken[1] == {f"{n:03}.png" for n in range(300)}


@pytest.mark.slow
def test_sigterm_finishes_the_batch_in_hand_and_exits_0(folder: Path) -> None:
    config = write_e2e_config(folder)
    inbox = folder / "inbox"
    inbox.mkdir()
    daemon = DaemonProcess(config)
    daemon.wait_started()
    for number, (_, data) in enumerate(mnist_scans(10) * 50):
        drop(inbox, f"{number:03}.png", data)
    wait_for(lambda: result_rows(folder / "results.csv"), what="the first rows")
    assert daemon.terminate() == 0
    rows = result_rows(folder / "results.csv")
    stopping = next(e for e in daemon.events() if e["event"] == "stopping")
    assert len(rows) == stopping["processed"] + stopping["finishing"], (
        "the batches in hand finished, nothing more taken"
    )
    placed = sorted(p.name for p in (inbox / "done").iterdir())
    waiting = sorted(p.name for p in inbox.iterdir() if p.is_file())
    assert sorted(r["file"] for r in rows) == placed
    assert sorted(placed + waiting) == sorted(f"{n:03}.png" for n in range(500)), (
        "every file is either placed with a row, or still waiting"
    )


@pytest.mark.slow
def test_sighup_applies_a_new_log_section(folder: Path) -> None:
    config = write_e2e_config(folder)
    inbox = folder / "inbox"
    inbox.mkdir()
    scan = mnist_scans(1)[0][1]
    daemon = DaemonProcess(config)
    try:
        daemon.wait_started()
        drop(inbox, "before.png", scan)
        wait_for(lambda: any(e.get("file") == "before.png" for e in daemon.events()), what="a JSON line at info")
        config.write_text(config.read_text().replace("format: json", "format: console"))
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.output().count("config_reloaded") == 1, what="the first reload logged")
        drop(inbox, "middle.png", scan)
        wait_for(lambda: len(result_rows(folder / "results.csv")) == 2, what="the second row")
        middle = wait_for(
            lambda: [line for line in daemon.output().splitlines() if "middle.png" in line], what="its log line"
        )
        assert not middle[0].startswith("{"), "logged in the new format"
        config.write_text(config.read_text().replace("format: console", "format: console\n  level: warning"))
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.output().count("config_reloaded") == 2, what="the second reload logged")
        drop(inbox, "after.png", scan)
        wait_for(lambda: len(result_rows(folder / "results.csv")) == 3, what="the third row")
    finally:
        assert daemon.terminate() == 0
    assert "before.png" in daemon.output() and "after.png" not in daemon.output(), "info lines are off at warning"
    assert daemon.output().count("config_reloaded") == 2


@pytest.mark.slow
def test_systemd_notify_protocol(folder: Path) -> None:
    config = write_e2e_config(folder)
    (folder / "inbox").mkdir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(folder / "notify.sock"))
    listener.settimeout(30)
    daemon = DaemonProcess(config, env={"NOTIFY_SOCKET": str(folder / "notify.sock"), "WATCHDOG_USEC": "400000"})
    try:
        messages: list[str] = []

        def received(field: str) -> bool:
            while not any(field in m for m in messages):
                messages.append(listener.recv(4096).decode())
            return True

        received("READY=1")
        assert result_rows(folder / "results.csv") == []
        drop(folder / "inbox", "a.png", mnist_scans(1)[0][1])
        wait_for(lambda: result_rows(folder / "results.csv"), what="a row")
        received("WATCHDOG=1")
        wait_for(
            lambda: (
                any("STATUS=processed 1" in m for m in messages)
                or (messages.append(listener.recv(4096).decode()) and False)
            ),
            what="a STATUS with the count",
        )
        daemon.process.send_signal(signal.SIGTERM)
        received("STOPPING=1")
        assert daemon.process.wait(timeout=30) == 0
    finally:
        daemon.close()
        listener.close()
    status = next(m for m in messages if "STATUS=processed 1" in m)
    assert "errors 0" in status and f"model mnist-cnn/{SHIPPED_VERSION.name}" in status


def test_check_exits_78_naming_the_key(folder: Path) -> None:
    (folder / "config.yaml").write_text("batch:\n  max_size: lots\n")
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "check", "--config", str(folder / "config.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 78
    assert result.stderr.strip().endswith("batch.max_size: expected a whole number, got str 'lots'")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_missing_model_exits_78(folder: Path) -> None:
    (folder / "config.yaml").write_text("model:\n  path: no-such-model\n")
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--config", str(folder / "config.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78
    assert "no-such-model" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_results_file_with_the_old_header_is_set_aside_once(folder: Path) -> None:
    config = write_e2e_config(folder)
    (folder / "inbox").mkdir()
    old = b"time,file,status,prediction,confidence,top3,model,sha256,latency_ms,moved_to,detail\r\n"
    (folder / "results.csv").write_bytes(old + b"2026-01-01T00:00:00.000Z,a.png,ok,7,,,m,,,,\r\n")
    for number, (_, data) in enumerate(mnist_scans(3)):
        (folder / "inbox" / f"{number}.png").write_bytes(data)
    result = run_once(config)
    assert (folder / "results.old.csv").read_bytes().startswith(old), "the old rows are kept, whole"
    assert len(result_rows(folder / "results.csv")) == 3, "a new file with this version's header"
    said = [json.loads(line) for line in result.stdout.splitlines() if Event.RESULTS_SET_ASIDE in line]
    assert [line["moved_to"] for line in said] == [str(folder / "results.old.csv")], "said once, where it went"


@pytest.mark.slow
def test_run_once_processes_the_inbox_then_exits(folder: Path) -> None:
    config = write_e2e_config(folder)
    (folder / "inbox").mkdir()
    for number, (_, data) in enumerate(mnist_scans(12)):
        (folder / "inbox" / f"{number}.png").write_bytes(data)
    run_once(config)
    assert len(result_rows(folder / "results.csv")) == 12
    assert [p for p in (folder / "inbox").iterdir() if p.is_file()] == []


@pytest.mark.slow
def test_mnists_own_digits_light_on_black_are_read_as_the_digits_they_are(folder: Path) -> None:
    """MNIST's digits as they come (28x28, light on black), as PNG and as JPEG, dropped in, default config (`auto`
    mode): all of the sample's first 100 read right (97 when their black was cut to the digit's box as a scanner's
    margin)."""
    config = write_e2e_config(folder)
    config.write_text(config.read_text().replace("watch:\n", "watch:\n  extensions: [.png, .jpg]\n"))
    inbox = folder / "inbox"
    inbox.mkdir()
    with np.load(MNIST_SAMPLE) as sample:
        digits, labels = sample["x"][:100], sample["y"][:100]
    for number, digit in enumerate(digits):
        kind = (".png", ".jpg")[number % 2]
        (inbox / f"{number:03}{kind}").write_bytes(cv2.imencode(kind, digit)[1].tobytes())
    run_once(config)
    rows = result_rows(folder / "results.csv")
    assert len(rows) == 100
    assert [
        (row["file"], row["prediction"]) for row in rows if row["prediction"] != str(labels[int(row["file"][:3])])
    ] == []


def test_predict_prints_one_line_per_file_and_moves_nothing(folder: Path) -> None:
    scans = mnist_scans(3)
    for number, (_, data) in enumerate(scans):
        (folder / f"{number}.png").write_bytes(data)
    (folder / "bad.png").write_bytes(b"nope")
    files = [str(folder / f"{n}.png") for n in range(3)] + [str(folder / "bad.png")]
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "predict", "--json", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["prediction"] for line in lines[:3]] == [str(label) for label, _ in scans]
    assert lines[3]["status"] == "error" and lines[3]["detail"] == "not a PNG image"
    assert sorted(p.name for p in folder.iterdir()) == ["0.png", "1.png", "2.png", "bad.png"]


@pytest.mark.slow
def test_unsure_files_go_to_review_and_numbers_are_read(folder: Path) -> None:
    config = write_e2e_config(
        folder, extra="paths:\n  review: inbox/review\nreview:\n  threshold: 0.99\nrecognition:\n  mode: auto\n"
    )
    inbox = folder / "inbox"
    inbox.mkdir()
    sample = np.load(MNIST_SAMPLE)
    digits = [255 - sample["x"][index] for index in range(3)]
    number = cv2.copyMakeBorder(np.concatenate(digits, axis=1), 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=255)
    (inbox / "number.png").write_bytes(cv2.imencode(".png", number)[1].tobytes())
    smudge = np.full((60, 60), 255, np.uint8)
    cv2.line(smudge, (10, 30), (50, 32), 0, 5)
    cv2.circle(smudge, (30, 30), 12, 0, 3)
    (inbox / "smudge.png").write_bytes(cv2.imencode(".png", smudge)[1].tobytes())
    run_once(config)
    rows = {row["file"]: row for row in result_rows(folder / "results.csv")}
    expected = "".join(str(label) for label in sample["y"][:3])
    assert rows["number.png"]["prediction"] == expected
    assert len(rows["number.png"]["top3"].split(" | ")) == 3
    confidence = float(rows["number.png"]["confidence"])
    assert rows["number.png"]["status"] == ("ok" if confidence >= 0.99 else "low_confidence")
    smudged = rows["smudge.png"]
    assert smudged["status"] == "low_confidence" and float(smudged["confidence"]) < 0.99
    assert smudged["moved_to"] == "inbox/review/smudge.png"
    assert (inbox / "review" / "smudge.png").exists()


@pytest.mark.slow
def test_a_backlog_of_2000_files_renamed_in_at_once(folder: Path) -> None:
    config = write_e2e_config(folder)
    inbox, staging = folder / "inbox", folder / "staging"
    inbox.mkdir()
    staging.mkdir()
    scans = mnist_scans(50)
    names = [f"scan-{number:04}.png" for number in range(2000)]
    for number, name in enumerate(names):
        (staging / name).write_bytes(scans[number % 50][1])
    daemon = DaemonProcess(config)
    try:
        daemon.wait_started()
        for name in names:
            os.rename(staging / name, inbox / name)
        wait_for(lambda: len(result_rows(folder / "results.csv")) >= 2000, timeout=120, what="2000 rows")
    finally:
        assert daemon.terminate() == 0
    rows = result_rows(folder / "results.csv")
    assert sorted(row["file"] for row in rows) == names, "exactly one row per file"
    assert sorted(p.name for p in (inbox / "done").iterdir()) == names, "exactly one place per file"
    assert not (inbox / "error").exists() or not any((inbox / "error").iterdir())
    correct = sum(row["prediction"] == str(scans[int(row["file"][5:9]) % 50][0]) for row in rows)
    assert correct >= 0.97 * 2000


@pytest.mark.slow
def test_a_new_model_version_is_served_without_a_restart(folder: Path) -> None:
    models = folder / "models" / "digits"
    shutil.copytree(SHIPPED_VERSION, models / "1")
    config = write_e2e_config(folder)
    config.write_text(config.read_text().replace(str(SHIPPED_MODEL), str(models)))
    inbox = folder / "inbox"
    inbox.mkdir()
    scans = mnist_scans(2)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_started()
        drop(inbox, "before.png", scans[0][1])
        wait_for(lambda: result_rows(folder / "results.csv"), what="the first row")
        broken = models / "3"
        broken.mkdir()
        (broken / "model.tflite").write_bytes(b"half a model")
        (broken / "metadata.json").write_text("{}")
        wait_for(lambda: any(e["event"] == "model_refused" for e in daemon.events()), what="the broken version refused")
        shutil.rmtree(broken)
        shutil.copytree(SHIPPED_VERSION, models / "2")
        wait_for(lambda: any(e["event"] == "model_reloaded" for e in daemon.events()), what="version 2 loaded")
        drop(inbox, "after.png", scans[1][1])
        wait_for(lambda: len(result_rows(folder / "results.csv")) == 2, what="the second row")
    finally:
        assert daemon.terminate() == 0
    rows = {row["file"]: row for row in result_rows(folder / "results.csv")}
    assert rows["before.png"]["model"] == "digits/1"
    assert rows["after.png"]["model"] == "digits/2"
    assert rows["after.png"]["prediction"] == str(scans[1][0])


@pytest.mark.slow
def test_a_second_signal_stops_at_once_and_a_restart_finishes_the_job(folder: Path) -> None:
    config = write_e2e_config(folder)
    inbox = folder / "inbox"
    inbox.mkdir()
    names = [f"{number:03}.png" for number in range(400)]
    scans = mnist_scans(10)
    daemon = DaemonProcess(config)
    daemon.wait_started()
    for number, name in enumerate(names):
        drop(inbox, name, scans[number % 10][1])
    wait_for(lambda: result_rows(folder / "results.csv"), what="the first rows")
    daemon.process.send_signal(signal.SIGINT)
    daemon.process.send_signal(signal.SIGINT)
    assert daemon.terminate() in (0, 1)
    restarted = DaemonProcess(config, name="restarted")
    restarted.wait_started()
    wait_for(lambda: len(result_rows(folder / "results.csv")) >= len(names), what="every row after the restart")
    assert restarted.terminate() == 0
    rows = result_rows(folder / "results.csv")
    assert sorted(row["file"] for row in rows) == names
    assert sorted(p.name for p in (inbox / "done").iterdir()) == names


@pytest.mark.slow
def test_metrics_are_served_on_localhost(folder: Path) -> None:
    # Port 0: the daemon binds any free port and logs where it serves, so no two tests race for one.
    config = write_e2e_config(folder, extra="metrics:\n  port: 0\n")
    (folder / "inbox").mkdir()
    daemon = DaemonProcess(config)
    try:
        daemon.wait_started()
        [url] = [e["url"] for e in daemon.events() if e.get("event") == Event.METRICS_SERVING]
        assert isinstance(url, str) and re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*/metrics", url), url
        drop(folder / "inbox", "a.png", mnist_scans(1)[0][1])
        wait_for(lambda: result_rows(folder / "results.csv"), what="a row")

        def scrape() -> str:
            page: bytes = urllib.request.urlopen(url, timeout=5).read()
            return page.decode()

        text = wait_for(
            lambda: (page := scrape()) and 'digit_watcher_files_total{status="ok"} 1.0' in page and page,
            what="the count",
        )
    finally:
        assert daemon.terminate() == 0
    assert f'digit_watcher_model_info{{version="mnist-cnn/{SHIPPED_VERSION.name}"}} 1.0' in text
    assert "digit_watcher_latency_seconds_count 1.0" in text


@pytest.mark.slow
def test_a_metrics_port_in_use_exits_78(folder: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = write_e2e_config(folder, extra=f"metrics:\n  port: {taken.getsockname()[1]}\n")
        result = subprocess.run(
            [sys.executable, "-m", "watcher", "run", "--config", str(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 78
    assert "metrics.port: cannot listen on 127.0.0.1:" in result.stderr and "Traceback" not in result.stderr


def free_port() -> int:
    """A port that was free a moment ago, for a launcher to listen on next."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def socket_activate(port: int, *options: str) -> tuple[str, ...]:
    """systemd's launcher: it listens on 127.0.0.1:port and, at the first connection (or datagram), execs the command
    after it with the socket as fd 3, LISTEN_FDS=1 and LISTEN_PID its own pid, as a socket unit starts a service."""
    return (SOCKET_ACTIVATE, *options, "--listen", f"127.0.0.1:{port}")


@pytest.mark.slow
@pytest.mark.skipif(not sandbox.SUPPORTED, reason="the user unit's network sandbox needs root on x86_64 or aarch64")
def test_a_socket_activated_daemon_in_the_user_units_sandbox_serves_metrics_on_the_passed_socket(folder: Path) -> None:
    # As `unit --user` runs it with a metrics port: its manager listens and starts the daemon at the first scrape,
    # in a network namespace of its own and with no socket family but AF_UNIX. The config names no port.
    port = free_port()
    config = write_e2e_config(folder)
    (folder / "inbox").mkdir()
    launcher = (*socket_activate(port), sys.executable, "-m", "tests.sandbox")
    daemon = DaemonProcess(config, launcher=launcher)
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape() -> str:
        page: bytes = urllib.request.urlopen(url, timeout=60).read()  # the first waits for the daemon to start
        return page.decode()

    try:
        wait_for(lambda: f"Listening on 127.0.0.1:{port}" in daemon.output(), what="the launcher to listen")
        assert "digit_watcher_files_total" in scrape()
        daemon.wait_started()
        drop(folder / "inbox", "a.png", mnist_scans(1)[0][1])
        wait_for(lambda: 'digit_watcher_files_total{status="ok"} 1.0' in scrape(), what="the file counted")
    finally:
        assert daemon.terminate() == 0, daemon.output()
    assert [e["url"] for e in daemon.events() if e.get("event") == Event.METRICS_SERVING] == [url]
    assert [row["status"] for row in result_rows(folder / "results.csv")] == ["ok"]


def test_a_passed_socket_that_is_not_a_listening_tcp_one_exits_78(folder: Path) -> None:
    port = free_port()
    config = write_e2e_config(folder)
    command = [sys.executable, "-m", "watcher", "run", "--config", str(config)]
    with subprocess.Popen(
        [*socket_activate(port, "--datagram"), *command], cwd=ROOT, stderr=subprocess.PIPE, text=True
    ) as launched:
        assert launched.stderr is not None
        try:
            assert launched.stderr.readline().startswith(f"Listening on 127.0.0.1:{port}")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.sendto(b"start", ("127.0.0.1", port))
            returncode = launched.wait(timeout=60)
        finally:
            launched.kill()  # a daemon that took the socket and runs on must not outlive the test
        stderr = launched.stderr.read()
    assert returncode == 78
    assert [line for line in stderr.splitlines() if line.startswith("digit-watcher:")] == [
        "digit-watcher: socket activation: fd 3 is not a listening TCP socket (AF_INET SOCK_DGRAM):"
        " the socket unit needs ListenStream="
    ]
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_an_inbox_that_goes_away_is_waited_for_and_its_files_finished_once(folder: Path) -> None:
    config = write_e2e_config(folder)
    inbox, away = folder / "inbox", folder / "inbox-away"
    inbox.mkdir()
    daemon = DaemonProcess(config)
    daemon.wait_started()
    names = [f"{number:03}.png" for number in range(300)]
    for name, (_, data) in zip(names, mnist_scans(10) * 30, strict=True):
        drop(inbox, name, data)
    wait_for(lambda: result_rows(folder / "results.csv"), what="the first rows")
    # A share unmounted mid-stream, claims and batches in hand: the daemon must wait, not exit or misfile them.
    inbox.rename(away)
    wait_for(lambda: any(e["event"] == "inbox_gone" for e in daemon.events()), what="the inbox missed")
    time.sleep(1.5)
    assert daemon.process.poll() is None, daemon.output()
    away.rename(inbox)
    wait_for(lambda: any(e["event"] == "inbox_back" for e in daemon.events()), what="the inbox found again")
    drop(inbox, "after.png", mnist_scans(1)[0][1])
    wait_for(
        lambda: len(result_rows(folder / "results.csv")) == len(names) + 1, timeout=120, what="every file's one row"
    )
    assert daemon.terminate() == 0
    rows = result_rows(folder / "results.csv")
    assert sorted(row["file"] for row in rows) == sorted([*names, "after.png"])
    assert {row["status"] for row in rows} <= {"ok", "low_confidence", "no_digit"}, "none misfiled as an error"
    assert sorted(p.name for p in (inbox / "done").iterdir()) == sorted([*names, "after.png"])


@pytest.mark.skipif(not sandbox.SUPPORTED, reason="the user unit's network sandbox needs root on x86_64 or aarch64")
def test_a_metrics_port_in_the_user_units_sandbox_without_its_socket_unit_exits_78_saying_so(folder: Path) -> None:
    # The user unit installed without the socket unit its config needs: the daemon may not open the port itself.
    config = write_e2e_config(folder, extra=f"metrics:\n  port: {free_port()}\n")
    command = [sys.executable, "-m", "tests.sandbox", sys.executable, "-m", "watcher", "run", "--config", str(config)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 78
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("digit-watcher:")]
    assert line.endswith("(install the socket unit `unit --user --socket` prints)"), line
    assert "Traceback" not in result.stderr
