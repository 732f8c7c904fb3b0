"""Train the digit CNN on augmented MNIST plus MNIST rendered as scans and in handwriting styles, calibrate it, and
write the next model version."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from watcher.model.classify import TEMPERATURE_KEY, silenced_native_logs
from watcher.model.dataset import (
    VALIDATION_SEED,
    DatasetError,
    load_mnist,
    load_real_digits,
    sha256_of,
    split_training,
)
from watcher.model.styles import STYLES
from watcher.model.synthetic import (
    CELL_ASPECT,
    NUMBER_LENGTHS,
    SCAN_MIN_SIDE_PX,
    compose_number,
    fill_cell,
    render_number_scan,
    render_scan,
)
from watcher.model.versions import KERAS_FILE, METADATA_FILE, MODEL_FILE
from watcher.vocabulary import CANVAS_PX, CLASSES, DIGITS, NO_DIGIT_CLASS, ExitCode

DEFAULT_OUT = Path("models/mnist-cnn")
BATCH_SIZE = 128
LEARNING_RATE = 2e-3
AUGMENTED_SHARE = 0.85  # the rest of each epoch's MNIST images are left as they are
SCAN_SHARE = 1 / 3  # this share of the training digits is also rendered as scans and re-normalised
SCAN_MAX_SIDE = 240  # rendered scans are kept small: normalisation cost grows with the canvas
CELL_SHARE = 0.15  # this share is also scaled as a picture to fill a box's shape (a 1 becomes a broad bar)
NUMBER_DIGITS = 40_000  # this many training digits are also written as numbers and cut apart again...
SCANNED_NUMBER_SHARE = 0.5  # ...half of them scanned first, half as written at MNIST's own scale
# The eleventh class, no digit, is taught from what the number reader must learn to pass over: scans of two digits
# touching, a tenth as many as the training digits...
TOUCHING_PAIR_SHARE = 0.1
TOUCHING_GAPS = (-3, 0)  # ...overlapping by up to 3 MNIST pixels or just touching: what segmentation cannot split...
FRAGMENT_SHARE = 0.1  # ...and a tenth as many of the segmenter's own candidates that are parts of digits or of two:
WHOLE_INK = 0.6  # candidates holding under 60 % of any one digit's ink...
SPILL_INK = 0.3  # ...or 30 % or more of each of two digits' ink
FRAGMENTS_PER_NUMBER = 3  # drawn from many numbers, not all from a few
STYLED_FRAGMENT_SHARE = 0.1  # as many again from numbers in one writer's style: a marker's or a wide digit's halves
STYLE_SHARE = 1 / 2  # this share of the training digits is also drawn in a style MNIST lacks (watcher.model.styles)
STYLED_NUMBER_DIGITS = 25_000  # ...and this many written as numbers in one writer's style, cut apart again
CALIBRATION_PER_STYLE = 1_000  # validation digits drawn in each style to fit the temperature on, with the plain ones
REAL_REPEATS = 2  # with --real, each real digit is learnt this often an epoch: few beside MNIST's, shapes it lacks
BASE_LEARNING_RATE = 3e-4  # from a version's weights (--from): a seventh of the peak, so they are moved, not relearnt
INPUT = "28x28 float32 in [0,1], ink bright on black, from watcher.vision.normalise.normalise"  # what a version reads


@dataclass(frozen=True)
class Recipe:
    """How a version was trained: written into its metadata, with the mix's numbers (`_mix`), so one command
    reproduces it."""

    name: str
    data: str
    data_sha256: str | None
    real: str | None  # the real digits learnt beside MNIST (--real), less the share held out of them
    real_sha256: str | None
    epochs: int
    seed: int
    trained_from: str | None  # the version whose weights training started from; None: from scratch
    learning_rate: float  # the cosine schedule's peak
    command: str


@dataclass(frozen=True)
class Digits:
    """MNIST as training uses it: the training digits (with the real ones, if any), the validation digits held out of
    them, the test split; and each real collection's held-out digits."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_validation: np.ndarray
    y_validation: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    real_validation: dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Made:
    """The digits made once per run from the training digits, learnt beside MNIST itself in every epoch."""

    images: np.ndarray  # (n, 28, 28) float32 in [0, 1]
    targets: np.ndarray  # (n, CLASSES) one-hot
    counts: dict[str, int]  # how many of each kind, under their metadata keys


