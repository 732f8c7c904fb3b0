"""Liveness across hosts: a free lock is proof of death on this host only; elsewhere the lease must go stale."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from watcher.ledger import claim, lease
from watcher.ledger.lease import LEASE_NAME, LEASE_S, Lease, Leases


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def unlocked_workspace(tmp_path: Path) -> claim.Workspace:
    """Another daemon's workspace whose lock this host can take, as on an NFS mount with local locks only."""
    workspace = claim.Workspace(tmp_path / ".digit-watcher", inbox=tmp_path)
    os.close(workspace._lock_fd)
    return workspace


def other_hosts_lease(folder: Path, count: int, *, boot: str = str(uuid.UUID(int=7))) -> None:
    (folder / LEASE_NAME).write_text(f"{boot} {count:020d}\n", encoding="ascii")


def is_dead(folder: Path, leases: Leases) -> bool:
    with claim.dead_workspace(folder, leases=leases) as dead:
        return dead


def test_another_hosts_daemon_is_dead_only_once_its_lease_stays_unchanged(tmp_path: Path) -> None:
    clock = Clock()
    leases = Leases(clock=clock)
    folder = unlocked_workspace(tmp_path).folder
    other_hosts_lease(folder, 1)
    assert not is_dead(folder, leases), "first seen now"
    clock.now += LEASE_S - 1
    assert not is_dead(folder, leases)
    other_hosts_lease(folder, 2)
    clock.now += 1
    assert not is_dead(folder, leases), "renewed: the wait starts again from when the new value was seen"
    clock.now += LEASE_S - 1
    assert not is_dead(folder, leases)
    clock.now += 1
    assert is_dead(folder, leases)


def test_a_daemon_of_this_boot_with_a_free_lock_is_dead_at_once(tmp_path: Path) -> None:
    folder = unlocked_workspace(tmp_path).folder
    Lease(folder, clock=Clock()).close()
    assert is_dead(folder, Leases(clock=Clock()))


def test_a_workspace_without_a_lease_is_dead_once_the_lease_time_has_passed(tmp_path: Path) -> None:
    clock = Clock()
    leases = Leases(clock=clock)
    folder = unlocked_workspace(tmp_path).folder
    (folder / LEASE_NAME).unlink()  # a workspace of a version before leases
    assert not is_dead(folder, leases)
    clock.now += LEASE_S
    assert is_dead(folder, leases)


def test_a_workspace_is_never_seen_without_its_lease(tmp_path: Path) -> None:
    workspace = claim.Workspace(tmp_path / ".digit-watcher", inbox=tmp_path)
    assert (workspace.folder / LEASE_NAME).read_text(encoding="ascii").startswith(lease.BOOT_ID)
    workspace.close()


def test_a_held_lock_is_alive_whatever_the_lease(tmp_path: Path) -> None:
    clock = Clock()
    leases = Leases(clock=clock)
    workspace = claim.Workspace(tmp_path / ".digit-watcher", inbox=tmp_path)
    other_hosts_lease(workspace.folder, 1)
    assert not is_dead(workspace.folder, leases)
    clock.now += 10 * LEASE_S
    assert not is_dead(workspace.folder, leases)
    workspace.close()


def test_the_lease_is_renewed_about_once_a_second_and_goes_with_its_workspace(tmp_path: Path) -> None:
    clock = Clock()
    workspace = claim.Workspace(tmp_path / ".digit-watcher", inbox=tmp_path)
    own = Lease(workspace.folder, clock=clock)
    first = (workspace.folder / LEASE_NAME).read_bytes()
    assert first.startswith(lease.BOOT_ID.encode())
    own.renew()
    assert (workspace.folder / LEASE_NAME).read_bytes() == first, "not written again within the second"
    clock.now += lease.RENEW_EVERY_S
    own.renew()
    assert (workspace.folder / LEASE_NAME).read_bytes() not in (first, b"")
    own.close()
    workspace.close()
    assert not workspace.folder.exists()
