"""A person's decisions, each committed through the ledger exactly once: claimed by rename, one row, one move."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from watcher.ledger import place
from watcher.ledger.claim import Claim
from watcher.ledger.lease import RENEW_EVERY_S
from watcher.ledger.ledger import Folders, Ledger, Processed
from watcher.ledger.record import Reading, Row, Sheet, timestamp
from watcher.review.forms import FormPages
from watcher.review.queue import Item, Queue
from watcher.vocabulary import PERSON, Event, Status

log = structlog.get_logger()

DECIDING_WORK = ".digit-watcher"  # in review/: hidden, so never shown as an item
UNDOING_WORK = ".digit-watcher-undo"  # apart, as its claims come from done/ and go back there
RECOVER_EVERY_S = 10.0  # a station that dies while others run has its claims given back this soon
CLAIM_TRIES = 50  # a form held by another reviewer's decision on another of its fields is tried again...
CLAIM_RETRY_S = 0.05  # ...this often, for up to 2.5 s


class AlreadyDecided(Exception):
    """The item is no longer waiting: another reviewer decided it, or it was undone and is a new item."""


class NothingToUndo(Exception):
    """This reviewer has no decision left whose file is still where the decision put it."""


@dataclass(frozen=True)
class Outcome:
    """What a decision or an undo did: the row's status and value, and where the file went."""

    name: str
    status: Status
    prediction: str
    moved_to: str