@dataclass(frozen=True)
class Figures:
    """How the trained model reads: MNIST test accuracy, and its calibration on validation digits."""

    test_accuracy: float
    temperature: float
    calibration_digits: int
    real_validation_accuracy: dict[str, float]  # by real collection, on its held-out digits


def run(
    *,
    data: Path | None,
    epochs: int,
    seed: int,
    out: Path | None,
    base: Path | None = None,
    limit: int | None = None,
    real: Path | None = None,
) -> int:
    """Train for `epochs`, evaluate on the MNIST test split, write out/<next>/; 0 on success, 78 on bad input.

    The validation digits (watcher.model.dataset) are held out, so the benches can tune on digits the model never
    saw. With `base` (a version folder) training starts from its weights at a lower rate instead of from scratch.
    With `real` (real-digits.npz), its collections' digits are learnt beside MNIST's, less a share held out to
    report on (watcher.model.dataset.load_real_digits, as the sequence reader holds them out).
    `limit` trains on the first `limit` training digits only (for tests).
    """
    out = Path(out) if out is not None else DEFAULT_OUT
    try:
        digits = _load(data, real=real, base=base, limit=limit)
    except DatasetError as error:
        print(f"digit-watcher train: {error}", file=sys.stderr)
        return ExitCode.BAD_CONFIG
    started = time.monotonic()
    rng = _seeded(seed)
    made = _make_digits(digits.x_train, digits.y_train, rng=rng)
    model, peak = _start_model(base)
    _fit(model, digits, made, epochs=epochs, peak=peak, rng=rng)
    figures = _evaluate(model, digits, rng=rng)
    minutes = (time.monotonic() - started) / 60
    held = "".join(f", held-out {name} {share:.2%}" for name, share in figures.real_validation_accuracy.items())
    print(
        f"test accuracy {figures.test_accuracy:.4%} after {epochs} epochs ({minutes:.1f} min){held}, "
        f"temperature {figures.temperature}"
    )
    recipe = Recipe(
        name=out.name,
        data=str(data) if data is not None else "keras.datasets.mnist",
        data_sha256=sha256_of(data) if data is not None else None,
        real=str(real) if real is not None else None,
        real_sha256=sha256_of(real) if real is not None else None,
        epochs=epochs,
        seed=seed,
        trained_from=f"{base.parent.name}/{base.name}" if base is not None else None,
        learning_rate=peak,
        command=_reproduce_command(data=data, real=real, epochs=epochs, seed=seed, out=out, base=base),
    )
    metadata = _metadata(recipe, digits, made, figures, base=base, minutes=minutes)
    version_dir = write_version(out, model=model, metadata=metadata)
    print(f"wrote {version_dir}")
    return ExitCode.OK


def _load(data: Path | None, *, real: Path | None, base: Path | None, limit: int | None) -> Digits:
    """MNIST split for training (its first `limit` training digits only, when given), with the real digits to learn
    from REAL_REPEATS times over; DatasetError when either cannot be read, or the base has no weights to start from."""
    x_train, y_train, x_test, y_test = load_mnist(data)
    if base is not None and not (base / KERAS_FILE).is_file():
        raise DatasetError(f"{base}: no {KERAS_FILE} to start from")
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    (x_train, y_train), (x_validation, y_validation) = split_training(x_train, y_train)
    print(f"held out {len(x_validation)} training digits for validation", flush=True)
    collections = load_real_digits(real) if real is not None else {}
    for name, ((x_fit, y_fit), (x_held, _)) in collections.items():
        x_train = np.concatenate([x_train, *[x_fit] * REAL_REPEATS])
        y_train = np.concatenate([y_train, *[y_fit] * REAL_REPEATS])
        print(f"learning {len(x_fit)} {name} digits, {REAL_REPEATS} times an epoch; held out {len(x_held)}", flush=True)
    held = {name: split[1] for name, split in collections.items()}
    return Digits(x_train, y_train, x_validation, y_validation, x_test, y_test, held)


def _seeded(seed: int) -> np.random.Generator:
    """Keras imported (quietly) and seeded, and the generator of the run's own draws: one seed fixes weights,
    shuffling and augmentation, so a run can be reproduced."""
    from watcher.model.network import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    return np.random.default_rng(seed)


