"""From a file to a reading: read, decode, find the digits, then classify a whole batch in one call."""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import structlog

from watcher.intake.decode import Unreadable, decode, read_file
from watcher.model.classify import Classifier, digit_shares
from watcher.service.config import LimitsConfig
from watcher.vision.options import choose
from watcher.vision.segment import Candidates, candidates
from watcher.vision.sheet import sheet_crops
from watcher.vocabulary import Event, Status

log = structlog.get_logger()

PR_SET_PDEATHSIG = 1


class Prepared(NamedTuple):
    """A file made ready for the model: its candidate digits (none for a blank page), or why there are none.

    A named tuple, like `Candidates`, for the trip back from the worker processes.
    """

    sha256: str
    digits: Candidates | None = None
    error: str = ""


@dataclass(frozen=True)
class Reading:
    """What the model read in one file, in numbers; the ledger formats it once, for the CSV and `predict`."""

    status: Status
    prediction: str = ""
    confidence: float | None = None
    top3: tuple[tuple[tuple[int, float], ...], ...] = ()  # per digit, its three likeliest (digit, probability)
    detail: str = ""
    page: int = 1  # 1-based, as the CSV counts pages
    field: str = ""  # the form field's name; empty on a page without a template


def prepare(path: Path, name: str, *, limits: LimitsConfig, mode: str) -> Prepared:
    """Read one file and find its digits; any failure becomes a one-line reason, never an exception."""
    try:
        data = read_file(path, max_bytes=limits.max_bytes)
    except Unreadable as exc:
        return Prepared(sha256="", error=str(exc))
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        digits = page_digits(decode(data, name=name, max_pixels=limits.max_pixels), mode=mode)
    except Unreadable as exc:
        return Prepared(sha256=sha256, error=str(exc))
    except Exception as exc:
        return Prepared(sha256=sha256, error=f"cannot process image: {type(exc).__name__}: {exc}".splitlines()[0])
    return Prepared(sha256=sha256, digits=digits)


def page_digits(image: np.ndarray, *, mode: str) -> Candidates | None:
    """A page's candidate digits: a whole sheet's handwriting, found at its own size, or a cut-out field as it is."""
    crops = sheet_crops(image)
    if crops is None:
        return candidates(image, mode=mode)
    # One written number per sheet: its largest line of writing (none on a blank sheet).
    return candidates(crops[0], mode=mode) if crops else None


class Preparer:
    """Runs a `prepare` task in worker processes: every core decodes, and a file that crashes the
    image decoder takes down a worker, never the daemon.
    """

    def __init__(self, task: Callable[[Path, str], Prepared], *, workers: int | None = None) -> None:
        self.task = task
        self.workers = workers or os.cpu_count() or 1
        self.pool = self._start()
        # Start the workers now, not on the first file: spawning them and their imports take a second.
        self.submit([Path(os.devnull)] * self.workers, ["warm-up.png"] * self.workers)()

    def submit(self, paths: Sequence[Path], names: Sequence[str]) -> Callable[[], list[Prepared]]:
        """Start reading the files in the workers; the call returned waits for the results."""
        chunk = max(1, -(-len(paths) // self.workers))
        try:
            results: Iterator[Prepared] | None = self.pool.map(self.task, paths, names, chunksize=chunk)
        except BrokenProcessPool:
            results = None

        def wait() -> list[Prepared]:
            try:
                if results is not None:
                    return list(results)
            except BrokenProcessPool:
                pass
            # One of these files killed a worker: find it by trying each alone in a fresh pool.
            return [self._prepare_alone(path, name) for path, name in zip(paths, names, strict=True)]

        return wait

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _prepare_alone(self, path: Path, name: str) -> Prepared:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._start()
        try:
            return self.pool.submit(self.task, path, name).result()
        except BrokenProcessPool:
            log.warning(Event.DECODER_CRASHED, file=name)
            self.pool = self._start()
            return Prepared(sha256="", error="the image crashed the decoder")

    def _start(self) -> ProcessPoolExecutor:
        # Spawned, not forked: the daemon has threads (the observer) that a fork would copy mid-step.
        return ProcessPoolExecutor(
            self.workers, mp_context=get_context("spawn"), initializer=_serve_daemon, initargs=(os.getpid(),)
        )


def _serve_daemon(daemon_pid: int) -> None:
    """Set up a worker: it lives and dies with its daemon, and leaves stopping to it."""
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


def read(prepared: Sequence[Prepared], classifier: Classifier, *, review_below: float | None) -> list[Reading]:
    """Classify every candidate digit of the batch in one model call and turn the best choices into readings."""
    stacks = [p.digits.images for p in prepared if p.digits is not None and len(p.digits.images)]
    probabilities = classifier.probabilities(np.concatenate(stacks)) if stacks else np.zeros((0, 10), np.float32)
    readings, start = [], 0
    for item in prepared:
        if item.error:
            readings.append(Reading(status=Status.ERROR, detail=item.error))
        elif item.digits is None or not len(item.digits.images):
            readings.append(Reading(status=Status.NO_DIGIT))
        else:
            own = probabilities[start : start + len(item.digits.images)]
            readings.append(_reading(own[choose(own, item.digits)], review_below=review_below))
            start += len(item.digits.images)
    return readings


def _reading(probabilities: np.ndarray, *, review_below: float | None) -> Reading:
    if not len(probabilities):
        return Reading(status=Status.NO_DIGIT)
    probabilities = digit_shares(probabilities)
    best = probabilities.argmax(axis=1)
    confidence = float(np.prod(probabilities.max(axis=1)))
    order = np.argsort(-probabilities, axis=1)[:, :3]
    top3 = tuple(tuple((int(d), float(p[d])) for d in row) for row, p in zip(order, probabilities, strict=True))
    unsure = review_below is not None and confidence < review_below
    return Reading(
        status=Status.LOW_CONFIDENCE if unsure else Status.OK,
        prediction="".join(map(str, best)),
        confidence=confidence,
        top3=top3,
    )
