"""From a file to readings: read, open its pages, find the digits, then classify a whole batch in one call."""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from multiprocessing import get_context
from multiprocessing.queues import SimpleQueue
from pathlib import Path
from typing import NamedTuple, Protocol

import cv2
import numpy as np
import structlog

from watcher.forms.fields import FormPage, FormRefused, field_candidates, read_form
from watcher.forms.rules import CellReading, judge
from watcher.forms.template import Field, Template
from watcher.intake.decode import Unreadable, read_file
from watcher.intake.limits import LimitsConfig
from watcher.intake.pages import Page, open_pages
from watcher.ledger.record import Reading
from watcher.model.classify import Classifier, digit_shares
from watcher.model.sequence import Judge, StringReading, second_opinion
from watcher.model.sequence import evidence as sequence_evidence
from watcher.vision.digits import Candidates, page_digits
from watcher.vision.field import writing_aspect
from watcher.vision.fit import digit_images
from watcher.vision.options import choose
from watcher.vision.sheet import READ_SIDE
from watcher.vocabulary import CANVAS_PX, DIGITS, Event, Status

log = structlog.get_logger()

PR_SET_PDEATHSIG = 1
PAGES_PER_TASK = 8  # pages a worker reads of a file before they are kept and the next run of pages begins
STUCK_GRACE_S = 2.0  # a page stuck in Python is stopped by its worker's own alarm; the daemon steps in this much later
HEARD_EVERY_S = 0.2  # how often the daemon hears its workers' heartbeats while it waits for their results
REVIEW_PICTURE_SIDE = 2000  # px: an A4 page's picture for review/ at about 170 dpi
LONE_DIGIT_ASPECT = 1.6  # auto: writing wider than this for its height is no lone digit, whatever both models read
# (held-out real single digits are at most 1.64 wide, 99 % of them under 1.32; a number read as one digit, its
# others dropped, is most often wider)
_NO_IMAGES = np.zeros((0, CANVAS_PX, CANVAS_PX), np.float32)


class PreparedField(NamedTuple):
    """A form field made ready for the model: each of its crops' candidate digits (None for an empty crop)."""

    name: str
    crops: tuple[Candidates | None, ...]


class Alignment(NamedTuple):
    """How well a form page aligned with its template, for the forms CSV."""

    inliers: int
    inlier_share: float
    residual_px: float


class PreparedPage(NamedTuple):
    """A page made ready for the model: its candidate digits (none when blank), or a form's fields, or why there
    are none.

    A named tuple, like `Candidates`, for the trip back from the worker processes.
    """

    number: int
    digits: Candidates | None = None
    error: str = ""
    picture: bytes = b""  # the page as a PNG for review/, when it is one page of several
    form: str = ""  # the template the page matched, when templates are configured
    alignment: Alignment | None = None
    fields: tuple[PreparedField, ...] = ()


class Prepared(NamedTuple):
    """A run of a file's pages made ready for the model, or why the file cannot be read at all."""

    sha256: str
    pages: tuple[PreparedPage, ...] = ()
    error: str = ""
    page_count: int = 1
    worker: int = 0  # the pid of the worker process that read it, for the logs

    @classmethod
    def one_page(cls, digits: Candidates | None, *, sha256: str = "") -> Prepared:
        """A single image made ready, as benches and tests prepare a decoded picture."""
        return cls(sha256=sha256, pages=(PreparedPage(1, digits),))


class PageTimeout(BaseException):
    """A page took longer than limits.page_timeout_s: an interruption, like Ctrl-C, that no `except Exception`
    on the way (a page's own failure) may take for the page's error."""


