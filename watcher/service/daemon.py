"""The worker loop: take ready files in micro-batches, classify them, record rows, place files."""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import NamedTuple, TypeVar

import structlog
from watchdog.observers.api import BaseObserver

from watcher.forms.sheet import form_row, form_sheet
from watcher.forms.template import Template
from watcher.intake.observe import Inbox, observer_alive, start_observer, stop_observer
from watcher.ledger.claim import Claim
from watcher.ledger.ledger import Folders, Ledger, Processed
from watcher.ledger.record import Reading, Sheet, timestamp
from watcher.model.classify import Classifier
from watcher.model.reload import ModelReloader
from watcher.recognise import PAGES_PER_TASK, PageRun, Prepared, Preparer, PrepareTask, prepare, read
from watcher.service import config as configuration
from watcher.service import logs
from watcher.service.config import Config
from watcher.service.hooks import Courier
from watcher.service.metrics import Metrics
from watcher.service.notify import Notifier
from watcher.vocabulary import Event, ExitCode, Status

log = structlog.get_logger()

IDLE_WAKE_S = 1.0
STATUS_EVERY_S = 1.0
FIRST_RETRY_S = 0.5
LONGEST_RETRY_S = 30.0
BATCHES_AHEAD = 2  # batches the workers may be reading while the oldest one in hand is committed
PART_PER_WORKER = 4  # pages a worker reads of a batch's part: the model reads each part while the workers read on
FIRST_PAGES_ALONE = 1  # pages read first of a file taken with workers to spare, to learn how its pages are shared
RUNS_AHEAD_PER_WORKER = 4  # runs of one file's pages in flight at once, per worker: what is read ahead stays bounded
# glibc's malloc, in the workers: a page's arrays (a few MB each, tens of MB in all) come from the heap and stay there
# for the next page's, where by default glibc hands them back to the kernel and faults them in afresh, zeroed, page
# after page: a third of a worker's CPU on A4 sheets. Larger buffers (a 600-dpi page's) are still mapped and unmapped.
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


T = TypeVar("T")


class Task(NamedTuple):
    """A run of a claimed file's pages to read: from `first_page` on, `pages` of them at most."""

    claim: Claim
    first_page: int
    pages: int


@dataclass
class Paging:
    """Where the reading of a claimed file's pages stands, while runs of them are read by several workers at once.

    Runs come back in the order they were handed out (the queue, the batches and their parts are first in, first
    out), and a run's pages are kept only when it starts where the kept pages end. A run that stopped short (a page
    that timed out, or whose worker was killed, ends it) leaves a gap: the runs handed out after it are dropped as
    they come back, and its pages from the gap on handed out again. So each page is kept once, in page order.
    """

    front: int  # the first page not kept yet: a run is kept only if it starts here
    handed: int  # the first page not handed out yet
    in_flight: int = 1  # runs handed out and not back yet, dropped ones included
    page_count: int = 0  # known once a run is back


