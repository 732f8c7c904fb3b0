"""Train the sequence reader on synthetic fields and real register cells, resumably, and write it into a version.

The story: render the fields once (cached), train with CTC in epochs that end in a checkpoint, fit the confidence's
temperature on validation fields, export to LiteRT beside the digit model of the version it extends.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from watcher.model.calibration import temper
from watcher.model.classify import READER_FILE, READER_KERAS_FILE, READER_KEY, silenced_native_logs
from watcher.model.dataset import DatasetError, load_mnist, sha256_of, split_training
from watcher.model.fields import MARK, DigitPool, as_mnist, draw_field, label_of
from watcher.model.sequence import BLANK_CLASS, MARK_CLASS, build_reader, decode, serving_reader
from watcher.model.train import publish_version, staging_folder
from watcher.model.versions import KERAS_FILE, METADATA_FILE, MODEL_FILE
from watcher.vision.field import FIELD_HEIGHT, FIELD_WIDTH, field_image, without_dark_margins
from watcher.vision.normalise import ink_map
from watcher.vocabulary import REVIEW_THRESHOLD, ExitCode

TRAINING_FIELDS = 80_000  # synthetic fields rendered once and cached (the shipped reader's)
EPOCHS = 3  # the shipped reader's: about an hour on 2 cores
VALIDATION_FIELDS = 3_000  # from digits held out of training: tuning and the temperature
POPULATION_WEIGHTS = (0.55, 0.15, 0.30)  # MNIST, USPS, ARDIS: the real digits MNIST lacks are drawn more often
HELD_OUT_SHARE = 0.1  # of USPS and ARDIS, kept for validation fields (MNIST has its own validation digits)
HELD_OUT_SEED = 20_261_206
MAX_INK_SHARE = 0.3  # a register cell whose cleaned ink covers more than this is a scanner band, not writing
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
CHUNK = 500  # fields rendered per task in a worker
CHECKPOINT_SECONDS = 600  # a checkpoint at least this often, and at every epoch's end
TEMPERATURES = np.exp(np.linspace(np.log(0.5), np.log(8.0), 41))  # searched for the confidence's calibration
ACCEPTED_WRONG = 0.01  # at most this share of the readings accepted at that threshold may be wrong


@dataclass(frozen=True)
class Recipe:
    """How a reader was made: written into the version's metadata, so one command reproduces it."""

    command: str
    mnist: str
    mnist_sha256: str
    real_digits: str
    real_digits_sha256: str
    register_rows: str
    synthetic_fields: int
    register_cells: int
    epochs: int
    seed: int
    # Parenthesised: a string on the next line alone would be a statement of its own, not the rest of the default.
    generator: str = (
        "watcher.model.fields.draw_field (lengths 1-8, separators, signs, trailing marks, styles, joins, "
        "clutter, paper, JPEG) through watcher.vision.normalise.ink_map and watcher.model.sequence.field_image"
    )
    register_licence: str = (
        "Danish parish register row numbers (Cabello Piqueras et al., ICFHR 2022); licence not "
        "stated: used for training only"
    )


@dataclass(frozen=True)
class Fields:
    """The fields the reader learns from and is measured on, as it sees them: images (n, H, W) uint8, and labels."""

    train: tuple[np.ndarray, list[str]]  # synthetic
    validation: tuple[np.ndarray, list[str]]  # synthetic, from held-out digits
    cells: tuple[np.ndarray, list[str]]  # the register's
    validation_cells: tuple[np.ndarray, list[str]]