def prepare(
    path: Path,
    name: str,
    first_page: int = 1,
    *,
    limits: LimitsConfig,
    mode: str,
    pdf_dpi: int,
    pictures: bool,
    templates: tuple[Template, ...] = (),
    pages: int = PAGES_PER_TASK,
    cut: bool = True,
) -> Prepared:
    """Read up to `pages` pages of one file from `first_page` on, and find their digits.

    Any failure becomes a one-line reason, never an exception: the file's when it cannot be opened at
    all, else the page's. With `pictures`, each page of a file of several pages comes with its picture. With
    `templates`, each page is read as the form it matches. `cut` False: numbers are read whole by the served
    model's sequence reader, not cut into digits (see `candidates`).
    """
    try:
        data = read_file(path, max_bytes=limits.max_bytes)
    except Unreadable as exc:
        return Prepared(sha256="", error=str(exc))
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        opened = open_pages(
            data,
            name=name,
            max_pixels=limits.max_pixels,
            max_pages=limits.max_pages,
            pdf_dpi=pdf_dpi,
            first=first_page,
            # A sheet is read at 150 dpi as well as at 300; a form is aligned and cut at its full size.
            least_side=None if templates else READ_SIDE,
        )
    except Unreadable as exc:
        return Prepared(sha256=sha256, error=str(exc))
    except Exception as exc:
        return Prepared(sha256=sha256, error=_failure(exc))
    found: list[PreparedPage] = []
    for number in range(first_page, min(opened.page_count, first_page + pages - 1) + 1):
        _beat(number, opened.page_count, sha256)
        try:
            with _time_limit(limits.page_timeout_s):
                page = next(opened.pages)
                picture = pictures and opened.page_count > 1
                found.append(_prepare_page(page, mode=mode, picture=picture, templates=templates, cut=cut))
        except PageTimeout:
            found.append(PreparedPage(number, error=_took_too_long(limits.page_timeout_s)))
            # The page reader was stopped in the middle: the next run of pages opens the file afresh.
            break
    return Prepared(sha256=sha256, pages=tuple(found), page_count=opened.page_count)


def _took_too_long(page_timeout_s: float) -> str:
    """A page's `detail` when reading it outlasted limits.page_timeout_s, stopped by its worker or its daemon."""
    return f"page took longer than {page_timeout_s:g} s to read (limits.page_timeout_s)"


def review_picture(image: np.ndarray) -> bytes:
    """A page as a person checks it in review/: 8-bit, its longer side at most REVIEW_PICTURE_SIDE, as PNG."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    longer = max(image.shape[:2])
    if longer > REVIEW_PICTURE_SIDE:
        scale = REVIEW_PICTURE_SIDE / longer
        image = cv2.resize(np.ascontiguousarray(image), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    encoded: np.ndarray = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])[1]
    return encoded.tobytes()


def _prepare_page(page: Page, *, mode: str, picture: bool, templates: tuple[Template, ...], cut: bool) -> PreparedPage:
    if page.image is None:
        return PreparedPage(page.number, error=page.error)
    shown = review_picture(page.image) if picture else b""
    try:
        if not templates:
            digits = page_digits(page.image, mode=mode, cut=cut, bilevel=page.bilevel)
            return PreparedPage(page.number, digits, picture=shown)
        form = read_form(page.image, templates)
    except Exception as exc:
        return PreparedPage(page.number, error=_failure(exc))
    if isinstance(form, FormRefused):
        return PreparedPage(page.number, error=form.reason, picture=shown)
    return form_page(page.number, form, picture=shown, cut=cut)


def form_page(number: int, form: FormPage, *, picture: bytes = b"", cut: bool = True) -> PreparedPage:
    """A page aligned with its template, made ready: each field's candidate digits, crop by crop."""
    fit = form.alignment
    return PreparedPage(
        number,
        picture=picture,
        form=form.template,
        alignment=Alignment(fit.inliers, fit.inlier_share, fit.residual_px),
        fields=tuple(PreparedField(field.name, field_candidates(field, cut=cut)) for field in form.fields),
    )


