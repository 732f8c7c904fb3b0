"""`train --corrections`: fine-tune the served version on what people decided, mixed with MNIST, and write the next one.

A short, gentle run from the served weights: each epoch is a fresh draw of MNIST training digits (augmented as in
training, so nothing is forgotten) with the corrections repeated among them. The version is written only when
MNIST test accuracy holds (it may not drop by more than MAX_MNIST_DROP); a fifth of the decided scans is held back
and the gain on them printed and kept in the metadata.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from watcher.model.classify import READER_FILE, READER_KERAS_FILE, READER_KEY, ModelError, latest_version
from watcher.model.corrections import Corrections, CorrectionsError, load_corrections
from watcher.model.dataset import DatasetError, load_mnist, sha256_of, split_training
from watcher.model.versions import KERAS_FILE, METADATA_FILE
from watcher.vocabulary import CLASSES, NO_DIGIT_CLASS, ExitCode

DEFAULT_EPOCHS = 4
MNIST_PER_EPOCH = 20_000  # training digits drawn afresh each epoch, so the corrections stay a small share
CORRECTION_SHARE = 0.15  # of each epoch: the corrections repeated (and augmented) to this share
LEARNING_RATE = 3e-4  # a tenth of training's peak: the served weights are moved, not relearnt
BATCH_SIZE = 128
AUGMENTED_SHARE = 0.85  # as in training
MAX_MNIST_DROP = 0.001  # 0.1 point of MNIST test accuracy, the most a fine-tune may cost


@dataclass(frozen=True)
class Mix:
    """What each epoch of a fine-tune is made of, and the rate it learns at."""

    mnist_per_epoch: int = MNIST_PER_EPOCH
    correction_share: float = CORRECTION_SHARE
    augmented_share: float = AUGMENTED_SHARE
    learning_rate: float = LEARNING_RATE


@dataclass(frozen=True)
class Recipe:
    """How a fine-tune was made: written into the version's metadata, so one command reproduces it."""

    name: str
    fine_tuned_from: str
    corrections: str
    corrections_sha256: str
    corrections_count: int
    corrections_scans: int
    corrections_skipped: int
    corrections_held_back: int
    data: str
    data_sha256: str | None
    epochs: int
    seed: int
    mix: Mix
    command: str


def run(
    *,
    corrections: Path,
    data: Path | None,
    epochs: int,
    seed: int,
    out: Path,
    templates: Path | None = None,
    max_mnist_drop: float = MAX_MNIST_DROP,
) -> int:
    """Fine-tune the newest version under `out` on `corrections`, write out/<next>/; 0 on success, 78 on bad input.

    1 when MNIST test accuracy fell by more than `max_mnist_drop`: then nothing is written.
    """
    try:
        decided = load_corrections(corrections, templates=templates)
        base = latest_version(out)
        x_train, y_train, x_test, y_test = load_mnist(data)
    except (CorrectionsError, ModelError, DatasetError) as error:
        print(f"digit-watcher train: {error}", file=sys.stderr)
        return ExitCode.BAD_CONFIG
    (x_train, y_train), _ = split_training(x_train, y_train)
    trained_on, held_back = decided.part(held_back=False), decided.part(held_back=True)
    print(
        f"{decided.scans} decided scans ({len(decided.labels)} digits, {decided.skipped} skipped): "
        f"{len(trained_on[1])} digits to learn from, {len(held_back[1])} held back",
        flush=True,
    )
    started = time.monotonic()
    model, rng = _load_seeded(base / KERAS_FILE, seed)
    tests = {"mnist_test": (x_test.astype(np.float32) / 255.0, y_test), "held_back": held_back}
    before = _accuracies(model, tests)
    _fit(model, x_train, y_train, trained_on, epochs=epochs, rng=rng)
    after = _accuracies(model, tests)
    minutes = (time.monotonic() - started) / 60
    for name, what in (("mnist_test", "MNIST test"), ("held_back", "held-back corrections")):
        print(f"{what:<22} {before[name]:.2%} -> {after[name]:.2%}")
    if after["mnist_test"] < before["mnist_test"] - max_mnist_drop:
        print(
            f"digit-watcher train: not written: MNIST test accuracy fell by more than {max_mnist_drop:.1%}",
            file=sys.stderr,
        )
        return ExitCode.FAILURE
    recipe = _recipe(
        decided, corrections=corrections, templates=templates, base=base, data=data, epochs=epochs, seed=seed, out=out
    )
    version_dir = _write(out, base=base, model=model, metadata=_metadata(recipe, before, after, minutes=minutes))
    print(f"wrote {version_dir}")
    return ExitCode.OK