def run(
    *,
    mnist: Path,
    real: Path,
    rows: Path,
    base: Path,
    out: Path,
    epochs: int,
    seed: int,
    resume: bool,
    cache: Path,
    fields: int = TRAINING_FIELDS,
    validation_fields: int = VALIDATION_FIELDS,
) -> int:
    """Train the reader and write base's digit model with it as out/<next>/; 0 on success, 78 on bad input."""
    try:
        pools = _inputs(mnist, real, rows=rows, base=base)
    except DatasetError as error:
        print(f"digit-watcher train: {error}", file=sys.stderr)
        return ExitCode.BAD_CONFIG
    started = time.monotonic()
    data = _fields(pools, rows=rows, cache=cache, seed=seed, count=fields, validation_count=validation_fields)
    print(f"{len(data.train[0])} synthetic fields and {len(data.cells[0])} register cells to train on", flush=True)
    images = np.concatenate([data.train[0], data.cells[0]])
    labels = data.train[1] + data.cells[1]
    reader = _train(images, labels, epochs=epochs, seed=seed, checkpoints=cache / f"checkpoints-{seed}", resume=resume)
    temperature, figures = _calibrate(reader, data)
    print(json.dumps(figures), flush=True)
    recipe = Recipe(
        command=f"digit-watcher train --reader --data {mnist} --real {real} --rows {rows} --from {base} "
        f"--epochs {epochs} --seed {seed} --out {out}",
        mnist=str(mnist),
        mnist_sha256=sha256_of(mnist),
        real_digits=str(real),
        real_digits_sha256=sha256_of(real),
        register_rows=str(rows),
        synthetic_fields=len(data.train[0]),
        register_cells=len(data.cells[0]),
        epochs=epochs,
        seed=seed,
    )
    minutes = round((time.monotonic() - started) / 60, 1)
    section = {**asdict(recipe), "temperature": temperature, "training_minutes": minutes, **figures}
    version = write_reader_version(out, base=base, reader=reader, section=section)
    print(f"wrote {version}", flush=True)
    return ExitCode.OK


def _inputs(mnist: Path, real: Path, *, rows: Path, base: Path) -> tuple[DigitPool, DigitPool]:
    """The digit pools (`_pools`), once every input is known to be there; DatasetError naming the first that is
    not."""
    pools = _pools(mnist, real)
    for split in ("train", "validation"):
        if not (rows / split / "labels.csv").is_file():
            raise DatasetError(f"{rows / split}: no labels.csv of register cells")
    for name in (MODEL_FILE, KERAS_FILE):
        if not (base / name).is_file():
            raise DatasetError(f"{base}: no {name} to serve beside the reader")
    return pools


def _fields(
    pools: tuple[DigitPool, DigitPool], *, rows: Path, cache: Path, seed: int, count: int, validation_count: int
) -> Fields:
    """The synthetic fields rendered and the register's cells read, each from the cache when there."""
    cache.mkdir(parents=True, exist_ok=True)
    # Rendering is the slow part on a CPU: it is done once per seed and size, and kept.
    return Fields(
        train=_cached(cache / f"fields-{seed}-{count}.npz", lambda: _render(pools[0], count, seed)),
        validation=_cached(
            cache / f"fields-validation-{validation_count}.npz", lambda: _render(pools[1], validation_count, seed + 1)
        ),
        cells=_cached(cache / "register-train.npz", lambda: _register_cells(rows / "train")),
        validation_cells=_cached(cache / "register-validation.npz", lambda: _register_cells(rows / "validation")),
    )


def _calibrate(reader: Any, data: Fields) -> tuple[float, dict[str, dict[str, float]]]:
    """The confidence's temperature, and how the reader reads the validation fields and cells at it."""
    probabilities = _probabilities(reader, data.validation[0])
    cell_probabilities = _probabilities(reader, data.validation_cells[0])
    # Fitted on synthetic and real writing together: the real cells are the nearer to what users drop in.
    temperature = fit_string_temperature(
        np.concatenate([probabilities, cell_probabilities]), data.validation[1] + data.validation_cells[1]
    )
    return temperature, {
        "validation_fields": _accuracy(probabilities, data.validation[1], temperature),
        "validation_register_cells": _accuracy(cell_probabilities, data.validation_cells[1], temperature),
    }