def _make_digits(x_train: np.ndarray, y_train: np.ndarray, *, rng: np.random.Generator) -> Made:
    """The training digits as serving sees them (scanned, cut out of numbers, in styles, filling a box), and
    candidates that are no digit, made once for the whole run."""
    scans, scan_labels = _through_normalise(
        x_train,
        y_train,
        share=SCAN_SHARE,
        render=lambda digit: render_scan(digit, rng, max_side=SCAN_MAX_SIDE),
        rng=rng,
    )
    print(f"rendered {len(scans)} training digits as scans and normalised them back", flush=True)
    cut, cut_labels = _numbers_through_segmentation(x_train, y_train, rng=rng)
    print(f"wrote training digits as numbers and cut {len(cut)} digits back out", flush=True)
    styled, styled_labels = _styled(x_train, y_train, rng=rng)
    print(f"drew {len(styled)} training digits in handwriting styles, alone and in numbers", flush=True)
    pairs = _touching_pairs(x_train, rng=rng)
    print(f"drew {len(pairs)} scans of two digits touching", flush=True)
    fragments = _fragments(x_train, rng=rng)
    print(f"kept {len(fragments)} candidates that are parts of digits or spill over two", flush=True)
    cells, cell_labels = _through_normalise(
        x_train, y_train, share=CELL_SHARE, render=lambda digit: fill_cell(digit, rng), rng=rng
    )
    print(f"scaled {len(cells)} training digits to fill a box, pen and all", flush=True)
    # No digit is a class of its own, so the number reader (watcher.vision.options.choose) can tell a part of a digit
    # from a digit, while the ten digits' shares among themselves stay what review's threshold was chosen on.
    no_digit = np.full(len(pairs) + len(fragments), NO_DIGIT_CLASS)
    return Made(
        images=np.concatenate([scans, cut, styled, cells, pairs, fragments]),
        targets=_one_hot(np.concatenate([scan_labels, cut_labels, styled_labels, cell_labels, no_digit])),
        counts={
            "scan_rendered_digits": len(scans),
            "cell_filling_digits": len(cells),
            "number_cut_digits": len(cut),
            "touching_pair_scans": len(pairs),
            "fragment_candidates": len(fragments),
            "styled_digits": len(styled),
        },
    )


def _start_model(base: Path | None) -> tuple[Any, float]:
    """The model to train, fresh or with the base's weights, and the peak learning rate to train it at."""
    import keras

    from watcher.model.network import build_model

    if base is None:
        return build_model(), LEARNING_RATE
    return keras.models.load_model(base / KERAS_FILE), BASE_LEARNING_RATE


def _fit(model: Any, digits: Digits, made: Made, *, epochs: int, peak: float, rng: np.random.Generator) -> None:
    """Train `model` for `epochs` on the training digits, distorted afresh each epoch, and on the made ones."""
    import keras

    from watcher.model.network import augment

    mnist = digits.x_train.astype(np.float32) / 255.0
    steps_per_epoch = -(-(len(mnist) + len(made.images)) // BATCH_SIZE)
    # Cosine decay to zero: a high rate early to learn fast, a low one at the end to settle.
    schedule = keras.optimizers.schedules.CosineDecay(peak, decay_steps=max(1, epochs * steps_per_epoch))
    model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss="categorical_crossentropy", metrics=["categorical_accuracy"]
    )
    for epoch in range(epochs):
        # Fresh distortions every epoch, so the network never sees the same digit twice.
        chosen = rng.random(len(mnist)) < AUGMENTED_SHARE
        epoch_mnist = mnist.copy()
        epoch_mnist[chosen] = augment(mnist[chosen], rng)
        images = np.concatenate([epoch_mnist, made.images])[..., None]
        targets = np.concatenate([_one_hot(digits.y_train), made.targets])
        model.fit(images, targets, batch_size=BATCH_SIZE, epochs=epoch + 1, initial_epoch=epoch, shuffle=True)


def _evaluate(model: Any, digits: Digits, *, rng: np.random.Generator) -> Figures:
    """MNIST test accuracy, served as the classifier serves it (the likeliest of the ten digits), and the temperature
    fitted on the validation digits."""
    test_accuracy = float(np.mean(_read(model, digits.x_test) == digits.y_test))
    temperature, calibration_digits = _fit_temperature(model, digits.x_validation, digits.y_validation, rng=rng)
    real = {name: round(float(np.mean(_read(model, x) == y)), 4) for name, (x, y) in digits.real_validation.items()}
    return Figures(test_accuracy, temperature, calibration_digits, real)


