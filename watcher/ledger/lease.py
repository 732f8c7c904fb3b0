"""Liveness across hosts: a lease each daemon renews, judged stale on the observer's own clock.

A workspace's `flock` proves its daemon alive only where locks are shared by every host that
mounts the inbox. They are on one host, and on GlusterFS (the brick holds them), but not on an
NFS mount with `local_lock=flock`, where another host always finds the lock free. So a daemon
also renews a lease, `<workspace>/lease`: its kernel's boot id and a counter bumped about once a
second. A workspace whose lock is free is dead at once when its lease was written under this
host's own boot (the same kernel holds the lock, so a free lock is proof), and otherwise only once
its lease has shown the same value for `LEASE_S` seconds of the observer's own clock — no
comparison of clocks across hosts, which may disagree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from watcher.ledger import coherent

LEASE_NAME = "lease"
RENEW_EVERY_S = 1.0
LEASE_S = 30.0  # longer than the longest step between two renewals (a batch of big multi-page files)
BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()


class Lease:
    """This daemon's lease in its workspace, renewed at most every `RENEW_EVERY_S`."""

    def __init__(self, folder: Path, *, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._fd = os.open(folder / LEASE_NAME, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._count = 0
        self._next = clock()
        self.renew()

    def renew(self) -> None:
        now = self.clock()
        if now < self._next:
            return
        self._next = now + RENEW_EVERY_S
        self._count += 1
        # Fixed length, rewritten in place by one write: a reader sees the old value or the new one.
        os.pwrite(self._fd, f"{BOOT_ID} {self._count:020d}\n".encode("ascii"), 0)
        # Sent to the server now, not held back in this client's write-behind cache.
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


class Leases:
    """Other workspaces' leases as this daemon saw them: each value, and when (on its clock) it first saw it."""

    def __init__(self, *, clock: Callable[[], float], lease_s: float = LEASE_S) -> None:
        self.clock = clock
        self.lease_s = lease_s
        self._seen: dict[Path, tuple[bytes, float]] = {}

    def owner_gone(self, folder: Path) -> bool:
        """Whether the daemon of a workspace whose lock was found free is gone (asked only then)."""
        value = _read(folder / LEASE_NAME)
        if value.startswith(BOOT_ID.encode("ascii")):
            return True
        now = self.clock()
        seen = self._seen.get(folder)
        if seen is None or seen[0] != value:
            self._seen[folder] = (value, now)
            return False
        return now - seen[1] >= self.lease_s

    def keep(self, folders: Iterable[Path]) -> None:
        """Forget the leases of workspaces no longer there."""
        present = set(folders)
        self._seen = {folder: seen for folder, seen in self._seen.items() if folder in present}


def _read(path: Path) -> bytes:
    """The lease as the server has it (another host renewed it a moment ago); empty when there is none yet."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return b""
    try:
        server = coherent.ServerView(fd)
        try:
            return server.read(0, 4096)
        finally:
            server.close()
    finally:
        os.close(fd)