class Desk:
    """One reviewer's decisions and undos, with the ledgers that commit them.

    Opening it recovers dead reviewers' workspaces: a decision whose journal was written is
    finished, a claim without one was never decided and goes back where it was taken from. While
    it is open a thread renews its leases (so stations on other hosts see it alive) and recovers
    the workspaces of stations that die meanwhile, every `recover_every_s`. With an `outbox` (hooks on), each
    decision's rows go there for the daemons to hand on.
    """

    def __init__(
        self,
        *,
        queue: Queue,
        results: Path,
        review: Path,
        done: Path,
        error: Path,
        root: Path,
        reviewer: str,
        forms: FormPages,
        clock: Callable[[], float],
        now: Callable[[], datetime],
        outbox: Path | None = None,
        recover_every_s: float = RECOVER_EVERY_S,
    ) -> None:
        self.queue = queue
        self.forms = forms
        self.review = review
        self.done = done
        self.root = root
        self.model = f"{PERSON}{reviewer}"
        self.clock = clock
        self.now = now
        self._lock = threading.Lock()
        self._unfinished: tuple[Ledger, Processed, str] | None = None

        def ledger(*, inbox: Path, folders: Folders, work: Path) -> Ledger:
            return Ledger(
                results=results,
                folders=folders,
                inbox=inbox,
                work=work,
                shown_from=root,
                clock=clock,
                now=now,
                outbox=outbox,
            )

        self.deciding = ledger(inbox=review, folders=Folders(done=done, error=error), work=review / DECIDING_WORK)
        self.undoing = ledger(
            inbox=done, folders=Folders(done=done, error=error, review=review), work=review / UNDOING_WORK
        )
        for opened in (self.deciding, self.undoing):
            for claim in opened.start():
                _give_back(opened, claim)
        self._closing = threading.Event()
        self._keeper = threading.Thread(
            target=self._keep_alive, args=(recover_every_s,), name="review-keeper", daemon=True
        )
        self._keeper.start()

    def decide(self, item_id: str, value: str) -> Outcome:
        """Accept the reading (`value` empty) or correct it to `value`; raises AlreadyDecided.

        A form waits in review/ until its last unsure field is decided: that decision moves it to done/ and writes
        the page's forms row; the ones before put it back in review/ for the rest.
        """
        with self._lock:
            self._finish_unfinished()
            item = self.queue.find(item_id)
            if item is None:
                raise AlreadyDecided("already decided")
            final = value or item.row.prediction
            if not final:
                raise ValueError("the model read nothing here: type the value")
            claim = self._claim_item(item)
            status = Status.VERIFIED if final == item.row.prediction else Status.CORRECTED
            detail = "" if status == Status.VERIFIED else f"read as {item.row.prediction or 'nothing'}"
            judgement = Reading(
                status=status, prediction=final, page=_page(item.row), field=item.row.field, detail=detail
            )
            still_waiting = [row for row in self.queue.waiting_on(item.name) if row != item.row]
            decision = item.row._replace(status=str(status), prediction=final, model=self.model)
            form_rows = self._form_rows(claim, decision) if item.row.field and not still_waiting else ()
            moved_to = self._commit(
                self.deciding,
                Processed(
                    claim=claim,
                    sha256=item.row.sha256,
                    readings=[judgement],
                    sheet_rows=form_rows,
                    file=item.row.file,
                    destination=self.review if still_waiting else None,
                ),
                model=self.model,
            )
            log.info(
                Event.REVIEW_DECIDED,
                file=item.row.file,
                page=item.row.page,
                field=item.row.field or None,
                status=status,
                moved_to=moved_to,
            )
            return Outcome(name=item.name, status=status, prediction=final, moved_to=moved_to)

    def undo(self) -> Outcome:
        """Send this reviewer's last decision still standing back to review/, by a new row; raises NothingToUndo."""
        with self._lock:
            self._finish_unfinished()
            for decision, reading in self.queue.decisions_standing(self.model):
                decided = self.root / decision.moved_to
                # A form's field decided before its last one left the form in review/: it is undone there.
                ledgers = (self.undoing, self.deciding)
                ledger = next((opened for opened in ledgers if decided.is_relative_to(opened.workspace.inbox)), None)
                if ledger is None:
                    continue
                claim = self._claim(ledger, decided.relative_to(ledger.workspace.inbox).as_posix())
                if claim is None:
                    continue
                judgement = Reading(
                    status=Status.LOW_CONFIDENCE,
                    prediction=reading.prediction,
                    detail=f"undone by {self.model}",
                    confidence=float(reading.confidence) if reading.confidence else None,
                    top3=_top3(reading.top3),
                    page=_page(reading),
                    field=reading.field,
                )
                processed = Processed(
                    claim=claim, sha256=reading.sha256, readings=[judgement], file=reading.file, destination=self.review
                )
                moved_to = self._commit(ledger, processed, model=reading.model)
                log.info(Event.REVIEW_UNDONE, file=reading.file, page=reading.page, moved_to=moved_to)
                return Outcome(
                    name=os.path.relpath(self.root / moved_to, self.review),
                    status=judgement.status,
                    prediction=reading.prediction,
                    moved_to=moved_to,
                )
            raise NothingToUndo("nothing to undo")

    def close(self) -> None:
        self._closing.set()
        self._keeper.join()
        self.deciding.close()
        self.undoing.close()

    def _keep_alive(self, recover_every_s: float) -> None:
        next_recovery = self.clock() + recover_every_s
        while not self._closing.wait(RENEW_EVERY_S):
            try:
                with self._lock:
                    for opened in (self.deciding, self.undoing):
                        opened.renew()
                    if self.clock() >= next_recovery:
                        next_recovery = self.clock() + recover_every_s
                        for opened in (self.deciding, self.undoing):
                            for claim in opened.recover():
                                _give_back(opened, claim)
            except OSError as exc:
                # The review folder is unreachable for a moment (a share remounting): tried again next time.
                log.warning(Event.REVIEW_KEEPER_FAILED, error=f"{exc.strerror or exc}: {exc.filename or ''}")

    def _claim(self, ledger: Ledger, name: str) -> Claim | None:
        # Each decision in a claim folder of its own: the last one's folder went with its file.
        ledger.new_batch()
        return ledger.claim(name, ready_at=self.clock())

    def _claim_item(self, item: Item) -> Claim:
        """The item's file, claimed, its reading still undecided; raises AlreadyDecided.

        The rename is the decision's turnstile: of two reviewers (or stations), one alone gets the file. A form's
        file is held for a moment by each decision on one of its fields, then put back: the others wait for it.
        """
        for _ in range(CLAIM_TRIES):
            claim = self._claim(self.deciding, item.name)
            if claim is not None and self.queue.still_waits(item.row):
                return claim
            if claim is not None:
                _give_back(self.deciding, claim)  # another field's decision put the form back: this one was decided
                break
            if not self.queue.still_waits(item.row):
                break
            time.sleep(CLAIM_RETRY_S)
        raise AlreadyDecided("already decided")

    def _form_rows(self, claim: Claim, decision: Row) -> tuple[tuple[Sheet, list[str]], ...]:
        """The forms row of the page `decision` decides the last unsure field of (none when another still waits)."""
        page = self.queue.form_page(decision)
        page[decision.field] = decision
        if any(row.status == Status.LOW_CONFIDENCE for row in page.values()):
            return ()
        made = self.forms.sheet_row(self.forms.first_page(claim.path), page, time=timestamp(self.now()))
        return () if made is None else (made,)

    def _commit(self, ledger: Ledger, processed: Processed, *, model: str) -> str:
        # Kept until committed: after an OS error the next call finishes it (its journal, or afresh) first.
        self._unfinished = (ledger, processed, model)
        (recorded,) = ledger.commit([processed], model=model)
        self._unfinished = None
        return recorded.moved_to

    def _finish_unfinished(self) -> None:
        if self._unfinished is not None:
            ledger, processed, model = self._unfinished
            ledger.commit([processed], model=model)
            self._unfinished = None


def _page(row: Row) -> int:
    return int(row.page) if row.page.isdigit() else 1


def _top3(cell: str) -> tuple[tuple[tuple[int, float], ...], ...]:
    """`7:0.9812 1:0.0101 2:0.0050 | 3:…` (a digit's likeliest, digits apart by ` | `) back into numbers."""
    try:
        return tuple(
            tuple((int(digit), float(probability)) for digit, probability in (pair.split(":") for pair in part.split()))
            for part in cell.split(" | ")
            if part
        )
    except ValueError:
        return ()


def _give_back(ledger: Ledger, claim: Claim) -> None:
    """Return a claim a dead reviewer took but never decided to the folder it was taken from."""
    folder = ledger.workspace.inbox
    name = place.free_name(folder, claim.name)
    place.move(claim.path, folder / name)
    place.sync_folders([folder])
    ledger.workspace.release(claim)
    log.info(Event.REVIEW_GIVEN_BACK, name=name, taken=claim.name)
