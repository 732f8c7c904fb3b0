"""Train the sequence reader on synthetic fields and real register cells, resumably, and write it into a version.

The story: render the fields once (cached), train with CTC in epochs that end in a checkpoint, export it to LiteRT
beside the digit model of the version it extends, both quantised, then fit the judge of a reading's confidence on
validation fields read by that exported pair, as it will be served.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from watcher.model.calibration import fit_logistic
from watcher.model.classify import (
    JUDGE_KEY,
    READER_FILE,
    READER_KERAS_FILE,
    READER_KEY,
    Classifier,
    StringReader,
    load_version,
)
from watcher.model.dataset import DatasetError, load_mnist, load_real_digits, sha256_of, split_training
from watcher.model.fields import MARK, DigitPool, draw_field, label_of
from watcher.model.sequence import (
    BLANK_CLASS,
    EVIDENCE,
    MARK_CLASS,
    Judge,
    build_reader,
    second_opinion,
    serving_reader,
)
from watcher.model.sequence import evidence as sequence_evidence
from watcher.model.synthetic import NUMBER_LENGTHS, compose_number, render_number_scan
from watcher.model.train import publish_version, quantised_tflite, staging_folder
from watcher.model.versions import KERAS_FILE, METADATA_FILE, MODEL_FILE
from watcher.vision.field import FIELD_HEIGHT, FIELD_WIDTH, field_image
from watcher.vision.fit import digit_images
from watcher.vision.normalise import ink_map
from watcher.vision.paper import without_dark_margins
from watcher.vocabulary import REVIEW_THRESHOLD, ExitCode

TRAINING_FIELDS = 80_000  # synthetic fields rendered once and cached (the shipped reader's)
EPOCHS = 3  # the shipped reader's: about an hour on 2 cores
VALIDATION_FIELDS = 6_000  # from digits held out of training: the judge's 1 % moved with a draw of 3,000
POPULATION_WEIGHTS = (0.55, 0.15, 0.30)  # MNIST, USPS, ARDIS: the real digits MNIST lacks are drawn more often
MAX_INK_SHARE = 0.3  # a register cell whose cleaned ink covers more than this is a scanner band, not writing
REGISTER_REPEATS = 3  # each real register cell is trained on this often an epoch, each synthetic field once
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
CHUNK = 500  # fields rendered per task in a worker
CHECKPOINT_SECONDS = 600  # a checkpoint at least this often, and at every epoch's end
ACCEPTED_WRONG = 0.01  # at most this share of each validation set's readings accepted at review's default are wrong
CAUTION_STEP = 0.01  # the judge's bias is lowered in steps of this until they are
NORM_BATCHES = 400  # batches of training fields that measure BatchNorm's statistics again for averaged weights
NORM_MOMENTUM = 0.98  # so the last hundred or so batches (about 6,000 fields) make those statistics


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
    register_repeats: int
    epochs: int
    seed: int
    averaged: tuple[str, ...] = ()  # checkpoint folders whose readers were averaged instead of training one
    # Parenthesised: a string on the next line alone would be a statement of its own, not the rest of the default.
    generator: str = (
        "watcher.model.fields.draw_field (lengths 1-8, separators, signs, trailing marks, styles, joins, "
        "clutter, paper, JPEG) through watcher.vision.normalise.ink_map and watcher.model.sequence.field_image"
    )
    register_licence: str = (
        "Danish parish register row numbers (Cabello Piqueras et al., ICFHR 2022); licence not "
        "stated: used for training only"
    )
    quantisation: str = (
        "reader.tflite and model.tflite: dynamic range (tf.lite.Optimize.DEFAULT: 8-bit weights, float activations), "
        "converted from reader.keras and model.keras (the float weights, kept to train on); the judge fitted on "
        "their own readings through LiteRT, and test_accuracy the quantised digit model's"
    )


@dataclass(frozen=True)
class Fields:
    """The fields the reader learns from, as it sees them: images (n, H, W) uint8, and labels."""

    train: tuple[np.ndarray, list[str]]  # synthetic
    cells: tuple[np.ndarray, list[str]]  # the register's


@dataclass(frozen=True)
class Validation:
    """What the judge is fitted on and a reader measured on, from digits and cells no reader learns from."""

    fields: tuple[np.ndarray, list[str]]  # synthetic
    cells: tuple[np.ndarray, list[str]]  # the register's validation split
    numbers: tuple[np.ndarray, list[str]]  # plain numbers, clean and as scans


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
    average: tuple[Path, ...] = (),
    rejudge: bool = False,
) -> int:
    """Train the reader, average the readers checkpointed in `average`, or (`rejudge`) take base's own, and write
    base's digit model with it and its judge as out/<next>/; 0 on success, 78 on bad input."""
    try:
        pools = _inputs(mnist, real, rows=rows, base=base, rejudge=rejudge)
        latest = [_latest_checkpoint(folder) for folder in average]
    except DatasetError as error:
        print(f"digit-watcher train: {error}", file=sys.stderr)
        return ExitCode.BAD_CONFIG
    started = time.monotonic()
    validation = _validation(pools[1], rows=rows, cache=cache, seed=seed, count=validation_fields)
    command = f"digit-watcher train --reader --data {mnist} --real {real} --rows {rows} --from {base} --seed {seed}"
    if rejudge:
        # The models stay base's, byte for byte: only how sure to be of their readings is learnt again.
        staging = stage_rejudged_version(out, base=base)
        recipe = _rejudged_recipe(base, command=f"{command} --out {out} --rejudge")
    else:
        data = _fields(pools[0], rows=rows, cache=cache, seed=seed, count=fields)
        print(f"{len(data.train[0])} synthetic fields and {len(data.cells[0])} register cells to train on", flush=True)
        # The real cells are few beside the synthetic fields: each is seen REGISTER_REPEATS times an epoch.
        images = np.concatenate([data.train[0], *[data.cells[0]] * REGISTER_REPEATS])
        labels = data.train[1] + data.cells[1] * REGISTER_REPEATS
        checkpoints = cache / f"checkpoints-{seed}"
        if latest:
            reader = _averaged(latest, images, seed=seed)
        else:
            reader = _train(images, labels, epochs=epochs, seed=seed, checkpoints=checkpoints, resume=resume)
        staging = stage_reader_version(out, base=base, reader=reader)
        recipe = asdict(
            Recipe(
                command=f"{command} --epochs {epochs} --out {out}"
                + "".join(f" --average {folder}" for folder in average)
                + (f" --fields {fields}" if fields != TRAINING_FIELDS else ""),
                mnist=str(mnist),
                mnist_sha256=sha256_of(mnist),
                real_digits=str(real),
                real_digits_sha256=sha256_of(real),
                register_rows=str(rows),
                synthetic_fields=len(data.train[0]),
                register_cells=len(data.cells[0]),
                register_repeats=REGISTER_REPEATS,
                epochs=epochs,
                seed=seed,
                averaged=tuple(map(str, average)),
            )
        )
    # Judged as served: the quantised models in LiteRT read a little differently from the Keras ones they came from.
    served = load_version(staging)
    judge, figures = _judge(served, validation)
    print(json.dumps(figures), flush=True)
    minutes = round((time.monotonic() - started) / 60, 1)
    section = {
        **recipe,
        JUDGE_KEY: {"weights": dict(zip(EVIDENCE, judge.weights, strict=True)), "bias": judge.bias},
        "training_minutes": minutes,
        **figures,
    }
    test_accuracy = _test_accuracy(served, mnist)
    version = publish_reader_version(staging, out, base=base, section=section, test_accuracy=test_accuracy)
    print(f"wrote {version}", flush=True)
    return ExitCode.OK


