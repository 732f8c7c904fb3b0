"""The worker loop: take ready files in micro-batches, classify them, record rows, place files."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial

import structlog
from watchdog.observers.api import BaseObserver

from watcher.ledger import claim, commit, record
from watcher.service import config as configuration
from watcher.model.classify import Classifier
from watcher.service.config import Config
from watcher.service.metrics import Metrics
from watcher.service.notify import Notifier
from watcher.intake.observe import Inbox, observer_alive, start_observer, stop_observer
from watcher.recognise import Prepared, Preparer, prepare, read
from watcher.model.reload import ModelReloader

log = structlog.get_logger()

IDLE_WAKE_S = 1.0
STATUS_EVERY_S = 1.0
FIRST_RETRY_S = 0.5
LONGEST_RETRY_S = 30.0
BATCHES_AHEAD = 2  # batches the workers may be reading while the oldest one in hand is committed


@dataclass(frozen=True)
class InHand:
    """A claimed batch whose files the workers are reading."""

    claims: list[claim.Claim]
    prepared: Callable[[], list[Prepared]]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Daemon:
    """Owns the inbox, the workspace and the served model; `run` is the whole life of the daemon."""

    def __init__(
        self,
        config: Config,
        classifier: Classifier,
        *,
        notifier: Notifier,
        metrics: Metrics,
        reloader: ModelReloader | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.classifier = classifier
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
        )
        self.counts: Counter[str] = Counter()
        self.observer: BaseObserver | None = None
        self._adopted: deque[claim.Claim] = deque()
        self._stopping = False
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

    def run(self, *, once: bool = False, progress: Callable[[int], None] | None = None) -> int:
        """Process files until stopped (or, with `once`, until the inbox is empty); returns the exit code."""
        workspace = claim.Workspace(self.config.work, inbox=self.config.paths.inbox)
        self.preparer = Preparer(partial(prepare, limits=self.config.limits, mode=self.config.recognition.mode))
        try:
            self._recover(workspace)
            with record.locked(self.config.paths.results) as results:
                cut = results.repair_torn_line()
            if cut:
                log.warning("results_repaired", file=str(self.config.paths.results), bytes_cut=cut)
            if not once:
                self.observer = start_observer(self.inbox, polling=self.config.watch.polling)
            self.inbox.scan()
            self._next_rescan = self.clock() + self.config.watch.rescan_s
            self.metrics.model_version(self.classifier.version)
            self.notifier.ready()
            log.info(
                "started",
                config=str(self.config.source),
                inbox=str(self.config.paths.inbox),
                done=str(self.config.paths.done),
                error=str(self.config.paths.error),
                review=str(self.config.paths.review) if self.config.paths.review else None,
                results=str(self.config.paths.results),
                model=self.classifier.version,
                queued=len(self.inbox) + len(self._adopted),
                once=once,
            )
            in_hand: deque[InHand] = deque()
            while not self._stopping:
                if not self.config.paths.inbox.is_dir():
                    log.error("inbox_gone", inbox=str(self.config.paths.inbox))
                    return 1
                if self.observer is not None and not observer_alive(self.observer):
                    log.error("observer_died", detail="the folder watcher stopped; exiting rather than running blind")
                    return 1
                self._housekeeping(workspace)
                claims = self._next_batch(workspace, once=once, busy=bool(in_hand))
                if claims:
                    in_hand.append(InHand(claims, self.preparer.submit([c.path for c in claims], [c.name for c in claims])))
                # The workers read the next batches while the oldest is classified and committed, so they are never
                # idle while this process waits on the disk; with nothing more to take, the oldest is finished at once.
                if in_hand and (len(in_hand) > BATCHES_AHEAD or not claims):
                    self._finish(in_hand.popleft(), workspace, progress=progress)
                if not in_hand and once and not len(self.inbox) and not self._adopted:
                    break
            if self._stopping:
                self.notifier.stopping()
                log.info("stopping", processed=sum(self.counts.values()), finishing=sum(len(batch.claims) for batch in in_hand))
            while in_hand:
                self._finish(in_hand.popleft(), workspace, progress=progress)
            return 0
        finally:
            if self.observer is not None:
                stop_observer(self.observer)
            self.preparer.close()
            workspace.close()

    def _next_batch(self, workspace: claim.Workspace, *, once: bool, busy: bool) -> list[claim.Claim]:
        """Claim the next batch: what is ready now, waiting only when idle (nothing in hand)."""
        limit = self.config.batch.max_size
        workspace.new_batch()
        claims = [self._adopted.popleft() for _ in range(min(limit, len(self._adopted)))]
        wait = 0.0 if claims or busy else self._idle_wait(once=once)
        arrivals = self.inbox.take(limit - len(claims), timeout=wait)
        if len(arrivals) > 1:
            # Files arriving together wait a moment for the rest of their burst, to share one model call;
            # a lone file is read at once.
            deadline = arrivals[0].ready_at + self.config.batch.max_wait_ms / 1000
            while len(claims) + len(arrivals) < limit and not self._stopping and (left := deadline - self.clock()) > 0:
                more = self.inbox.take(limit - len(claims) - len(arrivals), timeout=left)
                if not more:
                    break
                arrivals.extend(more)
        for arrival in arrivals:
            taken = workspace.claim(arrival.name, ready_at=arrival.ready_at)
            if taken is not None:
                claims.append(taken)
        return claims

    def _idle_wait(self, *, once: bool) -> float:
        if once:
            return self.config.watch.settle_ms / 1000
        waits = [IDLE_WAKE_S, max(0.0, self._next_rescan - self.clock())]
        if self.notifier.ping_interval is not None:
            waits.append(self.notifier.ping_interval)
        return min(waits)

    def _finish(self, batch_in_hand: InHand, workspace: claim.Workspace, *, progress: Callable[[int], None] | None) -> None:
        """Classify a batch the workers have read, record its rows and place its files."""
        claims, prepared = batch_in_hand.claims, batch_in_hand.prepared()
        review_below = self.config.review.threshold if self.config.paths.review is not None else None
        readings = read(prepared, self.classifier, review_below=review_below)
        batch = [commit.Processed(claim=c, sha256=p.sha256, reading=r) for c, p, r in zip(claims, prepared, readings)]
        rows = self._commit(batch, workspace)
        for row in rows:
            self.counts[row.status] += 1
            log.info(
                "file_processed",
                file=row.file,
                status=row.status,
                prediction=row.prediction,
                confidence=row.confidence,
                latency_ms=float(row.latency_ms),
                moved_to=row.moved_to,
                detail=row.detail or None,
            )
        self.metrics.batch_done(
            statuses=[row.status for row in rows],
            latencies_s=[float(row.latency_ms) / 1000 for row in rows],
            now=time.time(),
        )
        self.notifier.progress()
        if progress is not None:
            progress(len(rows))

    def _commit(self, batch: Sequence[commit.Processed], workspace: claim.Workspace) -> list[record.Row]:
        """Commit, retrying with backoff while the machine is at fault (disk full, folder not writable)."""
        delay = FIRST_RETRY_S
        while True:
            try:
                if workspace.journal.exists():
                    return commit.replay(workspace.journal)
                return commit.commit(
                    batch, config=self.config, workspace=workspace, model=self.classifier.version, now=self.now, clock=self.clock
                )
            except OSError as exc:
                log.warning("commit_failed", error=f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), retry_in_s=delay)
            deadline = self.clock() + delay
            while self.clock() < deadline:
                self.notifier.progress()
                self.inbox.take(0, timeout=min(deadline - self.clock(), IDLE_WAKE_S))
            delay = min(delay * 2, LONGEST_RETRY_S)

    def _housekeeping(self, workspace: claim.Workspace) -> None:
        now = self.clock()
        hangup, self._hangup = self._hangup, False
        if hangup:
            self._reread_config()
        if self.reloader is not None:
            fresh = self.reloader.poll(force=hangup)
            if fresh is not None:
                self.classifier = fresh
                self.metrics.model_version(fresh.version)
        if now >= self._next_rescan:
            self._next_rescan = now + self.config.watch.rescan_s
            found = self.inbox.scan()
            if found:
                log.info("rescan_found", files=found)
            self._recover(workspace)
        if now >= self._next_status:
            self._next_status = now + STATUS_EVERY_S
            queued = len(self.inbox) + len(self._adopted)
            self.metrics.queue_depth(queued)
            self.notifier.status(
                f"processed {sum(self.counts.values())}, errors {self.counts['error']}, "
                f"queued {queued}, model {self.classifier.version}"
            )
        self.notifier.progress()

    def _recover(self, workspace: claim.Workspace) -> None:
        """Finish or take over the claims of daemons that died (kill -9, power cut)."""
        for folder in claim.workspaces(self.config.work, own=workspace):
            with claim.dead_workspace(folder) as dead:
                if not dead:
                    continue
                journal = folder / claim.JOURNAL_NAME
                finished = commit.replay(journal) if journal.exists() else []
                adopted = [workspace.adopt(path, ready_at=self.clock()) for path in claim.claimed_files(folder)]
                self._adopted.extend(c for c in adopted if c is not None)
                claim.remove_workspace(folder)
                log.info("recovered", workspace=folder.name, rows_finished=len(finished), files_taken_over=len(adopted))

    def _reread_config(self) -> None:
        try:
            fresh = configuration.load(self.config.source)
        except configuration.ConfigError as exc:
            log.warning("config_refused", detail=str(exc))
            return
        needs_restart = [name for name in ("paths", "watch", "metrics", "limits", "recognition") if getattr(fresh, name) != getattr(self.config, name)]
        if needs_restart:
            log.warning("config_needs_restart", sections=needs_restart)
            return
        self.config = fresh
        log.info("config_reloaded", config=str(fresh.source))
