"""Serving: find the newest complete model version and classify batches of normalised digits with it."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, TypeGuard

import numpy as np

from watcher.model.calibration import temper
from watcher.model.sequence import EVIDENCE, Judge, StringReading, decode, on_ink
from watcher.model.versions import METADATA_FILE, MODEL_FILE, newest_complete
from watcher.vision.field import FIELD_HEIGHT, FIELD_WIDTH
from watcher.vocabulary import CANVAS_PX, DIGITS

READER_FILE = "reader.tflite"  # the sequence reader, in versions that have one (watcher.model.train_reader)
READER_KERAS_FILE = "reader.keras"  # its Keras weights, which a digit model's fine-tune carries over unchanged
READER_KEY = "reader"  # metadata.json's section on the reader: its recipe and its own temperature
TEMPERATURE_KEY = "temperature"  # metadata.json's calibration temperature; absent: the model's own probabilities
JUDGE_KEY = "judge"  # the reader section's judge of a reading's confidence: {"weights": {evidence: w}, "bias": b}
BATCH_SIZES = (1, 8, 64, 256)  # batches are padded up to one of these, so each size is set up once
DIGIT_SHAPE = (CANVAS_PX, CANVAS_PX)
FIELD_SHAPE = (FIELD_HEIGHT, FIELD_WIDTH)


class StringReader(Protocol):
    judge: Judge | None  # how sure to be of a reading once the digit model has had its say; None before judges

    def read(self, fields: np.ndarray) -> list[StringReading]:
        """(n, FIELD_HEIGHT, FIELD_WIDTH) float32 fields (watcher.model.sequence.field_image) -> each one's string."""
        ...


class Classifier(Protocol):
    version: str
    reader: StringReader | None  # reads whole numbers; None in versions without one

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """(n, 28, 28) float32 in [0, 1] -> (n, 10) float32: the chance that each image is each digit.

        A row may sum to less than 1: the rest is the model's chance that the image is no digit at all.
        """
        ...


def digit_shares(probabilities: np.ndarray) -> np.ndarray:
    """Each row's chances among the ten digits alone, summing to 1: what a reading's confidence is made of.

    The chance of no digit helps the number reader choose its cuts; once a cut is chosen, it is a digit, and a
    share of its chance kept back for "no digit" would send sound digits to review.
    """
    shares: np.ndarray = probabilities / np.maximum(probabilities.sum(axis=1, keepdims=True), 1e-12)
    return shares


class ModelError(Exception):
    """A model folder that cannot be served; str() is one line naming the path."""


def latest_version(model_path: Path) -> Path:
    """The highest-numbered complete version folder (holding metadata.json and the model file)."""
    model_path = Path(model_path)
    if not model_path.is_dir():
        raise ModelError(f"{model_path}: model folder not found")
    newest = newest_complete(model_path)
    if newest is None:
        raise ModelError(
            f"{model_path}: no complete model version "
            f"(expected folders 1/, 2/, ... holding {MODEL_FILE} and {METADATA_FILE})"
        )
    return newest


def load_classifier(model_path: Path) -> Classifier:
    """The classifier for the newest complete version under model_path."""
    return load_version(latest_version(model_path))


def load_version(version_dir: Path) -> Classifier:
    """The classifier for one version folder, checked by running it once."""
    version_dir = Path(version_dir)
    try:
        metadata = json.loads((version_dir / METADATA_FILE).read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f"{version_dir / METADATA_FILE}: unreadable model metadata ({error})") from None
    where = version_dir / METADATA_FILE
    reader = None
    if (version_dir / READER_FILE).is_file():
        section = metadata.get(READER_KEY) if isinstance(metadata, dict) else None
        reader = LiteRTReader(
            version_dir / READER_FILE, temperature=_temperature(section, where), judge=_judge(section, where)
        )
        reader.read(np.zeros((1, *FIELD_SHAPE), np.float32))
    classifier = LiteRTClassifier(
        version_dir / MODEL_FILE,
        version=f"{version_dir.parent.name}/{version_dir.name}",
        temperature=_temperature(metadata, where),
        reader=reader,
    )
    classifier.probabilities(np.zeros((1, *DIGIT_SHAPE), np.float32))
    return classifier


def _temperature(metadata: object, where: Path) -> float:
    """The version's calibration temperature (watcher.model.calibration); 1, the model as trained, when it has none."""
    temperature = metadata.get(TEMPERATURE_KEY, 1.0) if isinstance(metadata, dict) else 1.0
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 < temperature < 1e3:
        raise ModelError(f"{where}: {TEMPERATURE_KEY} must be a positive number, got {temperature!r}")
    return float(temperature)


