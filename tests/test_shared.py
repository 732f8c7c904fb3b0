"""Sharing one inbox across hosts: daemons on separate GlusterFS client mounts of one volume (tests/gluster.py)."""

from __future__ import annotations

import os

import pytest
from structlog.testing import capture_logs
from watchdog.observers.polling import PollingObserver

from tests.gluster import Shared
from watcher.intake.observe import Inbox, start_observer, stop_observer

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