def _rejudged_recipe(base: Path, *, command: str) -> dict[str, Any]:
    """base's reader recipe, under the command that judges it again: how its reader was made stays told."""
    made = json.loads((base / METADATA_FILE).read_text()).get(READER_KEY, {})
    measured = {JUDGE_KEY, "created", "training_minutes"}
    kept = {key: value for key, value in made.items() if key not in measured and not key.startswith("validation_")}
    return {
        **kept,
        "command": command,
        "reader_command": made.get("command"),
        "rejudged": f"{base.parent.name}/{base.name}",
    }


def _inputs(mnist: Path, real: Path, *, rows: Path, base: Path, rejudge: bool) -> tuple[DigitPool, DigitPool]:
    """The digit pools (`_pools`), once every input is known to be there (base's reader too when it is judged
    again); DatasetError naming the first that is not."""
    pools = _pools(mnist, real)
    for split in ("train", "validation"):
        if not (rows / split / "labels.csv").is_file():
            raise DatasetError(f"{rows / split}: no labels.csv of register cells")
    for name in (MODEL_FILE, KERAS_FILE):
        if not (base / name).is_file():
            raise DatasetError(f"{base}: no {name} to serve beside the reader")
    for name in (READER_FILE, READER_KERAS_FILE) if rejudge else ():
        if not (base / name).is_file():
            raise DatasetError(f"{base}: no {name} to judge again")
    return pools