def _judge(section: object, where: Path) -> Judge | None:
    """The reader's judge (watcher.model.sequence.Judge) from its metadata section; None in versions without one."""
    judge = section.get(JUDGE_KEY) if isinstance(section, dict) else None
    if judge is None:
        return None
    weights = judge.get("weights") if isinstance(judge, dict) else None
    bias = judge.get("bias") if isinstance(judge, dict) else None
    if (
        not isinstance(weights, dict)
        or not set(weights) <= set(EVIDENCE)
        or not all(map(_finite, weights.values()))
        or not _finite(bias)
    ):
        named = ", ".join(EVIDENCE)
        raise ModelError(f"{where}: {READER_KEY}.{JUDGE_KEY} needs a bias and weights, numbers, named among {named}")
    return Judge(tuple(float(weights.get(name, 0.0)) for name in EVIDENCE), float(bias))


def _finite(value: object) -> TypeGuard[float]:
    """Whether a metadata value is a finite number (JSON's true and false are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and bool(np.isfinite(value))


class _Batched:
    """A .tflite model in the LiteRT interpreter, one invoke per padded batch of same-shaped images."""

    def __init__(self, model_file: Path, *, shape: tuple[int, int]) -> None:
        self.shape = shape
        # One interpreter per batch size, set up now: resizing one would re-plan memory on every change.
        self._interpreters = {size: _interpreter(model_file, batch_size=size, shape=shape) for size in BATCH_SIZES}
        self._lock = threading.Lock()  # an interpreter must not be invoked from two threads at once

    def outputs(self, images: np.ndarray) -> list[np.ndarray]:
        """The model's output for (n, *shape) images, one array per invoke, padding left out."""
        images = np.asarray(images, np.float32)
        if images.ndim != 3 or images.shape[1:] != self.shape:
            raise ValueError(f"expected images of shape (n, {self.shape[0]}, {self.shape[1]}), got {images.shape}")
        results = []
        with self._lock:
            start = 0
            while start < len(images):
                size = _chunk_size(len(images) - start)
                chunk = images[start : start + size]
                start += len(chunk)
                padded = np.zeros((size, *self.shape, 1), np.float32)
                padded[: len(chunk), :, :, 0] = chunk
                interpreter = self._interpreters[size]
                interpreter.set_tensor(interpreter.get_input_details()[0]["index"], padded)
                interpreter.invoke()
                results.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[: len(chunk)])
        return results


class LiteRTClassifier:
    """Runs the exported digit model in LiteRT, and the version's sequence reader when it has one."""

    def __init__(
        self, model_file: Path, *, version: str, temperature: float = 1.0, reader: StringReader | None = None
    ) -> None:
        self.version = version
        self.temperature = temperature
        self.reader = reader
        self._model = _Batched(model_file, shape=DIGIT_SHAPE)

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        # A model with an eleventh class, no digit, leaves its share out of the ten digits' chances; calibrated over
        # every class, no digit included, as dividing the logits by T would.
        results = [np.zeros((0, DIGITS), np.float32)]
        results += [temper(output, self.temperature)[:, :DIGITS] for output in self._model.outputs(digits)]
        return np.concatenate(results).astype(np.float32)


class LiteRTReader:
    """Runs the exported sequence reader in LiteRT: every field of a batch in few invokes, each decoded whole."""

    def __init__(self, model_file: Path, *, temperature: float = 1.0, judge: Judge | None = None) -> None:
        self.temperature = temperature
        self.judge = judge
        self._model = _Batched(model_file, shape=FIELD_SHAPE)

    def read(self, fields: np.ndarray) -> list[StringReading]:
        fields = np.asarray(fields, np.float32)
        readings: list[StringReading] = []
        for output in self._model.outputs(fields):
            frames = temper(output.reshape(-1, output.shape[-1]), self.temperature).reshape(output.shape)
            chunk = fields[len(readings) : len(readings) + len(frames)]
            readings += [decode(on_ink(one, field)) for one, field in zip(frames, chunk, strict=True)]
        return readings


def _chunk_size(remaining: int) -> int:
    """The batch size for the next invoke: the largest that the remaining digits fill, or the smallest that holds
    them all. Padding 72 digits to 256 would cost 3.5 times the work; 64 then 8 costs one invoke more."""
    filled = [size for size in BATCH_SIZES if size <= remaining]
    return filled[-1] if filled[-1] > 1 else next(size for size in BATCH_SIZES if size >= remaining)


def _interpreter(model_file: Path, *, batch_size: int, shape: tuple[int, int]) -> Any:  # LiteRT ships no types
    """A LiteRT interpreter for model_file with its input fixed to batch_size images of `shape`."""
    with silenced_native_logs():
        from ai_edge_litert.interpreter import Interpreter

        try:
            interpreter = Interpreter(model_path=str(model_file), num_threads=min(4, os.cpu_count() or 1))
            interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], [batch_size, *shape, 1])
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ModelError(f"{model_file}: not a usable model file ({str(error).splitlines()[0]})") from None
    return interpreter


@contextlib.contextmanager
def silenced_native_logs() -> Iterator[None]:
    """Mute C++ start-up chatter (TensorFlow, XNNPACK) that ignores Python's logging and TF_CPP_MIN_LOG_LEVEL."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
