"""Notice files in the inbox and hand them out once they are completely written."""

from __future__ import annotations

import itertools
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver, EventEmitter, EventQueue, ObservedWatch
from watchdog.observers.inotify import InotifyFullEmitter, InotifyObserver, InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyConstants, Mask
from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper, PathedInotifyEvent

from watcher.filesystem import files_below, shared_filesystem
from watcher.vocabulary import Event

log = structlog.get_logger()

TEMPORARY_SUFFIXES = (".part", ".tmp")
# Twice the attribute cache of a GlusterFS FUSE client or an NFS mount with actimeo=1: a file another host is still
# writing changes within it, as this client sees it.
SHARED_SETTLE_S = 2.0
SETTLE_SLICE = 500  # files looked at in one settle pass: 0.2 s on GlusterFS, under a millisecond locally
POLL_S = 0.5  # a polling observer lists the inbox this often...
LISTING_SHARE = 1 / 3  # ...or less often, so that it spends at most a third of its time listing
SLOW_VIEW = "on a network or FUSE filesystem this client's view of a file another host writes lags by a second"


@dataclass(frozen=True)
class Arrival:
    """A file that is ready to be taken, and since when (monotonic seconds)."""

    name: str
    ready_at: float


def is_candidate(name: str, extensions: Iterable[str]) -> bool:
    """Whether a file name in the inbox is ours to pick up (by name alone)."""
    if name.startswith((".", "~")) or name.lower().endswith(TEMPORARY_SUFFIXES):
        return False
    return name.lower().endswith(tuple(extensions))


@dataclass(frozen=True)
class Scope:
    """Which files under the inbox are taken: those at its top level, and with `recursive` those in its subfolders
    too, named by their path relative to the inbox (`scanner2/scan.png`). Never those in a hidden folder (the
    daemons' workspaces are hidden) nor in the destination folders kept inside the inbox (`skipped`)."""

    folder: Path
    extensions: tuple[str, ...]
    recursive: bool = False
    skipped: frozenset[str] = frozenset()  # folders relative to the inbox: done/, error/, review/ when inside it

    @classmethod
    def of(cls, folder: Path, *, extensions: Iterable[str], recursive: bool, skipped: Iterable[Path]) -> Scope:
        inside = {os.path.relpath(path, folder) for path in skipped if path.is_relative_to(folder)}
        return cls(folder, tuple(extensions), recursive, frozenset(inside))

    def name_of(self, path: str | bytes) -> str | None:
        """The name of the file at `path` if it is in scope and ours by its name, else None."""
        relative = os.path.relpath(os.fsdecode(path), self.folder)
        head, name = os.path.split(relative)
        return relative if self.reads(head) and is_candidate(name, self.extensions) else None

    def reads(self, folder: str) -> bool:
        """Whether files in `folder` (relative to the inbox; "" for its top level) are taken."""
        if not folder:
            return True
        parts = folder.split(os.sep)
        if not self.recursive or any(part.startswith(".") or part == os.pardir for part in parts):
            return False
        return not any(os.sep.join(parts[:end]) in self.skipped for end in range(1, len(parts) + 1))

    def names(self, under: str = "") -> list[str]:
        """The candidates in the folder `under` (relative to the inbox) and, with `recursive`, in its subfolders.

        Links are never followed. A subfolder that vanishes or cannot be read while it is listed is passed over
        (the rescan tries it again); the folder `under` that cannot be listed raises OSError.
        """
        found = files_below(self.folder, enters=self.reads, under=under)
        return [name for name, entry in found if is_candidate(entry.name, self.extensions)]