def _read(model: Any, images: np.ndarray) -> np.ndarray:
    """The digit the model reads in each 28x28 uint8 image, as the classifier serves it (the likeliest of ten)."""
    probabilities = model.predict(images.astype(np.float32)[..., None] / 255.0, batch_size=1024, verbose=0)
    read: np.ndarray = probabilities[:, :NO_DIGIT_CLASS].argmax(axis=1)
    return read


def _metadata(
    recipe: Recipe, digits: Digits, made: Made, figures: Figures, *, base: Path | None, minutes: float
) -> dict[str, object]:
    """What metadata.json says of a trained version: its recipe, what it learnt from, how it reads."""
    import keras
    import tensorflow as tf

    return {
        **asdict(recipe),
        "training_digits": len(digits.x_train),
        "validation_digits": len(digits.x_validation),
        "validation": _validation(base),
        **made.counts,
        **_mix(),
        TEMPERATURE_KEY: figures.temperature,
        "calibration": calibration(figures.calibration_digits, per_style=CALIBRATION_PER_STYLE),
        "test_accuracy": round(figures.test_accuracy, 6),
        "real_validation_accuracy": figures.real_validation_accuracy,
        "training_minutes": round(minutes, 1),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "input": INPUT,
    }


def _mix() -> dict[str, dict[str, object]]:
    """What each part of the training mix is made of, as numbers: this module's constants, under metadata keys."""
    from watcher.model.network import AUGMENTATION

    lengths = [NUMBER_LENGTHS[0], NUMBER_LENGTHS[-1]]  # of the numbers written, shortest and longest
    return {
        "augmentation": {"share": AUGMENTED_SHARE, **asdict(AUGMENTATION)},
        "scan_rendering": {"share": SCAN_SHARE, "canvas_px": [SCAN_MIN_SIDE_PX, SCAN_MAX_SIDE]},
        "cell_filling": {"share": CELL_SHARE, "width_to_height": list(CELL_ASPECT)},
        "number_cutting": {"digits": NUMBER_DIGITS, "lengths": lengths, "scanned_share": SCANNED_NUMBER_SHARE},
        "styles": {
            "share": STYLE_SHARE,
            "styles": list(STYLES),
            "number_digits": STYLED_NUMBER_DIGITS,
            "lengths": lengths,
        },
        "touching_pairs": {"share": TOUCHING_PAIR_SHARE, "gap_px": list(TOUCHING_GAPS), "class": NO_DIGIT_CLASS},
        "fragments": {
            "share": FRAGMENT_SHARE,
            "styled_share": STYLED_FRAGMENT_SHARE,
            "whole_ink_under": WHOLE_INK,
            "spill_ink_at_least": SPILL_INK,
            "per_number": FRAGMENTS_PER_NUMBER,
            "class": NO_DIGIT_CLASS,
        },
    }


def calibration(digits: int, *, per_style: int) -> dict[str, object]:
    """metadata.json's `calibration`: the temperature fitted on `digits` validation digits, up to `per_style` drawn
    in each style and the plain ones (here after training, and by bench/calibrate.py)."""
    return {"by": "watcher.model.calibration.fit_temperature", "validation_digits": digits, "per_style": per_style}