def _fields(pool: DigitPool, *, rows: Path, cache: Path, seed: int, count: int) -> Fields:
    """The synthetic fields rendered and the register's cells read, each from the cache when there."""
    cache.mkdir(parents=True, exist_ok=True)
    # Rendering is the slow part on a CPU: it is done once per seed and size, and kept.
    return Fields(
        train=_cached(cache / f"fields-{seed}-{count}.npz", lambda: _render(pool, count, seed)),
        cells=_cached(cache / "register-train.npz", lambda: _register_cells(rows / "train")),
    )


def _validation(pool: DigitPool, *, rows: Path, cache: Path, seed: int, count: int) -> Validation:
    """The validation fields and numbers rendered from held-out digits and the register's validation cells read,
    each from the cache when there; named by the run's seed, so one command always judges on the same ones."""
    cache.mkdir(parents=True, exist_ok=True)
    return Validation(
        fields=_cached(cache / f"fields-validation-{seed}-{count}.npz", lambda: _render(pool, count, seed + 1)),
        cells=_cached(cache / "register-validation.npz", lambda: _register_cells(rows / "validation")),
        numbers=_cached(
            cache / f"numbers-validation-{seed}-{count}.npz", lambda: _plain_numbers(pool, count, seed + 2)
        ),
    )


def _judge(served: Classifier, data: Validation) -> tuple[Judge, dict[str, dict[str, float]]]:
    """The reader's judge (watcher.model.sequence.Judge), fitted on the validation fields and cells read by the
    `served` version's reader, its digit model giving the second opinion; and how it reads each set."""
    assert served.reader is not None, "a staged reader version serves its reader"
    sets = {
        "validation_fields": data.fields,
        "validation_register_cells": data.cells,
        "validation_numbers": data.numbers,
    }
    read = {name: _settled(served.reader, served, images, labels) for name, (images, labels) in sets.items()}
    evidence = np.concatenate([r.evidence for r in read.values()])
    right = np.concatenate([r.right for r in read.values()])
    # Fitted on all three together: plain numbers, realistic fields and real cells, each doubtful in its own way.
    weights, bias = fit_logistic(evidence, right)
    judge = Judge(tuple(float(w) for w in weights), round(cautious_bias(weights, bias, list(read.values())), 4))
    figures = {}
    for name, r in read.items():
        accepted, wrong = _accepted(judge, r.evidence, r.right)
        # A string the reader finds no digit in is not the reader's to judge: counted wrong and not accepted.
        figures[name] = {
            "accuracy": round(float(r.right.sum() / r.fields), 4),
            "accepted": round(accepted * len(r.right) / r.fields, 4),
            "accepted_wrong": round(wrong, 4),
        }
    return judge, figures