class Inbox:
    """The files noticed in the inbox: settling ones, and ready ones in arrival order.

    Observer threads report names (relative to the inbox: `scope`); the worker thread takes ready arrivals. A
    file is ready when it was closed after writing, renamed in, or its size and mtime stayed unchanged for
    `settle_s` (the only sign a polling observer or a rescan can give).

    On a network or FUSE filesystem (`shared`, found from the folder unless given) another host may be
    writing the file, this client's view of its size and mtime may lag the server's by a second, and the
    writer's clock is not this one: a file is ready only once this daemon has seen it unchanged for
    SHARED_SETTLE_S at least, never because its mtime looks old.
    """

    def __init__(
        self,
        folder: Path,
        *,
        extensions: Iterable[str],
        settle_s: float,
        clock: Callable[[], float] = time.monotonic,
        shared: bool | None = None,
        recursive: bool = False,
        skipped: Iterable[Path] = (),
    ) -> None:
        self.folder = folder
        self.extensions = tuple(extensions)
        self.scope = Scope.of(folder, extensions=self.extensions, recursive=recursive, skipped=skipped)
        self.shared = _on_shared_filesystem(folder) if shared is None else shared
        self.settle_s = max(settle_s, SHARED_SETTLE_S) if self.shared else settle_s
        if self.settle_s > settle_s:
            log.info(Event.SETTLE_LENGTHENED, inbox=str(folder), settle_s=self.settle_s, reason=SLOW_VIEW)
        self.clock = clock
        self._settling: dict[str, tuple[int, int, float]] = {}
        self._ready: deque[Arrival] = deque()
        self._queued: set[str] = set()
        self._next_settle = 0.0
        self._changed = threading.Condition()

    def __len__(self) -> int:
        with self._changed:
            return len(self._ready) + len(self._settling)

    def ready(self, name: str) -> None:
        """A file known to be complete (closed after writing, or renamed in)."""
        if not is_candidate(os.path.basename(name), self.extensions):
            return
        with self._changed:
            self._settling.pop(name, None)
            self._enqueue(name)

    def changed(self, name: str) -> None:
        """A file that may still be being written: it must settle first."""
        if not is_candidate(os.path.basename(name), self.extensions):
            return
        with self._changed:
            if name in self._queued:
                return
            self._settling.setdefault(name, (-1, -1, self.clock()))

    def scan(self, under: str = "") -> int:
        """List the inbox (or its subfolder `under`) and note every candidate in it; returns how many were new."""
        new = 0
        names = self.scope.names(under)
        with self._changed:
            for name in names:
                if name not in self._queued and name not in self._settling:
                    self._settling[name] = (-1, -1, self.clock())
                    new += 1
            self._settle(force=True)
        return new

    def take(self, limit: int, *, timeout: float) -> list[Arrival]:
        """Wait up to `timeout` seconds for ready files, then return at most `limit` of them."""
        deadline = self.clock() + timeout
        with self._changed:
            while True:
                self._settle()
                if self._ready:
                    taken = [self._ready.popleft() for _ in range(min(limit, len(self._ready)))]
                    self._queued.difference_update(a.name for a in taken)
                    return taken
                remaining = deadline - self.clock()
                if remaining <= 0:
                    return []
                wait = min(remaining, self.settle_s / 4) if self._settling else remaining
                self._changed.wait(wait)

    def wake(self) -> None:
        """Make a waiting `take` return early (a signal arrived)."""
        with self._changed:
            self._changed.notify_all()

    def _enqueue(self, name: str) -> None:
        if name not in self._queued:
            self._queued.add(name)
            self._ready.append(Arrival(name, self.clock()))
            self._changed.notify_all()

    def _settle(self, *, force: bool = False) -> None:
        # Stat-ing every settling file costs O(n): do it a few times per settle period, not per call, and at most
        # SETTLE_SLICE files a call (a network filesystem answers each in a round trip), the rest in turn after.
        now = self.clock()
        if not self._settling or (now < self._next_settle and not force):
            return
        self._next_settle = now + self.settle_s / 4 if len(self._settling) <= SETTLE_SLICE else now
        for name, (size, mtime_ns, seen_at) in list(itertools.islice(self._settling.items(), SETTLE_SLICE)):
            del self._settling[name]  # put back at the end below if it has not settled: the next slice starts after it
            try:
                info = os.lstat(self.folder / name)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(info.st_mode):
                continue
            quiet_for = time.time() - info.st_mtime_ns / 1e9
            unchanged = (info.st_size, info.st_mtime_ns) == (size, mtime_ns)
            if (
                stat.S_ISLNK(info.st_mode)
                or (quiet_for >= self.settle_s and not self.shared)
                or (unchanged and now - seen_at >= self.settle_s)
            ):
                self._enqueue(name)
            else:
                self._settling[name] = (size, mtime_ns, seen_at) if unchanged else (info.st_size, info.st_mtime_ns, now)