def _pools(mnist: Path, real: Path) -> tuple[DigitPool, DigitPool]:
    """The digits to compose training fields from, and the held-out ones to compose validation fields from."""
    x_train, y_train, _, _ = load_mnist(mnist)
    (x_fit, y_fit), (x_held, y_held) = split_training(x_train, y_train)
    try:
        with np.load(real) as data:
            usps_x, usps_y = as_mnist(data["usps_x"]), data["usps_y"]
            ardis_x, ardis_y = data["ardis_x"], data["ardis_y"]
    except (OSError, KeyError, ValueError) as error:
        raise DatasetError(f"{real}: not the real-digits archive ({error})") from None
    fit, held = [(x_fit, y_fit)], [(x_held, y_held)]
    for x, y in ((usps_x, usps_y), (ardis_x, ardis_y)):
        kept = np.random.default_rng(HELD_OUT_SEED).random(len(x)) >= HELD_OUT_SHARE
        fit.append((x[kept], y[kept]))
        held.append((x[~kept], y[~kept]))

    def pool(parts: list[tuple[np.ndarray, np.ndarray]]) -> DigitPool:
        return DigitPool(tuple(x for x, _ in parts), tuple(y for _, y in parts), POPULATION_WEIGHTS)

    return pool(fit), pool(held)


def _register_cells(folder: Path) -> tuple[np.ndarray, list[str]]:
    """The register's cells whose row number is all digits, as the reader sees them (cells that still clean to a
    scanner's dark band are left out)."""
    with open(folder / "labels.csv", newline="") as file:
        rows = [(name, label) for name, label in csv.reader(file) if label.isdigit()]
    images, labels = [], []
    for name, label in rows:
        grey = cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            continue
        ink = ink_map(without_dark_margins(grey))
        image = field_image(ink)
        if image is not None and (ink > 0.1).mean() <= MAX_INK_SHARE:
            images.append(np.round(image * 255).astype(np.uint8))
            labels.append(label)
    return np.asarray(images, np.uint8).reshape(-1, FIELD_HEIGHT, FIELD_WIDTH), labels


def _render(pool: DigitPool, count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """`count` synthetic fields as the reader sees them, rendered by every core, the same for the same seed."""
    chunks = [(min(CHUNK, count - start), seed, start) for start in range(0, count, CHUNK)]
    images, labels = [], []
    # Each worker gets the digits once, not with every chunk.
    with ProcessPoolExecutor(initializer=_keep_pool, initargs=(pool,)) as workers:
        for done, (own_images, own_labels) in enumerate(workers.map(_render_chunk, chunks), start=1):
            images.append(own_images)
            labels += own_labels
            if done % 20 == 0:
                print(f"rendered {done * CHUNK} of {count} fields", flush=True)
    return np.concatenate(images), labels


_worker_pool: list[DigitPool] = []


def _keep_pool(pool: DigitPool) -> None:
    _worker_pool.append(pool)


def _render_chunk(task: tuple[int, int, int]) -> tuple[np.ndarray, list[str]]:
    count, seed, start = task
    pool = _worker_pool[0]
    rng = np.random.default_rng([seed, start])
    images: list[np.ndarray] = []
    labels: list[str] = []
    while len(images) < count:
        scan, text = draw_field(pool, rng)
        image = field_image(ink_map(scan))
        if image is not None:
            images.append(np.round(image * 255).astype(np.uint8))
            labels.append(label_of(text))
    return np.asarray(images, np.uint8), labels


def _cached(path: Path, make: Any) -> tuple[np.ndarray, list[str]]:
    """The images and labels stored at `path`, made and stored first when absent."""
    if path.is_file():
        with np.load(path) as data:
            return data["images"], [str(label) for label in data["labels"]]
    images, labels = make()
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, images=images, labels=np.asarray(labels))
    partial.rename(path)
    return images, list(labels)


def encode(label: str) -> list[int]:
    """A label's symbols as the network's classes: digits as themselves, marks as MARK_CLASS."""
    return [MARK_CLASS if char == MARK else int(char) for char in label]


