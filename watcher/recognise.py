"""From a file to a reading: read, decode, normalise, then classify a whole batch in one call."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from watcher.classify import Classifier
from watcher.config import LimitsConfig
from watcher.decode import Unreadable, decode, read_file
from watcher.normalise import normalise


@dataclass(frozen=True)
class Prepared:
    """A file made ready for the model: its digit images, or why there are none."""

    sha256: str
    digits: np.ndarray | None = None
    error: str = ""


@dataclass(frozen=True)
class Reading:
    """What the model read in one file, as the CSV and `predict` show it."""

    status: str
    prediction: str = ""
    confidence: str = ""
    top3: str = ""
    detail: str = ""


def prepare(path: Path, *, name: str, limits: LimitsConfig) -> Prepared:
    """Read and normalise one file; any failure becomes a one-line reason, never an exception."""
    try:
        data = read_file(path, max_bytes=limits.max_bytes)
    except Unreadable as exc:
        return Prepared(sha256="", error=str(exc))
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        digit = normalise(decode(data, name=name, max_pixels=limits.max_pixels))
    except Unreadable as exc:
        return Prepared(sha256=sha256, error=str(exc))
    except Exception as exc:
        return Prepared(sha256=sha256, error=f"cannot process image: {type(exc).__name__}: {exc}".splitlines()[0])
    if digit is None:
        return Prepared(sha256=sha256, digits=np.zeros((0, 28, 28), np.float32))
    return Prepared(sha256=sha256, digits=digit[np.newaxis])


def read(prepared: Sequence[Prepared], classifier: Classifier, *, review_below: float | None) -> list[Reading]:
    """Classify every digit of the batch in one model call and turn the results into readings."""
    stacks = [p.digits for p in prepared if p.digits is not None and len(p.digits)]
    probabilities = classifier.probabilities(np.concatenate(stacks)) if stacks else np.zeros((0, 10), np.float32)
    readings, start = [], 0
    for item in prepared:
        if item.error:
            readings.append(Reading(status="error", detail=item.error))
        elif item.digits is None or not len(item.digits):
            readings.append(Reading(status="no_digit"))
        else:
            count = len(item.digits)
            readings.append(_reading(probabilities[start : start + count], review_below=review_below))
            start += count
    return readings


def _reading(probabilities: np.ndarray, *, review_below: float | None) -> Reading:
    best = probabilities.argmax(axis=1)
    confidence = float(np.prod(probabilities.max(axis=1)))
    order = np.argsort(-probabilities, axis=1)[:, :3]
    top3 = " | ".join(" ".join(f"{d}:{p[d]:.4f}" for d in row) for row, p in zip(order, probabilities))
    unsure = review_below is not None and confidence < review_below
    return Reading(
        status="low_confidence" if unsure else "ok",
        prediction="".join(map(str, best)),
        confidence=f"{confidence:.4f}",
        top3=top3,
    )
