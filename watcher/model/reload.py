"""Hot model reload: a new version folder (or SIGHUP) is loaded beside the served model, checked, then swapped in."""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog

from watcher.model.classify import Classifier, ModelError, latest_version, load_version
from watcher.vocabulary import DIGITS, Event

log = structlog.get_logger()

KNOWN_DIGITS = Path(__file__).with_name("data") / "known_digits.npz"
MIN_KNOWN_CORRECT = 0.9  # share of the known MNIST digits a new version must read right before it is served


@dataclass(frozen=True)
class Candidate:
    """A version folder as last listed: while a copy is in progress its fingerprint keeps changing."""

    folder: Path
    fingerprint: tuple[tuple[str, int, int], ...]  # (relative path, size, mtime_ns) of every file in it


@dataclass
class Loading:
    """A candidate being loaded and checked in a background thread, which leaves its outcome here."""

    candidate: Candidate
    outcome: Classifier | str = "the loading thread ended without an answer"  # a str is why it was refused


class ModelReloader:
    """Watches model_path for a newer version the way TensorFlow Serving does, without pausing the served one."""

    def __init__(
        self,
        model_path: Path,
        current: Classifier,
        *,
        load: Callable[[Path], Classifier] = load_version,
        check_every_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model_path = Path(model_path)
        self._served = current
        # A version string ends in its folder's name ("mnist-cnn/3"), which is what the listing yields.
        self._served_folder_name = current.version.rpartition("/")[2]
        self._load = load
        self._check_every_s = check_every_s
        self._clock = clock
        self._next_check = clock() + check_every_s
        self._last_listed: Candidate | None = None
        self._refused: Candidate | None = None
        self._listing_problem: str | None = None
        self._loading: tuple[Loading, threading.Thread] | None = None

    def poll(self, *, force: bool = False) -> Classifier | None:
        """Between batches: the checked new classifier once one is ready to serve, else None (cheap)."""
        if self._loading is not None:
            loading, thread = self._loading
            if thread.is_alive():
                return None
            thread.join()
            self._loading = None
            return self._adopt(loading)
        now = self._clock()
        if not force and now < self._next_check:
            return None
        self._next_check = now + self._check_every_s
        candidate = self._list()
        if candidate is None:
            return None
        settled = candidate == self._last_listed
        self._last_listed = candidate
        if candidate.folder.name == self._served_folder_name:
            if force:
                log.info(Event.MODEL_UNCHANGED, version=self._served.version)
            return None
        # A refused version is tried again only once its files change, or when an operator asks with SIGHUP.
        if candidate == self._refused and not force:
            return None
        # Without SIGHUP, a folder must look the same on two listings in a row: a copy may still be running.
        if settled or force:
            self._start_loading(candidate)
        return None

    def _list(self) -> Candidate | None:
        try:
            folder = latest_version(self._model_path)
            fingerprint = _fingerprint(folder)
        except ModelError as error:
            if str(error) != self._listing_problem:
                log.warning(Event.MODEL_REFUSED, reason=str(error), serving=self._served.version)
            self._listing_problem = str(error)
            return None
        except OSError:
            # The folder vanished or changed while being listed; the next listing will tell.
            return None
        self._listing_problem = None
        return Candidate(folder, fingerprint)

    def _start_loading(self, candidate: Candidate) -> None:
        loading = Loading(candidate)
        thread = threading.Thread(target=self._load_and_check, args=(loading,), name="model-reload", daemon=True)
        self._loading = (loading, thread)
        thread.start()

    def _load_and_check(self, loading: Loading) -> None:
        try:
            classifier = self._load(loading.candidate.folder)
            problem = known_digits_problem(classifier)
        # A broken model can fail in any way its loader allows; none of them may stop the served model.
        except Exception as error:
            loading.outcome = f"does not load: {_one_line(error)}"
        else:
            loading.outcome = problem or classifier

    def _adopt(self, loading: Loading) -> Classifier | None:
        candidate, outcome = loading.candidate, loading.outcome
        if isinstance(outcome, str):
            self._refused = candidate
            log.warning(Event.MODEL_REFUSED, folder=str(candidate.folder), reason=outcome, serving=self._served.version)
            return None
        log.info(Event.MODEL_RELOADED, version=outcome.version, previous=self._served.version)
        self._served = outcome
        self._served_folder_name = candidate.folder.name
        self._refused = None
        return outcome


def known_digits_problem(classifier: Classifier) -> str | None:
    """Why the classifier may not be served, judged on a few known MNIST test digits; None when it reads them."""
    digits, labels = _known_digits()
    probabilities = np.asarray(classifier.probabilities(digits))
    if probabilities.shape != (len(digits), DIGITS) or not np.isfinite(probabilities).all():
        return f"answers {probabilities.shape} for {len(digits)} known digits, not 10 finite probabilities each"
    correct = int((probabilities.argmax(axis=1) == labels).sum())
    needed = math.ceil(MIN_KNOWN_CORRECT * len(labels))
    if correct < needed:
        return f"reads {correct} of {len(labels)} known digits right, needs {needed}"
    return None


@functools.cache
def _known_digits() -> tuple[np.ndarray, np.ndarray]:
    with np.load(KNOWN_DIGITS, allow_pickle=False) as known:
        return known["x"].astype(np.float32), known["y"].astype(np.int64)


def _fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    entries = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root, name)
            stat = path.stat()
            entries.append((str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