def _load_seeded(keras_file: Path, seed: int) -> tuple[Any, np.random.Generator]:
    """The served version's Keras model, and the generator of the run's own draws: one seed fixes both, and
    Keras's shuffling."""
    from watcher.model.network import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    return keras.models.load_model(keras_file), rng


def _accuracies(model: Any, tests: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """The model's accuracy on each named test set."""
    return {name: accuracy(model, images, labels) for name, (images, labels) in tests.items()}


def _fit(
    model: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    corrections: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    rng: np.random.Generator,
) -> None:
    """Train `model` for `epochs` at a fixed low rate, each epoch a fresh MNIST draw with the corrections among it."""
    import keras

    from watcher.model.network import augment

    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss="categorical_crossentropy",
        metrics=["categorical_accuracy"],
    )
    for epoch in range(epochs):
        images, labels = _epoch(x_train, y_train, corrections, rng=rng, augment=augment)
        targets = np.eye(CLASSES, dtype=np.float32)[labels]
        model.fit(
            images[..., None], targets, batch_size=BATCH_SIZE, epochs=epoch + 1, initial_epoch=epoch, shuffle=True
        )


def accuracy(model: Any, images: np.ndarray, labels: np.ndarray) -> float:
    """The share read right, served as the classifier serves: the likeliest of the ten digits."""
    if not len(labels):
        return float("nan")
    probabilities = model.predict(images[..., None], batch_size=1024, verbose=0)
    return float(np.mean(probabilities[:, :NO_DIGIT_CLASS].argmax(axis=1) == labels))


def _epoch(
    x_train: np.ndarray,
    y_train: np.ndarray,
    corrections: tuple[np.ndarray, np.ndarray],
    *,
    rng: np.random.Generator,
    augment: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's digits: a fresh MNIST draw and the corrections repeated, each augmented as training does."""
    drawn = rng.choice(len(x_train), size=min(MNIST_PER_EPOCH, len(x_train)), replace=False)
    mnist = x_train[drawn].astype(np.float32) / 255.0
    repeats = rng.choice(len(corrections[1]), size=int(len(drawn) * CORRECTION_SHARE / (1 - CORRECTION_SHARE)))
    images = np.concatenate([mnist, corrections[0][repeats]])
    chosen = rng.random(len(images)) < AUGMENTED_SHARE
    images[chosen] = augment(images[chosen], rng)
    return images, np.concatenate([y_train[drawn], corrections[1][repeats]]).astype(np.int64)


def _recipe(
    decided: Corrections,
    *,
    corrections: Path,
    templates: Path | None,
    base: Path,
    data: Path | None,
    epochs: int,
    seed: int,
    out: Path,
) -> Recipe:
    """What the fine-tune started from and learnt from, and the command that makes it again."""
    command = ["digit-watcher", "train", "--corrections", str(corrections)]
    command += ["--templates", str(templates)] if templates is not None else []
    command += ["--data", str(data)] if data is not None else []
    command += ["--epochs", str(epochs), "--seed", str(seed), "--out", str(out)]
    return Recipe(
        name=out.name,
        fine_tuned_from=f"{base.parent.name}/{base.name}",
        corrections=str(corrections),
        corrections_sha256=decided.sha256,
        corrections_count=len(decided.labels),
        corrections_scans=decided.scans,
        corrections_skipped=decided.skipped,
        corrections_held_back=int(decided.held_back.sum()),
        data=str(data) if data is not None else "keras.datasets.mnist",
        data_sha256=sha256_of(data) if data is not None else None,
        epochs=epochs,
        seed=seed,
        mix=Mix(),
        command=shlex.join(command),
    )


def _metadata(
    recipe: Recipe, before: dict[str, float], after: dict[str, float], *, minutes: float
) -> dict[str, object]:
    """What metadata.json says of a fine-tuned version: its recipe, and how it read before and after."""
    import keras
    import tensorflow as tf

    from watcher.model.train import INPUT

    return {
        **asdict(recipe),
        "training_minutes": round(minutes, 1),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": INPUT,
        **{f"{name}_accuracy_before": round(value, 6) for name, value in before.items()},
        **{f"{name}_accuracy_after": round(value, 6) for name, value in after.items()},
        "test_accuracy": round(after["mnist_test"], 6),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _write(out: Path, *, base: Path, model: Any, metadata: dict[str, object]) -> Path:
    """Write the next version under `out`, with the base's sequence reader beside the fine-tuned digit model."""
    from watcher.model.train import write_version

    # The base's sequence reader reads numbers as before: only the digit model learnt from the corrections.
    reader = [base / name for name in (READER_FILE, READER_KERAS_FILE) if (base / name).is_file()]
    if reader:
        metadata = {**metadata, READER_KEY: json.loads((base / METADATA_FILE).read_text())[READER_KEY]}
    return write_version(out, model=model, metadata=metadata, carried=reader)