class InboxEventHandler(FileSystemEventHandler):
    """Turns watchdog events into Inbox notes; never lets an exception reach the observer."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.scope = inbox.scope

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._note(event)
        except Exception:
            log.exception(Event.EVENT_HANDLER_FAILED, watchdog_event=repr(event))

    def _note(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            # A folder made or moved in: what it already holds raises no event of its own.
            if isinstance(event, (DirCreatedEvent, DirMovedEvent)) and self.scope.recursive:
                folder = os.path.relpath(os.fsdecode(event.dest_path or event.src_path), self.scope.folder)
                if self.scope.reads(folder):
                    self.inbox.scan(folder)
            return
        if isinstance(event, FileMovedEvent):
            name = self.scope.name_of(event.dest_path)
            if name is not None:
                self.inbox.ready(name)
            return
        name = self.scope.name_of(event.src_path)
        if name is None:
            return
        if isinstance(event, FileClosedEvent):
            self.inbox.ready(name)
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent)):
            self.inbox.changed(name)


class InboxEmitter(InotifyFullEmitter):
    """inotify, asked only for what brings a file into the inbox or finishes writing it.

    Not IN_MOVED_FROM: watchdog holds an unpaired one back for half a second, hoping to pair it,
    and every later event queues behind it, so each claim (a rename out of the inbox) would
    delay the next arrival by 0.5 s. Full events: a file renamed in from elsewhere arrives as a
    move (complete), not as a creation (maybe still being written).
    """

    def get_event_mask_from_filter(self) -> Mask:
        constants = InotifyConstants
        return Mask(
            constants.IN_CREATE
            | constants.IN_MODIFY
            | constants.IN_CLOSE_WRITE
            | constants.IN_MOVED_TO
            | constants.IN_DELETE_SELF
        )

    def __init__(self, event_queue: EventQueue, watch: ObservedWatch, *, scope: Scope, **options: Any) -> None:
        super().__init__(event_queue, watch, **options)
        self.scope = scope

    def on_thread_start(self) -> None:
        self._inotify = _InboxWatchGroup(
            self._inotify_fd,
            os.fsencode(self.watch.path),
            is_recursive=self.scope.recursive,
            event_mask=self.get_event_mask_from_filter(),
            follow_symlink=False,
            scope=self.scope,
        )


class _UnpairedMoves(InotifyMoveEventGrouper):
    """Moves reported as they come, with no search for their other half.

    watchdog searches every event still queued for a move's IN_MOVED_FROM, twice per move: O(n) per
    file in a burst of renames. The inbox never asks for IN_MOVED_FROM, so there is nothing to find.
    """

    def get_queued_moved_from_event(self, cookie: int) -> None:
        return None

    def _group_moved_to_event(self, to_event: PathedInotifyEvent) -> PathedInotifyEvent:
        return to_event


@dataclass
class _InboxWatchGroup(InotifyWatchGroup):
    """The inbox's watches: with `recursive`, on each subfolder in scope, never in done/ or a workspace, where
    every claim and move would raise events for nothing."""

    scope: Scope | None = None
    _move_event_grouper: InotifyMoveEventGrouper = field(default_factory=_UnpairedMoves, init=False)

    def _add_all_callbacks(self, path: bytes) -> None:
        assert self.scope is not None
        top = os.fsdecode(path)
        under = os.path.relpath(top, self.scope.folder)
        if path != self.path and not self.scope.reads(under):
            return
        self._add_callback(path)
        if not self.is_recursive:
            return
        for folder, subfolders, _ in os.walk(top):
            subfolders[:] = [
                name
                for name in subfolders
                if self.scope.reads(os.path.relpath(os.path.join(folder, name), self.scope.folder))
                and not os.path.islink(os.path.join(folder, name))
            ]
            for name in subfolders:
                self._add_callback(os.fsencode(os.path.join(folder, name)))


class InboxObserver(InotifyObserver):
    """The inotify observer, with the inbox's emitter."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(generate_full_events=True)
        self._emitter_class = InboxEmitter
        self._emitter_kwargs = {**self._emitter_kwargs, "scope": scope}