class _Settled(NamedTuple):
    """A set's readings with digits in them, settled as served: each one's evidence, whether it is right, and the
    size of the whole set."""

    evidence: np.ndarray
    right: np.ndarray
    fields: int


def cautious_bias(weights: np.ndarray, bias: float, sets: list[_Settled]) -> float:
    """The judge's bias lowered until each set's readings accepted at review's default are wrong at most
    ACCEPTED_WRONG of the time. Lowering the bias lowers every confidence alike, so the first that meets the bound is
    the least change. Each set by itself: held to the bound together, the plain numbers' sure readings hid the
    realistic fields' surely wrong ones (1.4 % of those accepted wrong, version 17)."""
    while max(_accepted(Judge(tuple(weights), bias), s.evidence, s.right)[1] for s in sets) > ACCEPTED_WRONG:
        bias -= CAUTION_STEP
    return bias


def _settled(reader: StringReader, digit_model: Classifier, images: np.ndarray, labels: list[str]) -> _Settled:
    """The fields read by the reader, each digit judged again by the digit model (watcher.model.sequence)."""
    strings = reader.read(images.astype(np.float32) / 255.0)
    kept = [index for index, string in enumerate(strings) if string.digits]
    evidence, right = [], []
    for index in kept:
        field = images[index].astype(np.float32) / 255.0
        probabilities = digit_model.probabilities(digit_images(field, strings[index].columns))
        settled = second_opinion(strings[index], probabilities)
        evidence.append(sequence_evidence(strings[index], settled.digits, probabilities))
        right.append(settled.digits == labels[index].replace(MARK, ""))
    return _Settled(np.reshape(evidence, (len(kept), len(EVIDENCE))), np.asarray(right, bool), len(images))


def _test_accuracy(digit_model: Classifier, mnist: Path) -> float:
    """The digit model's accuracy on MNIST's test split, as train measures it (the digits as they are)."""
    _, _, x_test, y_test = load_mnist(mnist)
    read = digit_model.probabilities(x_test.astype(np.float32) / 255.0).argmax(axis=1)
    return round(float(np.mean(read == y_test)), 4)


def _accepted(judge: Judge, evidence: np.ndarray, right: np.ndarray) -> tuple[float, float]:
    """The share of readings the judge accepts at review's default threshold, and the share of those wrong."""
    sure = np.asarray([judge.confidence(row) >= REVIEW_THRESHOLD for row in evidence], bool)
    return float(sure.mean()) if len(sure) else 0.0, float((~right & sure).sum() / max(1, sure.sum()))


def _pools(mnist: Path, real: Path) -> tuple[DigitPool, DigitPool]:
    """The digits to compose training fields from, and the held-out ones to compose validation fields from."""
    x_train, y_train, _, _ = load_mnist(mnist)
    (x_fit, y_fit), (x_held, y_held) = split_training(x_train, y_train)
    real_digits = load_real_digits(real)
    fit = [(x_fit, y_fit), *(split[0] for split in real_digits.values())]
    held = [(x_held, y_held), *(split[1] for split in real_digits.values())]

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


