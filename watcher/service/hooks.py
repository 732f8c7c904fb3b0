"""Hand each commit's rows on to the user's hook (SPEC "Hooks"), from a thread of the daemon's own.

The batches wait in the outbox, where each commit put its rows (watcher/ledger/outbox.py). The courier claims them
oldest first, one at a time, hands each to the hook (POSTed to `hooks.url`, given to `hooks.command` on stdin) and
deletes it once every target has acknowledged it. A target that fails or does not answer in time is tried again after
0.5 s, then twice as long each time up to 30 s, while the daemon reads on: its batches wait in the outbox meanwhile.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from watcher.ledger import outbox
from watcher.ledger.claim import Claim
from watcher.ledger.outbox import Deliveries
from watcher.service.config import HooksConfig
from watcher.service.metrics import Metrics
from watcher.vocabulary import Event

log = structlog.get_logger()

FIRST_RETRY_S = 0.5
LONGEST_RETRY_S = 30.0
IDLE_WAKE_S = 1.0  # also how often the outbox is looked at for batches no commit of this daemon announced
RECOVER_EVERY_S = 10.0  # batches a dead daemon held are delivered again this soon
ERROR_CHARS = 200  # of a command's last line on stderr, in the log


class HookFailed(Exception):
    """A target did not acknowledge a batch; the message says why in one line."""


@dataclass(frozen=True)
class Target:
    """Somewhere batches go: its name in logs, and how one is sent (raises HookFailed unless acknowledged)."""

    name: str
    send: Callable[[bytes], None]


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is not an acknowledgement: followed, a POST would turn into a GET without its rows."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def targets(hooks: HooksConfig, *, root: Path) -> list[Target]:
    """The hook's targets: its URL, its command, or both (a batch is delivered once both acknowledge it)."""
    found = []
    if hooks.url is not None:
        opener = urllib.request.build_opener(NoRedirects)
        found.append(Target(hooks.endpoint, lambda data: _post(opener, hooks, data)))
    if hooks.command is not None:
        command = hooks.command
        found.append(Target(command[0], lambda data: _run(command, data, root=root, timeout_s=hooks.timeout_s)))
    return found


