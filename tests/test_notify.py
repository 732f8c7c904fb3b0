"""The sd_notify datagrams the daemon sends, read off sockets the tests own."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog.testing

from watcher.service.notify import Notifier


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Listener:
    """The service manager's end: a datagram socket to read notifications from."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address

    def messages(self) -> list[str]:
        received = []
        while True:
            try:
                received.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return received


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        yield Listener(sock, str(path))


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"digit-watcher-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        yield Listener(sock, "@" + name)


def watched(listener: Listener, clock: FakeClock, **extra: str) -> Notifier:
    environ = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "10000000", **extra}
    return Notifier.from_environ(environ, clock=clock)


def test_ready_carries_the_latest_status(listener: Listener) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.address})
    notifier.status("starting: loading model mnist-cnn/3")
    notifier.ready()
    assert listener.messages() == [
        "STATUS=starting: loading model mnist-cnn/3",
        "READY=1\nSTATUS=starting: loading model mnist-cnn/3",
    ]


def test_status_is_one_line_sent_on_change_and_stopping_is_sent(listener: Listener) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.address})
    notifier.status("processed 12, errors 1,\nqueued 3, model mnist-cnn/3")
    notifier.status("processed 12, errors 1, queued 3, model mnist-cnn/3")
    notifier.stopping()
    assert listener.messages() == ["STATUS=processed 12, errors 1, queued 3, model mnist-cnn/3", "STOPPING=1"]


def test_abstract_socket(abstract_listener: Listener) -> None:
    Notifier.from_environ({"NOTIFY_SOCKET": abstract_listener.address}).ready()
    assert abstract_listener.messages() == ["READY=1"]


def test_watchdog_pings_only_when_progress_is_reported_after_half_the_timeout(listener: Listener) -> None:
    clock = FakeClock()
    notifier = watched(listener, clock)
    assert notifier.ping_interval == 5.0
    notifier.ready()
    assert listener.messages() == ["READY=1\nWATCHDOG=1"]

    clock.now += 4.9
    notifier.progress()
    assert listener.messages() == []

    clock.now += 0.1
    notifier.progress()
    notifier.progress()
    assert listener.messages() == ["WATCHDOG=1"]

    # A hung worker reports no progress, so however much time passes, no ping goes out.
    clock.now += 60
    assert listener.messages() == []
    notifier.progress()
    assert listener.messages() == ["WATCHDOG=1"]


def test_watchdog_for_another_process_is_not_fed(listener: Listener) -> None:
    clock = FakeClock()
    notifier = watched(listener, clock, WATCHDOG_PID=str(os.getpid() + 1))
    assert notifier.ping_interval is None
    clock.now += 60
    notifier.progress()
    assert listener.messages() == []


def test_watchdog_pid_naming_this_process_is_fed(listener: Listener) -> None:
    clock = FakeClock()
    notifier = watched(listener, clock, WATCHDOG_PID=str(os.getpid()))
    clock.now += 5
    notifier.progress()
    assert listener.messages() == ["WATCHDOG=1"]


@pytest.mark.parametrize("usec", ["", "0", "soon"])
def test_no_watchdog_without_a_usable_timeout(listener: Listener, usec: str) -> None:
    assert watched(listener, FakeClock(), WATCHDOG_USEC=usec).ping_interval is None


def test_outside_systemd_everything_is_a_no_op() -> None:
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "10000000"})
    assert notifier.ping_interval is None
    notifier.ready()
    notifier.status("idle")
    notifier.progress()
    notifier.stopping()


def test_a_vanished_socket_is_logged_once_and_never_raised(tmp_path: Path) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with structlog.testing.capture_logs() as logs:
        notifier.ready()
        notifier.status("idle")
        notifier.stopping()
    assert [entry["event"] for entry in logs] == ["notify_failed"]