def _plain_numbers(pool: DigitPool, count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """`count` numbers of MNIST's held-out digits in a row, as the reader sees them: half written on clean paper,
    half rendered as scans (watcher.model.synthetic). Most of what users drop in is this plain; the judge must see
    that a sure, agreed reading of it is right, not only the realistic fields' and the register's doubts."""
    rng = np.random.default_rng(seed)
    digits, values = pool.images[0], pool.labels[0]
    images: list[np.ndarray] = []
    labels: list[str] = []
    while len(images) < count:
        picked = rng.choice(len(digits), size=int(rng.choice(NUMBER_LENGTHS)), replace=False)
        ink, _ = compose_number(digits[picked], rng)
        image = field_image(ink_map(255 - ink if len(images) % 2 else render_number_scan(ink, rng)))
        if image is not None:
            images.append(np.round(image * 255).astype(np.uint8))
            labels.append("".join(map(str, values[picked])))
    return np.asarray(images, np.uint8), labels


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


def _latest_checkpoint(folder: Path) -> str:
    """The last checkpoint `_train` wrote in `folder`; DatasetError when it holds none."""
    import tensorflow as tf

    latest: str | None = tf.train.latest_checkpoint(str(folder))
    if latest is None:
        raise DatasetError(f"{folder}: no reader checkpoint to average")
    return latest


def _averaged(checkpoints: list[str], images: np.ndarray, *, seed: int) -> Any:
    """A reader whose weights are the mean of those in `checkpoints`, with BatchNorm's statistics measured again on
    `images`. Readers trained on from one another, each run ending at a low rate on fresh fields, lie in one basin:
    their mean reads better than any of them. The mean of their statistics is not the statistics of their mean."""
    import keras
    import tensorflow as tf

    weights = []
    for checkpoint in checkpoints:
        reader = build_reader()
        tf.train.Checkpoint(reader=reader).restore(checkpoint).expect_partial()
        weights.append(reader.get_weights())
    reader = build_reader()
    reader.set_weights([np.mean(values, axis=0) for values in zip(*weights, strict=True)])
    norms = [layer for layer in reader.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momentum = norms[0].momentum
    for layer in norms:
        layer.momentum = NORM_MOMENTUM
    rng = np.random.default_rng(seed)
    # Forward passes in training mode update the statistics alone: no gradient is taken.
    for _ in range(NORM_BATCHES):
        reader(_augmented(images[rng.choice(len(images), BATCH_SIZE, replace=False)], rng), training=True)
    for layer in norms:
        layer.momentum = momentum
    print(f"averaged {len(checkpoints)} readers: {', '.join(checkpoints)}", flush=True)
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


def stage_reader_version(out: Path, *, base: Path, reader: Any) -> Path:
    """A hidden folder in `out` that serves as the next version without its judge: base's digit model and metadata,
    with the reader beside them, both exported quantised (`quantised_tflite`)."""
    import keras

    staging = staging_folder(out)
    # The digit model served, quantised as the reader is, and its Keras weights for a fine-tune from this version
    # (watcher.model.finetune).
    shutil.copy2(base / KERAS_FILE, staging / KERAS_FILE)
    (staging / MODEL_FILE).write_bytes(quantised_tflite(keras.models.load_model(base / KERAS_FILE)))
    serving = serving_reader(reader)
    serving.save(staging / READER_KERAS_FILE)
    (staging / READER_FILE).write_bytes(quantised_tflite(serving))
    _write_metadata(staging, base=base, section={})
    return staging


def stage_rejudged_version(out: Path, *, base: Path) -> Path:
    """A hidden folder in `out` that serves as the next version without its judge: base's models and metadata."""
    staging = staging_folder(out)
    for name in (KERAS_FILE, MODEL_FILE, READER_KERAS_FILE, READER_FILE):
        shutil.copy2(base / name, staging / name)
    _write_metadata(staging, base=base, section={})
    return staging


def publish_reader_version(
    staging: Path, out: Path, *, base: Path, section: dict[str, object], test_accuracy: float
) -> Path:
    """The staged version (`stage_reader_version`) with the reader's section, judge included, and its digit model's
    `test_accuracy` in its metadata, renamed to the next version in `out`."""
    _write_metadata(staging, base=base, section=section, test_accuracy=test_accuracy)
    return publish_version(staging, out)


def _write_metadata(
    staging: Path, *, base: Path, section: dict[str, object], test_accuracy: float | None = None
) -> None:
    """base's metadata with the reader's `section`, where the digit model came from and, once measured, the served
    digit model's `test_accuracy` (quantised, it is not quite base's)."""
    metadata = json.loads((base / METADATA_FILE).read_text())
    if test_accuracy is not None:
        metadata["test_accuracy"] = test_accuracy
    metadata[READER_KEY] = {**section, "created": datetime.now(UTC).isoformat(timespec="seconds")}
    metadata["digits_from"] = f"{base.parent.name}/{base.name}"
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