def _post(opener: urllib.request.OpenerDirector, hooks: HooksConfig, data: bytes) -> None:
    request = urllib.request.Request(
        hooks.endpoint, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    if hooks.credentials is not None:
        # urllib does not send a URL's user and password itself; never in the URL it logs either.
        token = base64.b64encode(":".join(hooks.credentials).encode("utf-8")).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    try:
        with opener.open(request, timeout=hooks.timeout_s) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:
        raise HookFailed(f"answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise HookFailed(f"{reason.strerror or reason}" if isinstance(reason, OSError) else str(reason)) from None
    except TimeoutError:
        raise HookFailed(f"no answer in {hooks.timeout_s:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise HookFailed(f"{type(exc).__name__}: {exc}") from None


def _run(command: tuple[str, ...], data: bytes, *, root: Path, timeout_s: float) -> None:
    try:
        done = subprocess.run(
            command, input=data, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise HookFailed(f"killed after {timeout_s:g} s without an answer") from None
    except OSError as exc:
        raise HookFailed(f"cannot run: {exc.strerror or exc}") from None
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise HookFailed(f"exit status {done.returncode}" + (f": {said[-1][:ERROR_CHARS]}" if said else ""))


class Courier:
    """Delivers the outbox's batches to the hook's targets from a thread; `start` it, then `close` it."""

    def __init__(
        self,
        hooks: HooksConfig,
        *,
        work: Path,
        root: Path,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.targets = targets(hooks, root=root)
        self.work = work
        self.metrics = metrics
        self.clock = clock
        self.deliveries: Deliveries | None = Deliveries(work, clock=clock)  # None: to be opened again
        self._in_hand: deque[Claim] = deque()  # taken over from dead daemons, or claimed: the oldest is being sent
        self._acknowledged: set[str] = set()  # the targets that took the oldest batch in hand
        self._wake = threading.Event()  # a commit, or close: look at the outbox now
        self._closing = threading.Event()  # close: cut a wait after a failure short
        self._stopping = False
        self._finishing = False
        self._thread = threading.Thread(target=self._deliver_all, name="hooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        """False once its thread died of a fault no retry can mend (its traceback on stderr)."""
        return self._thread.is_alive()

    def wake(self) -> None:
        """Say a commit put a batch in the outbox."""
        self._wake.set()

    def close(self, *, finish: bool = False) -> None:
        """Stop once the batch being sent is done (with `finish`, once none is left or one fails); the batches in
        hand go back to the outbox."""
        self._finishing = finish
        self._stopping = not finish
        self._closing.set()
        self._wake.set()
        self._thread.join()
        if self.deliveries is None:
            return
        with contextlib.suppress(OSError):  # else left in its workspace, for the next daemon to take over
            for claimed in self._in_hand:
                self.deliveries.give_back(claimed)
        self.deliveries.close()

    def _deliver_all(self) -> None:
        next_recovery = self.clock()
        delay = FIRST_RETRY_S
        while not self._stopping:
            self._wake.clear()
            delivered: bool | None = None  # None: a failure, to be retried after `delay`
            try:
                deliveries = self._opened()
                deliveries.renew()
                if self.clock() >= next_recovery:
                    next_recovery = self.clock() + RECOVER_EVERY_S
                    taken = deliveries.recover()
                    if taken:
                        log.info(Event.HOOK_TAKEN_OVER, batches=[claimed.name for claimed in taken])
                    self._in_hand.extend(taken)
                delivered = self._deliver_next(deliveries)
            except HookFailed as exc:
                self.metrics.hook_failed()
                log.warning(Event.HOOK_FAILED, batch=self._in_hand[0].name, error=str(exc), retry_in_s=delay)
            except OSError as exc:
                log.warning(Event.HOOK_OUTBOX_FAILED, error=f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
                self._lost()
            if self._finishing and not delivered:
                return
            if delivered is None:
                self._closing.wait(delay)
                delay = min(delay * 2, LONGEST_RETRY_S)
            elif delivered:
                delay = FIRST_RETRY_S
            else:
                self._wake.wait(IDLE_WAKE_S)

    def _deliver_next(self, deliveries: Deliveries) -> bool:
        """Deliver the oldest batch in hand, else the oldest one this daemon claims first; False when none waits."""
        waiting = deque(deliveries.waiting())
        while not self._in_hand and waiting:
            claimed = deliveries.claim(waiting.popleft())
            if claimed is not None:  # else another daemon took it first
                self._in_hand.append(claimed)
        left = sum(map(outbox.rows_in, waiting))
        self._count_pending(left)
        if not self._in_hand:
            return False
        claimed = self._in_hand[0]
        data = claimed.path.read_bytes()
        started = self.clock()
        for target in self.targets:
            if target.name not in self._acknowledged:
                self._send(target, data)
        deliveries.delivered(claimed)
        self._in_hand.popleft()
        self._acknowledged.clear()
        rows = outbox.rows_in(claimed.name)
        self.metrics.hook_delivered(rows)
        self._count_pending(left)
        log.info(Event.HOOK_DELIVERED, batch=claimed.name, rows=rows, ms=round((self.clock() - started) * 1000, 1))
        return True

    def _send(self, target: Target, data: bytes) -> None:
        try:
            target.send(data)
        except HookFailed as exc:
            raise HookFailed(f"{target.name}: {exc}") from None
        self._acknowledged.add(target.name)

    def _count_pending(self, in_outbox: int) -> None:
        self.metrics.hook_pending(in_outbox + sum(outbox.rows_in(claimed.name) for claimed in self._in_hand))

    def _opened(self) -> Deliveries:
        if self.deliveries is None:
            self.deliveries = Deliveries(self.work, clock=self.clock)
        return self.deliveries

    def _lost(self) -> None:
        """Let go of a workspace the outbox could not be reached through (a share remounted, where this daemon's lock
        and lease are lost): the next one opened takes its batches over, as a dead daemon's."""
        if self.deliveries is not None:
            with contextlib.suppress(OSError):
                self.deliveries.close()
        self.deliveries = None
        self._in_hand.clear()
        self._acknowledged.clear()