def _failure(exc: Exception) -> str:
    return f"cannot process image: {type(exc).__name__}: {exc}".splitlines()[0]


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise PageTimeout in the block after `seconds`: on the main thread (the workers'), else no limit.

    A signal is seen between Python steps: a page stuck inside one call into a C library is not stopped here, but
    by the daemon, which kills its worker (Preparer).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise PageTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class PrepareTask(Protocol):
    """`prepare` with its settings bound: a file's pages from the first one given, `pages` of them at most."""

    def __call__(self, path: Path, name: str, first_page: int, /, *, pages: int = ...) -> Prepared: ...


class PageRun(NamedTuple):
    """A run of one file's pages for a worker to read: from `first_page` on, `pages` of them at most (None: as many as
    the task reads by default)."""

    path: Path
    name: str
    first_page: int = 1
    pages: int | None = None


class Beat(NamedTuple):
    """A worker's word to its daemon that it starts on a page of the task `ident` (page 0: opening the file)."""

    pid: int
    ident: int
    page: int
    page_count: int
    sha256: str


class Stuck(NamedTuple):
    """A task whose worker did not answer within a page's time, and the last beat it gave."""

    beat: Beat


_beats: SimpleQueue[Beat] | None = None  # in a worker, its line to the daemon (set by _serve_daemon)
_ident = 0  # in a worker, the task it runs


def _beat(page: int, page_count: int, sha256: str) -> None:
    """Tell the daemon, when there is one, that this worker starts on `page` of its task."""
    if _beats is not None:
        _beats.put(Beat(os.getpid(), _ident, page, page_count, sha256))


def _watched(task: PrepareTask, ident: int, run: PageRun) -> Prepared:
    """A task run in a worker, which says it is opening the file before `prepare` says each page it starts."""
    global _ident
    _ident = ident
    _beat(0, 0, "")
    path, name, first_page, pages = run
    prepared = task(path, name, first_page) if pages is None else task(path, name, first_page, pages=pages)
    return prepared._replace(worker=os.getpid())


class Preparer:
    """Runs a `prepare` task in worker processes: every core decodes, and a file that crashes the image decoder
    takes down a worker, never the daemon.

    With `page_timeout_s`, a worker still on one page STUCK_GRACE_S after that (its own alarm stops a page stuck in
    Python) is stuck inside a C library, where no signal reaches: it is killed by its pid, the page gets an error
    and the pool is started afresh. Each worker's beats say which page it is on.

    Several runs of one file's pages may be read at once, each by its own worker; each run's result is its own.
    """

    def __init__(self, task: PrepareTask, *, workers: int | None = None, page_timeout_s: float | None = None) -> None:
        self.task = task
        self.workers = workers or os.cpu_count() or 1
        self.page_timeout_s = page_timeout_s
        self.idents = iter(range(1, 2**62))
        self.heard: dict[int, tuple[Beat, float]] = {}  # each running task's last beat, and when it was heard
        # One line for every pool's workers, so that tasks still running in a pool replaced under them are heard
        # too. A worker is killed inside a page, never while it writes a beat, so it never leaves the line locked.
        self.beats: SimpleQueue[Beat] = get_context("spawn").SimpleQueue()
        self.pool = self._start()
        # Start the workers now, not on the first file: spawning them and their imports take a second.
        self.submit([PageRun(Path(os.devnull), "warm-up.png")] * self.workers)()

    def submit(self, runs: Sequence[PageRun]) -> Callable[[], list[Prepared]]:
        """Start reading each run of pages in the workers; the call returned waits for the results, in order."""
        try:
            tasks = self._send(runs)
        except BrokenProcessPool:
            # A worker was lost since the last batch: these runs are read in a fresh pool.
            self._restart()
            tasks = self._send(runs)

        def results() -> list[Prepared]:
            return [self._settled(run, outcome) for run, outcome in zip(runs, self._outcomes(tasks), strict=True)]

        return results

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _send(self, runs: Sequence[PageRun]) -> dict[int, Future[Prepared]]:
        """Each run's task, by the ident its worker's beats name it with."""
        idents = [next(self.idents) for _ in runs]
        return {
            ident: self.pool.submit(_watched, self.task, ident, run) for ident, run in zip(idents, runs, strict=True)
        }

    def _outcomes(self, tasks: dict[int, Future[Prepared]]) -> list[Prepared | Stuck | None]:
        """Each task's result in order; Stuck for one whose worker was killed for not answering, None for one
        whose worker died (or was lost with a killed one)."""
        outcomes: dict[int, Prepared | Stuck | None] = {}
        pending = dict(tasks)
        while pending:
            wait(
                pending.values(),
                timeout=None if self.page_timeout_s is None else HEARD_EVERY_S,
                return_when=FIRST_COMPLETED,
            )
            for ident, future in list(pending.items()):
                if future.done():
                    del pending[ident]
                    self.heard.pop(ident, None)
                    outcomes[ident] = _result(future)
            stuck = self._stuck(pending)
            if stuck is not None:
                # Its pool breaks with it: the other tasks still pending come back None, to be read again.
                with suppress(ProcessLookupError):
                    os.kill(stuck.pid, signal.SIGKILL)
                del pending[stuck.ident]
                self.heard.pop(stuck.ident, None)
                outcomes[stuck.ident] = Stuck(stuck)
        return [outcomes[ident] for ident in tasks]

    def _stuck(self, pending: dict[int, Future[Prepared]]) -> Beat | None:
        """The last beat of a pending task whose worker has been on one page too long, if there is one."""
        while not self.beats.empty():
            beat = self.beats.get()
            self.heard[beat.ident] = (beat, time.monotonic())
        if self.page_timeout_s is None:
            return None
        too_long = self.page_timeout_s + STUCK_GRACE_S
        for ident in pending:
            heard = self.heard.get(ident)
            if heard is not None and time.monotonic() - heard[1] > too_long:
                return heard[0]
        return None

    def _settled(self, run: PageRun, outcome: Prepared | Stuck | None) -> Prepared:
        """A task's result: as its worker gave it, or for a stuck or lost worker, worked out or read again alone."""
        if isinstance(outcome, Prepared):
            return outcome
        if isinstance(outcome, Stuck):
            return self._past_stuck(run, outcome.beat)
        # One of the runs in the pool killed a worker: find which by trying each alone in a fresh pool.
        return self._prepare_alone(run)

    def _prepare_alone(self, run: PageRun) -> Prepared:
        self._restart()
        (outcome,) = self._outcomes(self._send([run]))
        if outcome is None:
            log.warning(Event.DECODER_CRASHED, file=run.name, page=run.first_page)
            self._restart()
            return Prepared(sha256="", error="the image crashed the decoder")
        return self._settled(run, outcome)

    def _past_stuck(self, run: PageRun, beat: Beat) -> Prepared:
        """A task whose worker was killed on a page: that page an error, the pages before it read again."""
        name, first_page = run.name, run.first_page
        timeout = self.page_timeout_s or 0.0
        log.warning(Event.WORKER_STUCK, file=name, page=beat.page or None, pid=beat.pid, after_s=timeout)
        if not beat.page:
            return Prepared(sha256="", error=f"file took longer than {timeout:g} s to open (limits.page_timeout_s)")
        stopped = PreparedPage(beat.page, error=_took_too_long(timeout))
        if beat.page == first_page:
            return Prepared(beat.sha256, (stopped,), page_count=beat.page_count)
        # The worker read the pages before it, but its answer died with it.
        before = self._prepare_alone(run._replace(pages=beat.page - first_page))
        if before.error or not before.pages or before.pages[-1].number != beat.page - 1:
            return before  # it stopped short on its own: the next run of pages starts after its last page
        return before._replace(pages=(*before.pages, stopped))

    def _restart(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # Spawned, not forked: the daemon has threads (the observer) that a fork would copy mid-step.
        return ProcessPoolExecutor(
            self.workers, mp_context=get_context("spawn"), initializer=_serve_daemon, initargs=(os.getpid(), self.beats)
        )


def _result(future: Future[Prepared]) -> Prepared | None:
    """A finished task's result; None when its worker died, or its pool was shut down before it ran."""
    try:
        return future.result()
    except (BrokenProcessPool, CancelledError):
        return None


def _serve_daemon(daemon_pid: int, beats: SimpleQueue[Beat]) -> None:
    """Set up a worker: it lives and dies with its daemon, leaves stopping to it, and tells it the page it is on."""
    global _beats
    _beats = beats
    # A daemon killed with SIGKILL cannot shut its pool down: have the kernel kill the workers with it.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != daemon_pid:
        os._exit(0)
    # The daemon finishes the batch in hand first; a terminal's Ctrl-C and systemd's SIGTERM reach
    # the whole process group, so the workers must not stop on their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The pool already has a worker per core; OpenCV's own threads would only contend with the other workers.
    cv2.setNumThreads(1)


def read(
    prepared: Sequence[Prepared],
    classifier: Classifier,
    *,
    review_below: float | None,
    templates: Mapping[str, Template] | None = None,
) -> list[list[Reading]]:
    """Read every number whole in one reader call, then classify in one model call every candidate digit whose
    reading counts and every digit the reader read; per file, a reading per page read (per field on a form page,
    its rules checked against its template in `templates`)."""
    pages = [page for item in prepared for page in item.pages]
    crops = [
        digits
        for page in pages
        for digits in ([page.digits] if not page.fields else [d for field in page.fields for d in field.crops])
        if digits is not None and len(digits.images)
    ]
    wholes = _read_whole(crops, classifier)
    # A number the reader reads is its reading, judged again digit by digit: its candidates are not classified.
    cut = [whole is None or not whole.digits or not digits.whole for digits, whole in zip(crops, wholes, strict=True)]
    pieces = [digits.images if counts else _NO_IMAGES for digits, counts in zip(crops, cut, strict=True)]
    pieces += [
        _NO_IMAGES if whole is None or digits.field is None else digit_images(digits.field, whole.columns)
        for digits, whole in zip(crops, wholes, strict=True)
    ]
    batch = np.concatenate([_NO_IMAGES, *pieces])
    probabilities = _split(classifier.probabilities(batch) if len(batch) else np.zeros((0, DIGITS), np.float32), pieces)
    judge = classifier.reader.judge if classifier.reader is not None else None
    readings = iter(
        _crop_reading(digits, whole, own, second, judge)
        for digits, whole, own, second in zip(
            crops, wholes, probabilities[: len(crops)], probabilities[len(crops) :], strict=True
        )
    )

    def crop_reading(digits: Candidates | None) -> StringReading | None:
        """The crop's best reading, in the crops' order; None for an empty crop."""
        return None if digits is None or not len(digits.images) else next(readings)

    # In the files' order, so each crop takes its own reading.
    return [_file_readings(item, crop_reading, review_below=review_below, templates=templates) for item in prepared]


def _read_whole(crops: list[Candidates], classifier: Classifier) -> list[StringReading | None]:
    """Each crop's number read whole by the reader, all in one call: None for a crop with no field, or where the
    served model has no reader."""
    reader = classifier.reader
    fields = [digits.field for digits in crops if digits.field is not None] if reader is not None else []
    strings = iter(reader.read(np.stack(fields)) if reader is not None and fields else [])
    return [next(strings) if reader is not None and digits.field is not None else None for digits in crops]


def _split(rows: np.ndarray, pieces: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The rows of one model call over the concatenated `pieces`, piece by piece."""
    return np.split(rows, np.cumsum([len(piece) for piece in pieces])[:-1])


def _crop_reading(
    digits: Candidates,
    whole: StringReading | None,
    own: np.ndarray,
    second: np.ndarray,
    judge: Judge | None,
) -> StringReading:
    """A crop's best reading: the reader's whole string for a number, settled by the digit model's `second` opinion
    on each of its digits (sequence.second_opinion), else the digits the model's best reading of the candidates
    keeps (their probabilities `own`, classified only where they count)."""
    if whole is not None and whole.digits and digits.whole:
        return second_opinion(whole, second, judge)
    shares = digit_shares(own[choose(own, digits)])
    cut = StringReading("".join(map(str, shares.argmax(axis=1))), float(np.prod(shares.max(axis=1))), _top3(shares))
    if whole is None:
        return cut
    if not whole.digits:
        # The reader sees no number where the digit model found digits: they are there only as likely as the
        # reader doubts its blank reading.
        return cut._replace(confidence=cut.confidence * (1.0 - whole.confidence))
    # auto: a lone digit both models read alike, each on its own, is the digit model's (its confidence is the
    # one calibrated on single digits); else the reader's, the digit model's second opinion taken. Writing too
    # wide for one digit is a number both dropped digits of: the judge, who weighs the reader's doubt, decides.
    lone = whole.digits == cut.digits and len(cut.digits) == 1
    if lone and digits.field is not None and writing_aspect(digits.field) <= LONE_DIGIT_ASPECT:
        return cut
    if len(whole.digits) == len(cut.digits) == 1 and judge is not None:
        # One digit, read otherwise by each: the digit model's say is its reading of all the ink at full size, not
        # of the reader's columns cut from the small field image; the judge weighs the evidence it was fitted on.
        chosen = second_opinion(whole, shares)
        return chosen._replace(confidence=judge.confidence(sequence_evidence(whole, chosen.digits, second)))
    return second_opinion(whole, second, judge)


def _file_readings(
    item: Prepared,
    crop_reading: Callable[[Candidates | None], StringReading | None],
    *,
    review_below: float | None,
    templates: Mapping[str, Template] | None,
) -> list[Reading]:
    """A file's readings: its error, or a reading per page (per field on a form page) from each crop's reading."""
    if item.error:
        return [Reading(status=Status.ERROR, detail=item.error)]
    readings = []
    for page in item.pages:
        if page.error:
            readings.append(Reading(status=Status.ERROR, detail=page.error, page=page.number))
        elif page.fields:
            form = (templates or {})[page.form]
            for field, definition in zip(page.fields, form.fields, strict=True):
                cells = [crop_reading(crop) for crop in field.crops]
                readings.append(_field_reading(definition, cells, review_below=review_below, page=page.number))
        else:
            readings.append(_reading(crop_reading(page.digits), review_below=review_below, page=page.number))
    return readings


def _reading(read: StringReading | None, *, review_below: float | None, page: int) -> Reading:
    if read is None:
        return Reading(status=Status.NO_DIGIT, page=page)
    unsure = review_below is not None and read.confidence < review_below
    return Reading(
        status=Status.LOW_CONFIDENCE if unsure else Status.OK,
        prediction=read.digits,
        confidence=read.confidence,
        top3=read.top3,
        page=page,
    )


def _field_reading(
    field: Field, cells: list[StringReading | None], *, review_below: float | None, page: int
) -> Reading:
    """A form field's reading: its crops' readings judged by the field's rules (SPEC "Form templates")."""
    verdict = judge(
        field,
        [None if cell is None else CellReading(cell.digits, cell.confidence) for cell in cells],
        review_below=review_below,
    )
    return Reading(
        status=verdict.status,
        prediction=verdict.prediction,
        confidence=verdict.confidence,
        top3=tuple(digit for cell in cells if cell is not None for digit in cell.top3) if verdict.prediction else (),
        detail=verdict.detail,
        page=page,
        field=field.name,
    )


def _top3(shares: np.ndarray) -> tuple[tuple[tuple[int, float], ...], ...]:
    """Per digit, its three likeliest (digit, probability)."""
    order = np.argsort(-shares, axis=1)[:, :3]
    return tuple(tuple((int(d), float(p[d])) for d in row) for row, p in zip(order, shares, strict=True))
