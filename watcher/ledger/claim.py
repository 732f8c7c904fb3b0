"""Claim inbox files by an atomic rename into this daemon's private, locked workspace."""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from watcher.filesystem import files_below, visible
from watcher.ledger.lease import LEASE_NAME, Lease, Leases

LOCK_NAME = "lock"


@dataclass(frozen=True)
class Claim:
    """A file this daemon alone now holds, under the name it had in the inbox (`sub/scan.png` in a subfolder,
    kept as `<claim folder>/sub/scan.png`)."""

    name: str
    path: Path
    ready_at: float

    @property
    def folder(self) -> Path:
        """The claim folder it is in."""
        return self.path.parents[self.name.count("/")]


class Workspace:
    """`<inbox>/.digit-watcher/<id>/`: a lock held for the daemon's life, claim folders, the ledger's journal.

    A workspace whose lock can be taken belongs to a daemon that died; `dead_workspaces` finds
    them so their claims can be finished or processed again.
    """

    def __init__(self, root: Path, *, inbox: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.inbox = inbox
        # 64 random bits: hosts may share a name and pid (containers all run as pid 1). Were two ids ever alike, the
        # server's atomic rename below would refuse the second (a folder holding a lock is never renamed over).
        self.id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(8)}"
        self.folder = root / self.id
        self._numbers = itertools.count(1)
        self._batch_folder: Path | None = None
        self._batch_names: set[str] = set()
        self._batch_subfolders: set[str] = set()
        # Built under a hidden name and renamed in with its lock held and its lease written, so no other daemon can
        # ever see this workspace unlocked or without a lease and take it for a dead one. Both stay open: a network
        # client may answer ESTALE for a moment to a path under a folder it has just renamed, never to an open file.
        building = root / f".{self.id}"
        building.mkdir(parents=True)
        self._lock_fd = os.open(building / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.lease = Lease(building, clock=clock)
        os.rename(building, self.folder)

    def claim(self, name: str, *, ready_at: float) -> Claim | None:
        """Take `name` from the inbox; None when it is gone (another daemon took it, or it was deleted)."""
        return self._take(self.inbox / name, name=name, ready_at=ready_at)

    def adopt(self, folder: Path, *, ready_at: float) -> list[Claim]:
        """Take over a dead daemon's claim folder whole, in one rename: its files and what was kept beside them."""
        own = self.folder / str(next(self._numbers))
        if not _renamed(folder, own):
            return []
        files = sorted(_claimed_names(own))
        if not files:
            # Only leftovers of a file already committed (its kept pages): nothing to take over.
            shutil.rmtree(own, ignore_errors=True)
        return [Claim(name=name, path=own / name, ready_at=ready_at) for name in files]

    def adopt_all(self, workspace: Path, *, ready_at: float) -> list[Claim]:
        """Take over every claim folder of a dead daemon's workspace, oldest first."""
        return [taken for folder in claim_folders(workspace) for taken in self.adopt(folder, ready_at=ready_at)]

    def new_batch(self) -> None:
        """Claims from now on go into a fresh claim folder: one mkdir and one rmdir per batch, not per file."""
        if self._batch_folder is not None and not self._batch_names:
            self._batch_folder.rmdir()
        self._batch_folder = None

    def release(self, claim: Claim) -> None:
        """Forget a claim whose file has been moved out; its folder goes with the batch's last file."""
        _remove_empty(claim.path.parent, up_to=claim.folder)

    def close(self) -> None:
        """Remove the workspace if it holds no claims; otherwise leave it for the next daemon to recover."""
        try:
            self.new_batch()
            left = set(os.listdir(self.folder))
            if left <= {LOCK_NAME, LEASE_NAME}:
                # The lock last: a workspace left without one (a crash in between) would never be recovered.
                for name in sorted(left, key=lambda name: name == LOCK_NAME):
                    os.unlink(self.folder / name)
                os.rmdir(self.folder)
        except FileNotFoundError:
            pass  # the whole inbox was removed from under the daemon
        finally:
            self.lease.close()
            os.close(self._lock_fd)

    def _take(self, source: Path, *, name: str, ready_at: float) -> Claim | None:
        subfolders = [name[:end] for end, character in enumerate(name) if character == "/"]
        clashes = name in self._batch_names or name in self._batch_subfolders or bool(self._batch_names & {*subfolders})
        # A second file of the same name in one batch gets a folder of its own; so does `a.png/b.png` after `a.png`.
        if self._batch_folder is None or clashes:
            self._batch_folder = self.folder / str(next(self._numbers))
            self._batch_folder.mkdir()
            self._batch_names, self._batch_subfolders = set(), set()
        target = self._batch_folder / name
        nested = target.parent != self._batch_folder  # from a subfolder of the inbox: kept in one of that name
        if nested:
            target.parent.mkdir(parents=True, exist_ok=True)
        if not _renamed(source, target):
            if nested:
                _remove_empty(target.parent, up_to=self._batch_folder / name.split("/")[0])
            return None
        self._batch_names.add(name)
        self._batch_subfolders.update(subfolders)
        return Claim(name=name, path=target, ready_at=ready_at)


def _renamed(source: Path, target: Path) -> bool:
    """Rename into this workspace; False when the source is gone (another daemon took it, or it was deleted).

    On NFS a rename whose reply was lost is sent again, and the retry answers ENOENT although the first one
    moved the file: the target is in this daemon's own folder, where nothing else puts a file, so finding it
    there means the rename succeeded.
    """
    try:
        os.rename(source, target)
    except FileNotFoundError:
        return os.path.lexists(target)
    return True


def _claimed_names(folder: Path) -> list[str]:
    """The files claimed in a claim folder, by their names in the inbox; not what was kept beside them (hidden)."""
    return [name for name, _ in files_below(folder, enters=visible) if visible(name)]


def _remove_empty(folder: Path, *, up_to: Path) -> None:
    """Remove `folder` and its parents up to `up_to` included, as long as they are empty."""
    while True:
        try:
            os.rmdir(folder)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                raise
            return
        if folder == up_to or not folder.is_relative_to(up_to):
            return
        folder = folder.parent


@contextmanager
def dead_workspace(folder: Path, *, leases: Leases) -> Iterator[bool]:
    """Hold a workspace's lock if its daemon is dead; yields whether it is (and so now ours).

    A free lock is not enough on its own: on some network mounts locks are local to each host
    (lease.py); the owner's lease must say it is gone too.
    """
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            yield False
            return
        yield (folder / LOCK_NAME).exists() and leases.owner_gone(folder)
    finally:
        os.close(fd)


def dead_workspaces(own: Workspace, *, leases: Leases) -> Iterator[Path]:
    """Each other workspace beside `own` whose daemon is dead, its lock held while the caller finishes what it
    left; removed once the caller goes on to the next."""
    folders = workspaces(own.root, own=own)
    leases.keep(folders)
    for folder in folders:
        with dead_workspace(folder, leases=leases) as dead:
            if dead:
                yield folder
                remove_workspace(folder)


def workspaces(root: Path, *, own: Workspace) -> list[Path]:
    """Every other daemon's workspace under `root`, dead or alive."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    return [
        Path(e.path)
        for e in entries
        if e.is_dir(follow_symlinks=False) and not e.name.startswith(".") and e.name != own.id
    ]


def claim_folders(folder: Path) -> list[Path]:
    """A workspace's claim folders, oldest first."""
    return sorted((p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def remove_workspace(folder: Path) -> None:
    """Delete a dead workspace once its claims are all finished or taken over."""
    shutil.rmtree(folder, ignore_errors=True)