def _through_normalise(
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    share: float,
    render: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """A share of the training digits rendered as the daemon would decode them, normalised back: what serving will
    feed the net."""
    from watcher.vision.normalise import normalise

    picked = rng.choice(len(x_train), size=int(len(x_train) * share), replace=False)
    images, labels = [], []
    for index in picked:
        digit = normalise(render(x_train[index]))
        if digit is not None:
            images.append(digit)
            labels.append(y_train[index])
    return np.asarray(images, np.float32).reshape(-1, CANVAS_PX, CANVAS_PX), np.asarray(labels, np.uint8)


def _styled(x_train: np.ndarray, y_train: np.ndarray, *, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Training digits drawn in the styles MNIST lacks: alone (as the daemon normalises a single digit), and written
    as numbers by one writer, cut back out (as the number reader sees them)."""
    from watcher.model.styles import styled_digits

    per_style = int(len(x_train) * STYLE_SHARE / len(STYLES))
    images, labels, _ = styled_digits(x_train, y_train, rng, per_style=per_style)
    cut, cut_labels = _cut_numbers(
        x_train,
        y_train,
        count=min(STYLED_NUMBER_DIGITS, len(x_train)),
        write=lambda digits: _styled_number_page(digits, rng)[0],
        rng=rng,
    )
    return np.concatenate([images, cut]), np.concatenate([labels, cut_labels]).astype(np.uint8)


def _fit_temperature(
    model: Any, x_validation: np.ndarray, y_validation: np.ndarray, *, rng: np.random.Generator
) -> tuple[float, int]:
    """The temperature that calibrates the model on validation digits in every style and plain; and their count."""
    from watcher.model.calibration import fit_temperature
    from watcher.model.styles import styled_digits
    from watcher.vision.normalise import normalise

    per_style = min(CALIBRATION_PER_STYLE, len(x_validation))
    styled, labels, _ = styled_digits(x_validation, y_validation, rng, per_style=per_style)
    plain = [normalise(digit) for digit in x_validation]
    inked = [image for image in plain if image is not None]
    images = np.concatenate([styled, np.asarray(inked, np.float32).reshape(-1, CANVAS_PX, CANVAS_PX)])
    truths = np.concatenate([labels, y_validation[[image is not None for image in plain]]])
    probabilities = model.predict(images[..., None], batch_size=1024, verbose=0)
    return fit_temperature(probabilities, truths.astype(np.int64)), len(images)


def _numbers_through_segmentation(
    x_train: np.ndarray, y_train: np.ndarray, *, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Training digits written side by side, some scanned, and cut apart again: a digit as serving sees it inside
    a number, small, with slivers of its neighbours and cut where it touched them."""

    def write(digits: np.ndarray) -> np.ndarray:
        ink, _ = compose_number(digits, rng)
        return render_number_scan(ink, rng) if rng.random() < SCANNED_NUMBER_SHARE else ink

    return _cut_numbers(x_train, y_train, count=NUMBER_DIGITS, write=write, rng=rng)


def _cut_numbers(
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    count: int,
    write: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """`count` training digits written as numbers by `write` (MNIST digits -> a page) and cut apart by the segmenter's
    own reading; numbers cut into the wrong count of digits are left out."""
    from watcher.vision.digits import candidates
    from watcher.vision.options import choose

    picked = rng.permutation(len(x_train))[:count]
    images: list[np.ndarray] = []
    labels: list[np.uint8] = []
    start = 0
    while start < len(picked):
        digits = picked[start : start + int(rng.choice(NUMBER_LENGTHS))]
        start += len(digits)
        found = candidates(write(x_train[digits]), mode="number")
        # With every image equally sure, the choice is the geometry's own reading, free of the model's say.
        reading = choose(np.ones((len(found.images), DIGITS), np.float32), found)
        if len(reading) == len(digits):
            images.extend(found.images[reading])
            labels.extend(y_train[digits])
    return np.asarray(images, np.float32).reshape(-1, CANVAS_PX, CANVAS_PX), np.asarray(labels, np.uint8)


def _touching_pairs(x_train: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """Scans of two training digits touching, normalised as serving reads a page as one digit."""
    from watcher.vision.normalise import normalise

    images: list[np.ndarray] = []
    while len(images) < TOUCHING_PAIR_SHARE * len(x_train):
        ink, _ = compose_number(x_train[rng.choice(len(x_train), size=2)], rng, gaps=TOUCHING_GAPS)
        image = normalise(render_number_scan(ink, rng))
        if image is not None:
            images.append(image)
    return np.asarray(images, np.float32).reshape(-1, CANVAS_PX, CANVAS_PX)


def _fragments(x_train: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """Candidate digits the segmenter offers in written numbers that are not one digit: a part of one, or parts
    of two; from numbers at MNIST's own scale and from numbers in one writer's style."""
    plain = _number_fragments(x_train, count=int(FRAGMENT_SHARE * len(x_train)), write=compose_number, rng=rng)
    count = int(STYLED_FRAGMENT_SHARE * len(x_train))
    drawn = _number_fragments(x_train, count=count, write=_styled_number_page, rng=rng)
    return np.concatenate([plain, drawn])


def _styled_number_page(digits: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The digits written as a number by a writer of a random style, on paper; and the ink each puts in each column."""
    from watcher.model.styles import compose_styled_number, draw_writer
    from watcher.model.synthetic import print_on_paper

    ink, columns = compose_styled_number(digits, draw_writer(str(rng.choice(STYLES)), rng), rng)
    return print_on_paper(ink, rng, effects=set()), columns


def _number_fragments(
    x_train: np.ndarray,
    *,
    count: int,
    write: Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
) -> np.ndarray:
    """`count` candidates that are not one digit in numbers `write` makes (digits -> the page and the ink each
    digit puts in each of its columns), where each digit's columns are known."""
    from watcher.vision.digits import candidates

    images: list[np.ndarray] = []
    while len(images) < count:
        page, columns = write(x_train[rng.choice(len(x_train), size=int(rng.choice(NUMBER_LENGTHS)))], rng)
        found = candidates(page, mode="number")
        # The share of each digit's ink that lies within each candidate's columns.
        shares = np.array([columns[:, left:right].sum(axis=1) for left, right in found.spans]) / columns.sum(axis=1)
        parts = np.flatnonzero((shares.max(axis=1) < WHOLE_INK) | ((shares >= SPILL_INK).sum(axis=1) >= 2))
        images.extend(found.images[rng.permutation(parts)[:FRAGMENTS_PER_NUMBER]])
    return np.asarray(images[:count], np.float32).reshape(-1, CANVAS_PX, CANVAS_PX)


def _validation(base: Path | None) -> dict[str, object]:
    """What the metadata says of the validation digits: held out (watcher.model.dataset.validation_indices, by their
    seed), and whether the base was trained on them before."""
    # A version from before the split saw them: its weights carry them into this one, so validation figures flatter it.
    return {"seed": VALIDATION_SEED, "base_trained_on_them": base is not None and not _held_validation_out(base)}


def _held_validation_out(version: Path) -> bool:
    """Whether a version's metadata says it was trained with the validation digits held out."""
    try:
        return "validation_digits" in json.loads((version / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return False


def _one_hot(labels: np.ndarray) -> np.ndarray:
    one_hot: np.ndarray = np.eye(CLASSES, dtype=np.float32)[labels]
    return one_hot


def _reproduce_command(
    *, data: Path | None, real: Path | None, epochs: int, seed: int, out: Path, base: Path | None
) -> str:
    words = ["digit-watcher", "train"]
    if data is not None:
        words += ["--data", str(data)]
    if real is not None:
        words += ["--real", str(real)]
    if base is not None:
        words += ["--from", str(base)]
    words += ["--epochs", str(epochs), "--seed", str(seed), "--out", str(out)]
    return shlex.join(words)


def write_version(out: Path, *, model: Any, metadata: dict[str, object], carried: Sequence[Path] = ()) -> Path:
    """Build the version under a hidden name, then rename it to the next number: readers never see half. The
    `carried` files (another version's) are copied into it unchanged."""
    staging = staging_folder(out)
    for path in carried:
        shutil.copy2(path, staging / path.name)
    model.save(staging / KERAS_FILE)
    # Serving runs the LiteRT interpreter: no TensorFlow import, and far less per-call overhead.
    (staging / MODEL_FILE).write_bytes(quantised_tflite(model))
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return publish_version(staging, out)


def quantised_tflite(model: Any) -> bytes:
    """A Keras model converted for LiteRT with dynamic-range quantisation: weights in 8 bits, activations float.
    Every model is served so (train, train --corrections, train --reader). Quantised, version 14's reader and digit
    model cost about half the CPU a field and read as many numbers and digits right, but their probabilities shift a
    little: a judge fitted on the float pair's ranks less well, so judges are fitted on the served models."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with silenced_native_logs(), contextlib.redirect_stdout(io.StringIO()):
        return bytes(converter.convert())


def staging_folder(out: Path) -> Path:
    """An empty hidden folder in `out` to build a version in: the model folder never lists it as a version."""
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".incomplete-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def publish_version(staging: Path, out: Path) -> Path:
    """Rename a built version folder to the next number in `out`, in one step: readers never see half of it."""
    while True:
        number = 1 + max((int(entry.name) for entry in out.iterdir() if entry.name.isdigit()), default=0)
        try:
            staging.rename(out / str(number))
        except OSError:
            if (out / str(number)).exists():
                continue  # another training run took this number meanwhile
            raise
        return out / str(number)