def _train(images: np.ndarray, labels: list[str], *, epochs: int, seed: int, checkpoints: Path, resume: bool) -> Any:
    """The reader trained with CTC for `epochs`, from the last checkpoint when resuming."""
    import keras

    keras.utils.set_random_seed(seed)
    reader = build_reader()
    steps_per_epoch = len(images) // BATCH_SIZE
    # Cosine decay to zero: a high rate early to learn fast, a low one at the end to settle.
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=epochs * steps_per_epoch)
    optimizer = keras.optimizers.Adam(schedule)
    epoch, manager = _checkpointed(reader, optimizer, checkpoints, resume=resume)
    targets, lengths = _ctc_targets(labels)
    step = _ctc_step(reader, optimizer)
    rng = np.random.default_rng([seed, int(epoch.numpy())])
    saved = time.monotonic()
    while int(epoch.numpy()) < epochs:
        order = rng.permutation(len(images))
        total, started = 0.0, time.monotonic()
        for index in range(steps_per_epoch):
            batch = order[index * BATCH_SIZE : (index + 1) * BATCH_SIZE]
            x = _augmented(images[batch], rng)
            total += float(step(x, targets[batch], lengths[batch]))
            if (index + 1) % 200 == 0:
                rate = (index + 1) * BATCH_SIZE / (time.monotonic() - started)
                mean = total / (index + 1)
                print(
                    f"epoch {int(epoch.numpy()) + 1} step {index + 1}/{steps_per_epoch} loss {mean:.3f} ({rate:.0f}/s)"
                )
            if time.monotonic() - saved > CHECKPOINT_SECONDS:
                manager.save()
                saved = time.monotonic()
        epoch.assign_add(1)
        manager.save()
        saved = time.monotonic()
        print(f"epoch {int(epoch.numpy())} done, loss {total / steps_per_epoch:.3f}", flush=True)
    return reader


def _checkpointed(reader: Any, optimizer: Any, checkpoints: Path, *, resume: bool) -> tuple[Any, Any]:
    """The epochs done (a tf.Variable, 0 unless resumed) and the manager that checkpoints them with the reader and
    optimizer in `checkpoints`; restored from the last checkpoint when resuming, else any old ones removed."""
    import tensorflow as tf

    epoch = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(reader=reader, optimizer=optimizer, epoch=epoch)
    manager = tf.train.CheckpointManager(checkpoint, str(checkpoints), max_to_keep=2)
    if resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint)
        print(f"resumed from {manager.latest_checkpoint} after epoch {int(epoch.numpy())}", flush=True)
    elif checkpoints.exists():
        shutil.rmtree(checkpoints)
    return epoch, manager