def page_runs(first: int, last: int, *, workers: int, most: int) -> list[tuple[int, int]]:
    """Runs (first page, pages) covering pages `first` to `last` for the workers to read at once, at most `most` of
    them: PAGES_PER_TASK pages at most each, their count a multiple of the workers and their pages shared evenly, so
    that no worker is left idle while another reads the file's last pages. With more pages than `most` full runs
    hold, `most` full runs."""
    left = last - first + 1
    if left <= 0 or most <= 0:
        return []
    full_runs = -(-left // PAGES_PER_TASK)
    count = min(left, -(-full_runs // workers) * workers)
    if count > most:
        starts = range(first, min(last + 1, first + most * PAGES_PER_TASK), PAGES_PER_TASK)
        return [(start, min(PAGES_PER_TASK, last - start + 1)) for start in starts]
    size, extra = divmod(left, count)
    runs, start = [], first
    for index in range(count):
        pages = size + (index < extra)
        runs.append((start, pages))
        start += pages
    return runs


def batch_parts(tasks: list[Task], *, pages: int) -> list[list[Task]]:
    """The batch's tasks cut, in order, into parts of about `pages` pages each. A file's run from its first page counts
    as one page (most files have one, and a backlog's model calls stay full); a later run as its pages, so that a lone
    file's runs are classified as they are read, not all after its last."""
    parts: list[list[Task]] = [[]]
    held = 0
    for task in tasks:
        weight = task.pages if task.first_page > 1 else 1
        if parts[-1] and held + weight > pages:
            parts.append([])
            held = 0
        parts[-1].append(task)
        held += weight
    return parts


class InboxAway(Exception):
    """A ledger step failed because the inbox went away (a share unmounted): retrying it cannot help."""


@dataclass(frozen=True)
class InHand:
    """A batch of tasks whose files the workers are reading, handed to them in parts, in order: each part is
    classified as soon as it is read, so the model is not left waiting for the last file of the batch, nor the
    workers for the model (a backlog of pages is a few batches, each of many seconds of reading)."""

    tasks: list[Task]
    parts: list[Callable[[], list[Prepared]]]

    def prepared(self) -> Iterator[list[Prepared]]:
        """Each part's files as the workers read them, waiting for each in turn."""
        return (part() for part in self.parts)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """Owns the inbox, the workspace and the served model; `run` is the whole life of the daemon."""

    def __init__(
        self,
        config: Config,
        classifier: Classifier,
        *,
        templates: tuple[Template, ...] = (),
        notifier: Notifier,
        metrics: Metrics,
        reloader: ModelReloader | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.classifier = classifier
        self.templates = {template.name: template for template in templates}
        self.notifier = notifier
        self.metrics = metrics
        self.reloader = reloader
        self.clock = clock
        self.now = now
        self.inbox = Inbox(
            config.paths.inbox,
            extensions=config.watch.extensions,
            settle_s=config.watch.settle_ms / 1000,
            clock=clock,
            recursive=config.watch.recursive,
            skipped=config.written_in_inbox,
        )
        self.counts: Counter[str] = Counter()
        self.observer: BaseObserver | None = None
        self.courier: Courier | None = None
        self.ledger: Ledger
        self.preparer: Preparer
        # Read before new arrivals: files taken over from dead daemons, and the next pages of files in hand.
        self._waiting: deque[Task] = deque()
        self._paging: dict[Claim, Paging] = {}  # each claimed file not committed yet
        self._in_hand: deque[InHand] = deque()
        self._stopping = False
        self._workspace_lost = False
        self._hangup = False
        self._next_rescan = 0.0
        self._next_status = 0.0

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand and return (safe to call from a signal handler)."""
        self._stopping = True
        self.inbox.wake()

    def hangup(self) -> None:
        """Ask the loop to re-read the config and look for a new model version (SIGHUP)."""
        self._hangup = True
        self.inbox.wake()

    def run(self, *, once: bool = False, progress: Callable[[int], object] | None = None) -> int:
        """Process files until stopped (or, with `once`, until the inbox is empty); returns the exit code."""
        with ExitStack() as running:
            self._start(running, once=once)
            code = self._serve(once=once, progress=progress)
            if code == ExitCode.OK:
                self._drain(progress=progress)
            return code

    def _start(self, running: ExitStack, *, once: bool) -> None:
        """Open the ledger (recovering what dead daemons left), start the workers and the watcher, say ready."""
        paths = self.config.paths
        self._open_ledger()
        # The ledger and the watcher of the moment: a share that comes back gets new ones (_resume).
        running.callback(lambda: self.ledger.close())
        # The workers are spawned with this environment; settings of the user's own are kept.
        for name, value in WORKER_MALLOC.items():
            os.environ.setdefault(name, value)
        self.preparer = Preparer(self._prepare_task(), page_timeout_s=self.config.limits.page_timeout_s)
        running.callback(self.preparer.close)
        if self.config.hooks.on:
            self.courier = Courier(
                self.config.hooks, work=self.config.work, root=self.config.root, metrics=self.metrics, clock=self.clock
            )
            self.courier.start()
            # With --once, what this run committed is handed on before it exits, unless the hook fails.
            running.callback(partial(self.courier.close, finish=once))
        if not once:
            self.observer = start_observer(self.inbox, polling=self.config.watch.polling)
            running.callback(lambda: stop_observer(self.observer) if self.observer is not None else None)
        self._scan()
        self._next_rescan = self.clock() + self.config.watch.rescan_s
        self.metrics.model_version(self.classifier.version)
        self.notifier.ready()
        log.info(
            Event.STARTED,
            config=str(self.config.source),
            inbox=str(paths.inbox),
            done=str(paths.done),
            error=str(paths.error),
            review=str(paths.review) if paths.review else None,
            results=str(paths.results),
            hook_url=self.config.hooks.endpoint if self.config.hooks.url is not None else None,
            # The program alone: its arguments may hold a password.
            hook_command=self.config.hooks.command[0] if self.config.hooks.command else None,
            model=self.classifier.version,
            queued=len(self.inbox) + len(self._waiting),
            once=once,
        )

    def _prepare_task(self) -> PrepareTask:
        """What the workers do with a file: its pages decoded and their writing found, cut into digits only when
        the served model has no sequence reader to read numbers whole."""
        return partial(
            prepare,
            limits=self.config.limits,
            mode=self.config.recognition.mode,
            pdf_dpi=self.config.recognition.pdf_dpi,
            pictures=self.config.paths.review is not None,
            templates=tuple(self.templates.values()),
            cut=self.classifier.reader is None,
        )

    def _serve(self, *, once: bool, progress: Callable[[int], object] | None) -> ExitCode:
        """Take, read and commit batches until stopped, or with `once` until nothing is left."""
        while not self._stopping:
            if self._workspace_lost or not self.config.paths.inbox.is_dir():
                self._await_inbox()
                continue
            if self.observer is not None and not observer_alive(self.observer):
                log.error(Event.OBSERVER_DIED, detail="the folder watcher stopped; exiting rather than running blind")
                return ExitCode.FAILURE
            if self.courier is not None and not self.courier.alive:
                log.error(Event.HOOK_COURIER_DIED, detail="the hook's courier stopped; exiting, for a restart to go on")
                return ExitCode.FAILURE
            self._housekeeping()
            tasks = self._next_batch(once=once, busy=bool(self._in_hand))
            if tasks:
                parts = [
                    self.preparer.submit([PageRun(t.claim.path, t.claim.name, t.first_page, t.pages) for t in part])
                    for part in batch_parts(tasks, pages=PART_PER_WORKER * self.preparer.workers)
                ]
                self._in_hand.append(InHand(tasks, parts))
            # The workers read the next batches while the oldest is classified and committed, so they are never
            # idle while this process waits on the disk; with nothing more to take, the oldest is finished at once.
            if self._in_hand and (len(self._in_hand) > BATCHES_AHEAD or not tasks):
                self._finish(self._in_hand.popleft(), progress=progress)
            if not self._in_hand and once and not len(self.inbox) and not self._waiting:
                break
        return ExitCode.OK

    def _open_ledger(self) -> None:
        """A ledger with a new workspace, having recovered what dead daemons left (queued to be read first)."""
        paths = self.config.paths
        self.ledger = Ledger(
            results=paths.results,
            folders=Folders(done=paths.done, error=paths.error, review=paths.review),
            inbox=paths.inbox,
            work=self.config.work,
            shown_from=self.config.root,
            clock=self.clock,
            now=self.now,
            outbox=self.config.outbox,
        )
        self._take_over(self.ledger.start())

    def _renew(self) -> None:
        """Renew the lease; one that cannot be written means the workspace is on a share that went away (and
        maybe came back, a new mount, where this daemon's lock and lease are lost): it must be opened afresh."""
        try:
            self.ledger.renew()
        except OSError as exc:
            if not self._workspace_lost:
                log.warning(Event.WORKSPACE_LOST, error=f"{exc.strerror or exc}", workspace=str(self.ledger.work))
            self._workspace_lost = True

    def _await_inbox(self) -> None:
        """Wait for an inbox that went away (a share unmounted, a disk gone) to come back, then resume (at once when
        only the workspace was lost)."""
        inbox = self.config.paths.inbox
        if not inbox.is_dir():
            log.warning(Event.INBOX_GONE, inbox=str(inbox), detail="waiting for it to come back")
            self.notifier.status(f"waiting for the inbox {inbox} to come back")
        while not self._stopping and not inbox.is_dir():
            self.notifier.progress()
            self.inbox.take(0, timeout=IDLE_WAKE_S)
        if not self._stopping:
            self._workspace_lost = False
            self._resume()
            log.info(Event.INBOX_BACK, inbox=str(inbox), files_taken_over=len(self._waiting))

    def _resume(self) -> None:
        """Start afresh on an inbox that came back: a remount is a new filesystem, where this daemon's lock, lease
        and watch were lost. Its claims are in its old workspace, which the new ledger recovers as a dead one's."""
        for batch in self._in_hand:
            for part in batch.parts:
                part()  # read while the inbox was away: read again, from the workspace they are taken over in
        self._in_hand.clear()
        self._waiting.clear()
        self._paging.clear()
        with contextlib.suppress(OSError):
            self.ledger.close()
        self._open_ledger()
        if self.observer is not None:
            stop_observer(self.observer)
            self.observer = start_observer(self.inbox, polling=self.config.watch.polling)
        self._scan()

    def _scan(self) -> int:
        """List the inbox for files the watcher did not report; returns how many were new. An inbox that goes
        away while it is listed is not an error here: the loop sees it gone and waits for it to come back."""
        try:
            return self.inbox.scan()
        except OSError:
            if self.config.paths.inbox.is_dir():
                raise
            return 0

    def _drain(self, *, progress: Callable[[int], object] | None) -> None:
        """Finish every batch in hand: rows written and files moved, nothing new taken."""
        if self._stopping:
            self.notifier.stopping()
            log.info(
                Event.STOPPING,
                processed=sum(self.counts.values()),
                finishing=sum(len(batch.tasks) for batch in self._in_hand),
            )
        while self._in_hand:
            self._finish(self._in_hand.popleft(), progress=progress)

    def _next_batch(self, *, once: bool, busy: bool) -> list[Task]:
        """Claim the next batch: what is ready now, waiting only when idle (nothing in hand)."""
        limit = self.config.batch.max_size
        self.ledger.new_batch()
        tasks = [self._waiting.popleft() for _ in range(min(limit, len(self._waiting)))]
        wait = 0.0 if tasks or busy else self._idle_wait(once=once)
        arrivals = self.inbox.take(limit - len(tasks), timeout=wait)
        if len(arrivals) > 1:
            # Files arriving together wait a moment for the rest of their burst, to share one model call;
            # a lone file is read at once.
            deadline = arrivals[0].ready_at + self.config.batch.max_wait_ms / 1000
            while len(tasks) + len(arrivals) < limit and not self._stopping and (left := deadline - self.clock()) > 0:
                more = self.inbox.take(limit - len(tasks) - len(arrivals), timeout=left)
                if not more:
                    break
                arrivals.extend(more)
        claimed = [
            taken
            for arrival in arrivals
            if (taken := self.ledger.claim(arrival.name, ready_at=arrival.ready_at)) is not None
        ]
        # With workers to spare, a file's first page is read alone: its page count is then known, and its other pages
        # are shared among all the workers (_hand_out). A single image is read whole either way.
        spare = len(tasks) + len(claimed) < self.preparer.workers
        tasks += [self._first_run(taken, 1, FIRST_PAGES_ALONE if spare else PAGES_PER_TASK) for taken in claimed]
        return tasks

    def _take_over(self, claims: Iterable[Claim]) -> None:
        """Queue files taken over from dead daemons, each from its first page not kept yet."""
        self._waiting.extend(self._first_run(taken, self.ledger.next_page(taken), PAGES_PER_TASK) for taken in claims)

    def _first_run(self, claimed: Claim, first_page: int, pages: int) -> Task:
        """The first run of a claimed file's pages to read, before its page count is known."""
        self._paging[claimed] = Paging(front=first_page, handed=first_page + pages)
        return Task(claimed, first_page, pages)

    def _hand_out(self, claimed: Claim) -> None:
        """Queue the next runs of a file's pages, up to RUNS_AHEAD_PER_WORKER for each worker in flight at once."""
        paging = self._paging[claimed]
        workers = self.preparer.workers
        most = RUNS_AHEAD_PER_WORKER * workers - paging.in_flight
        runs = page_runs(paging.handed, paging.page_count, workers=workers, most=most)
        self._waiting.extend(Task(claimed, first, pages) for first, pages in runs)
        paging.in_flight += len(runs)
        paging.handed += sum(pages for _, pages in runs)

    def _idle_wait(self, *, once: bool) -> float:
        if once:
            return self.config.watch.settle_ms / 1000
        waits = [IDLE_WAKE_S, max(0.0, self._next_rescan - self.clock())]
        if self.notifier.ping_interval is not None:
            waits.append(self.notifier.ping_interval)
        return min(waits)

    def _finish(self, batch_in_hand: InHand, *, progress: Callable[[int], object] | None) -> None:
        """Classify a batch the workers have read; commit the files read to their last page, keep the others' pages.

        While the inbox is away nothing can be committed (the journal is in the workspace, inside it): the batch's
        claims stay there, for the ledger opened once the inbox is back to take over, journal and all (_resume).
        """
        try:
            self._commit_batch(batch_in_hand, progress=progress)
        except InboxAway:
            self._workspace_lost = True

    def _commit_batch(self, batch_in_hand: InHand, *, progress: Callable[[int], object] | None) -> None:
        review_below = self.config.review.threshold if self.config.paths.review is not None else None
        prepared: list[Prepared] = []
        read_all: list[list[Reading]] = []
        for part in batch_in_hand.prepared():
            prepared += part
            read_all += read(part, self.classifier, review_below=review_below, templates=self.templates)
        tasks = batch_in_hand.tasks
        finished: list[Processed] = []
        for task, item, readings in zip(tasks, prepared, read_all, strict=True):
            done = self._finished_or_kept(task, item, readings)
            if done is not None:
                finished.append(done)
        for claimed in dict.fromkeys(task.claim for task in tasks):
            if claimed in self._paging:
                self._hand_out(claimed)
        recorded = (
            self._retrying(partial(self.ledger.commit, finished, model=self.classifier.version)) if finished else []
        )
        if recorded and self.courier is not None:
            self.courier.wake()
        for entry in recorded:
            reading = entry.reading
            self.counts[reading.status] += 1
            log.info(
                Event.FILE_PROCESSED,
                file=entry.file,
                page=reading.page,
                status=reading.status,
                prediction=reading.prediction,
                confidence=reading.confidence,
                latency_ms=round(entry.latency_s * 1000, 1),
                moved_to=entry.moved_to,
                detail=reading.detail or None,
            )
        self.metrics.batch_done(
            statuses=[entry.reading.status for entry in recorded],
            latencies_s=[entry.latency_s for entry in recorded],
            now=time.time(),
        )
        self.notifier.progress()
        if progress is not None:
            progress(len(finished))

    def _finished_or_kept(self, task: Task, item: Prepared, readings: Sequence[Reading]) -> Processed | None:
        """A file read to its last page, or that could not be read, as it is to be committed; None for one with pages
        still to read (the run's pages kept, if it starts where the kept pages end), or for a run dropped."""
        paging = self._paging.get(task.claim)
        if paging is not None:
            paging.in_flight -= 1
        if paging is None or task.first_page != paging.front:
            # Its file was committed (an earlier run could not open it), or an earlier run stopped short: these pages
            # are read again after the gap (Paging).
            return None
        last_page = readings[-1].page if item.pages else task.first_page - 1
        pictures = _pictures_to_review(item, readings)
        form_rows = self._form_rows(task.claim.name, item, readings)
        if item.error and task.first_page > 1:
            # Its first pages are kept: they are committed, with the reason the rest could not be read.
            cut_short = f"{item.error}; pages from {task.first_page} on were not read"
            lost = Reading(status=Status.ERROR, detail=cut_short, page=task.first_page)
            del self._paging[task.claim]
            return Processed(task.claim, item.sha256, (lost,), paged=True)
        if item.error or last_page >= item.page_count:
            paged = item.page_count > 1 and not item.error
            del self._paging[task.claim]
            return Processed(task.claim, item.sha256, readings, form_rows, paged=paged, pictures=pictures)
        self._retrying(partial(self.ledger.keep_pages, task.claim, readings, pictures, form_rows))
        paging.front, paging.page_count = last_page + 1, item.page_count
        if last_page < task.first_page + task.pages - 1:
            paging.handed = paging.front  # stopped short: the runs in flight after it are dropped as they come back
        log.info(
            Event.PAGES_KEPT,
            file=task.claim.name,
            pages=f"{task.first_page}-{last_page}",
            page_count=item.page_count,
            worker=item.worker,
            unsure=[r.page for r in readings if r.status == Status.LOW_CONFIDENCE] or None,
            errors=[r.page for r in readings if r.status == Status.ERROR] or None,
        )
        return None

    def _form_rows(self, file: str, item: Prepared, readings: Sequence[Reading]) -> list[tuple[Sheet, list[str]]]:
        """forms/NAME.csv rows for the form pages whose fields are all final (none waits for a person)."""
        rows = []
        for page in item.pages:
            fields = [reading for reading in readings if reading.page == page.number and reading.field]
            if page.alignment is None or any(reading.status == Status.LOW_CONFIDENCE for reading in fields):
                continue
            template = self.templates[page.form]
            cells = form_row(
                file=file,
                page=page.number,
                values=[reading.prediction for reading in fields],
                status=str(Status.OK),
                detail="",
                fit=page.alignment,
                time=timestamp(self.now()),
                sha256=item.sha256,
            )
            rows.append((form_sheet(template, self.config.forms_folder), cells))
        return rows

    def _retrying(self, step: Callable[[], T]) -> T:
        """Run a ledger step, retrying with backoff while the machine is at fault (disk full, folder not writable)."""
        delay = FIRST_RETRY_S
        while True:
            try:
                return step()
            except OSError as exc:
                if not self.config.paths.inbox.is_dir():
                    raise InboxAway from exc
                log.warning(
                    Event.COMMIT_FAILED,
                    error=f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
                    retry_in_s=delay,
                )
            deadline = self.clock() + delay
            while self.clock() < deadline:
                self.notifier.progress()
                self._renew()
                self.inbox.take(0, timeout=min(deadline - self.clock(), IDLE_WAKE_S))
            delay = min(delay * 2, LONGEST_RETRY_S)

    def _housekeeping(self) -> None:
        now = self.clock()
        self._renew()
        hangup, self._hangup = self._hangup, False
        if hangup:
            self._reread_config()
        if self.reloader is not None:
            fresh = self.reloader.poll(force=hangup)
            if fresh is not None:
                self.classifier = fresh
                self.metrics.model_version(fresh.version)
                # Files already with the workers are read as they were found; the next ones as this model reads.
                self.preparer.task = self._prepare_task()
        if now >= self._next_rescan:
            self._next_rescan = now + self.config.watch.rescan_s
            found = self._scan()
            if found:
                log.info(Event.RESCAN_FOUND, files=found)
            self._take_over(self.ledger.recover())
        if now >= self._next_status:
            self._next_status = now + STATUS_EVERY_S
            queued = len(self.inbox) + len(self._waiting)
            self.metrics.queue_depth(queued)
            self.notifier.status(
                f"processed {sum(self.counts.values())}, errors {self.counts['error']}, "
                f"queued {queued}, model {self.classifier.version}"
            )
        self.notifier.progress()

    def _reread_config(self) -> None:
        try:
            fresh = configuration.load(self.config.source)
        except configuration.ConfigError as exc:
            log.warning(Event.CONFIG_REFUSED, detail=str(exc))
            return
        needs_restart = [
            name
            for name in ("paths", "watch", "metrics", "limits", "recognition", "forms", "hooks")
            if getattr(fresh, name) != getattr(self.config, name)
        ]
        if needs_restart:
            log.warning(Event.CONFIG_NEEDS_RESTART, sections=needs_restart)
            return
        self.config = fresh
        # Logged before the new log section applies, so the reload is seen even when it raises the level.
        log.info(
            Event.CONFIG_RELOADED, config=str(fresh.source), log_format=fresh.log.format, log_level=fresh.log.level
        )
        logs.configure(format=fresh.log.format, level=fresh.log.level)


def _pictures_to_review(prepared: Prepared, readings: Sequence[Reading]) -> dict[int, bytes]:
    """The pictures of the pages that wait for a person; the others are dropped here."""
    pictures = {page.number: page.picture for page in prepared.pages if page.picture}
    return {r.page: pictures[r.page] for r in readings if r.status == Status.LOW_CONFIDENCE and r.page in pictures}