class ListingEmitter(EventEmitter):
    """Polls the inbox by its names alone (its scope: subfolders too when recursive): a listing every `timeout`
    seconds (longer while listing is slow), each new candidate reported as created, for the inbox to settle.

    watchdog's own polling emitter stats every file at every poll; on a network filesystem that is a round trip
    per file (26 s for 50,000 files on GlusterFS: bench/listing.py), one poll after another. A listing costs a
    few round trips per thousand names, and only the new files are looked at, by the inbox.
    """

    def __init__(
        self,
        event_queue: EventQueue,
        watch: ObservedWatch,
        *,
        scope: Scope,
        timeout: float = POLL_S,
        event_filter: list[type[FileSystemEvent]] | None = None,
    ) -> None:
        super().__init__(event_queue, watch, timeout=timeout, event_filter=event_filter)
        self.scope = scope
        self._known: set[str] = set()
        self._listing_s = 0.0

    def on_thread_start(self) -> None:
        self._known = self._names() or set()

    def queue_events(self, timeout: float) -> None:
        if self.stopped_event.wait(max(timeout, self._listing_s / LISTING_SHARE)):
            return
        started = time.monotonic()
        names = self._names()
        self._listing_s = time.monotonic() - started
        if names is None:
            return
        for name in names - self._known:
            self.queue_event(FileCreatedEvent(os.path.join(self.watch.path, name)))
        self._known = names

    def _names(self) -> set[str] | None:
        """The candidates' names now; None when the inbox cannot be listed (a share away for a moment: tried again)."""
        try:
            return set(self.scope.names())
        except OSError:
            return None


class ListingObserver(BaseObserver):
    """A polling observer for network and FUSE filesystems, with the listing emitter."""

    def __init__(self, scope: Scope, *, timeout: float = POLL_S) -> None:
        super().__init__(ListingEmitter, timeout=timeout, scope=scope)


def _on_shared_filesystem(folder: Path) -> bool:
    try:
        return shared_filesystem(folder) is not None
    except OSError:
        return False  # not there yet: `check` and the start say so


def start_observer(inbox: Inbox, *, polling: bool | Literal["auto"]) -> BaseObserver:
    """Start watching the inbox (its top level, or all its scope); the caller must check `observer_alive` now and then.

    `auto` polls where the inbox is on a network or FUSE filesystem: there inotify reports only
    this host's own changes, never a file another host drops in.
    """
    if polling == "auto":
        filesystem = shared_filesystem(inbox.folder)
        polling = filesystem is not None
        if polling:
            log.info(
                Event.POLLING_CHOSEN,
                inbox=str(inbox.folder),
                filesystem=filesystem,
                reason="inotify sees no other host's files on a network or FUSE filesystem",
            )
    observer: BaseObserver = ListingObserver(inbox.scope) if polling else InboxObserver(inbox.scope)
    observer.schedule(InboxEventHandler(inbox), os.fspath(inbox.folder), recursive=inbox.scope.recursive)
    observer.daemon = True
    observer.start()
    return observer


def observer_alive(observer: BaseObserver) -> bool:
    """Whether the observer and every emitter still run: dead ones would leave the daemon blind."""
    return observer.is_alive() and all(emitter.is_alive() for emitter in observer.emitters)


def stop_observer(observer: BaseObserver) -> None:
    observer.stop()
    observer.join(timeout=5)