def _ctc_targets(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The labels as CTC targets: each one's classes, padded to the longest, and each one's length."""
    longest = max(len(label) for label in labels)
    targets = np.zeros((len(labels), longest), np.int32)
    lengths = np.asarray([len(label) for label in labels], np.int32)
    for row, label in enumerate(labels):
        targets[row, : len(label)] = encode(label)
    return targets, lengths


def _ctc_step(reader: Any, optimizer: Any) -> Any:
    """One training step on a batch (images, targets, their lengths), compiled; it returns the batch's mean loss."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True, autograph=False)  # type: ignore[untyped-decorator]
    def step(x: Any, y: Any, y_length: Any) -> Any:
        with tf.GradientTape() as tape:
            logits = reader(x, training=True)
            frames = tf.fill([tf.shape(x)[0]], tf.shape(logits)[1])
            loss = tf.reduce_mean(
                tf.nn.ctc_loss(y, logits, y_length, frames, logits_time_major=False, blank_index=BLANK_CLASS)
            )
        gradients = tape.gradient(loss, reader.trainable_variables)
        optimizer.apply_gradients(zip(gradients, reader.trainable_variables, strict=True))
        return loss

    return step


def _augmented(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A batch as float32 (n, H, W, 1), a third of it with its strokes thickened or thinned a little."""
    x = images.astype(np.float32) / 255.0
    for row in np.flatnonzero(rng.random(len(x)) < 0.3):
        kernel = np.ones((2, 2), np.uint8)
        x[row] = cv2.dilate(x[row], kernel) if rng.random() < 0.5 else cv2.erode(x[row], kernel)
    return x[..., np.newaxis]


def _probabilities(reader: Any, images: np.ndarray) -> np.ndarray:
    """The served reader's (n, frames, symbols) probabilities, untempered."""
    import keras

    logits = reader.predict(images.astype(np.float32)[..., np.newaxis] / 255.0, batch_size=256, verbose=0)
    return np.asarray(keras.ops.softmax(logits, axis=-1))


def tempered_frames(frames: np.ndarray, temperature: float) -> np.ndarray:
    """Every slice's probabilities at `temperature` (see watcher.model.calibration.temper)."""
    return temper(frames.reshape(-1, frames.shape[-1]), temperature).reshape(frames.shape)


def _accuracy(probabilities: np.ndarray, labels: list[str], temperature: float) -> dict[str, float]:
    """Whole-string accuracy (marks left out), and the share accepted and wrong at 0.8 (review's default)."""
    readings = [decode(frames) for frames in tempered_frames(probabilities, temperature)]
    right = np.asarray([r.digits == label.replace(MARK, "") for r, label in zip(readings, labels, strict=True)])
    sure = np.asarray([r.confidence >= REVIEW_THRESHOLD for r in readings])
    return {
        "accuracy": round(float(right.mean()), 4),
        "accepted": round(float(sure.mean()), 4),
        "accepted_wrong": round(float((~right & sure).sum() / max(1, sure.sum())), 4),
    }


def fit_string_temperature(probabilities: np.ndarray, labels: list[str]) -> float:
    """The temperature whose best-path probabilities best predict whether a string is read right (log loss), raised
    where needed until the readings accepted at review's default threshold are wrong at most ACCEPTED_WRONG of the
    time: the confidence people act on."""
    truths = [label.replace(MARK, "") for label in labels]
    fits = []
    for temperature in TEMPERATURES:
        readings = [decode(frames) for frames in tempered_frames(probabilities, float(temperature))]
        p = np.clip([r.confidence for r in readings], 1e-6, 1 - 1e-6)
        right = np.asarray([r.digits == truth for r, truth in zip(readings, truths, strict=True)])
        loss = float(-np.mean(np.where(right, np.log(p), np.log(1 - p))))
        accepted = p >= REVIEW_THRESHOLD
        wrong = float((~right & accepted).sum() / max(1, accepted.sum()))
        fits.append((loss, float(temperature), wrong))
    best = min(fits)
    # A hotter temperature only lowers every confidence, so the first that meets the bound is the least change.
    kept = next((fit for fit in fits if fit[1] >= best[1] and fit[2] <= ACCEPTED_WRONG), fits[-1])
    return round(kept[1], 4)


def write_reader_version(out: Path, *, base: Path, reader: Any, section: dict[str, object]) -> Path:
    """The next version: base's digit model and metadata, with the reader and its section beside them."""
    import tensorflow as tf

    staging = staging_folder(out)
    # The digit model served, and its Keras weights for a fine-tune from this version (watcher.model.finetune).
    for name in (MODEL_FILE, KERAS_FILE):
        shutil.copy2(base / name, staging / name)
    metadata = json.loads((base / METADATA_FILE).read_text())
    metadata[READER_KEY] = {**section, "created": datetime.now(UTC).isoformat(timespec="seconds")}
    metadata["digits_from"] = f"{base.parent.name}/{base.name}"
    serving = serving_reader(reader)
    serving.save(staging / READER_KERAS_FILE)
    with silenced_native_logs(), contextlib.redirect_stdout(io.StringIO()):
        tflite = tf.lite.TFLiteConverter.from_keras_model(serving).convert()
    (staging / READER_FILE).write_bytes(tflite)
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return publish_version(staging, out)
