"""Training end to end on a tiny data set: a loadable, complete, numbered version folder comes out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import mnist_archive, real_archive
from watcher.model import train
from watcher.model.classify import load_classifier
from watcher.model.dataset import (
    VALIDATION_DIGITS,
    VALIDATION_SEED,
    load_real_digits,
    real_held_out,
    split_training,
    validation_indices,
)

SAMPLE = Path(__file__).parent / "data" / "mnist_sample.npz"


@pytest.mark.slow
def test_train_writes_the_next_loadable_version(tmp_path: Path) -> None:
    with np.load(SAMPLE) as data:
        x, y = data["x"], data["y"]
    tiny = tmp_path / "tiny.npz"
    np.savez_compressed(tiny, x_train=x[:200], y_train=y[:200], x_test=x[200:300], y_test=y[200:300])
    out = tmp_path / "models" / "tiny-cnn"
    (out / "1").mkdir(parents=True)  # an existing version: the new one must be 2

    assert train.run(data=tiny, epochs=1, seed=3, out=out, limit=200) == 0

    assert sorted(entry.name for entry in out.iterdir()) == ["1", "2"]  # no staging folder left behind
    metadata = json.loads((out / "2" / "metadata.json").read_text())
    assert metadata["epochs"] == 1 and metadata["seed"] == 3 and len(metadata["data_sha256"]) == 64
    assert 0.0 <= metadata["test_accuracy"] <= 1.0
    assert "--seed 3" in metadata["command"]
    held_out = len(validation_indices(200))
    assert metadata["validation_digits"] == held_out > 0 and metadata["training_digits"] == 200 - held_out
    assert metadata["number_cut_digits"] > 150  # most of the 183 digits, written as numbers, were cut back out
    assert metadata["touching_pair_scans"] == 19  # a tenth as many scans of two digits touching (18.3, rounded up)
    assert metadata["fragment_candidates"] == 36  # as many parts of digits, and again in styled numbers: no digit
    # 13 digits in each of the 7 styles alone (half of 183), and most of 183 cut out of styled numbers.
    assert 7 * 13 + 0.7 * 183 <= metadata["styled_digits"] <= 7 * 13 + 183
    assert metadata["cell_filling_digits"] == 27  # 15 % of the 183, scaled to fill a box: each still has ink
    assert 0.25 <= metadata["temperature"] <= 20 and metadata["calibration"]["validation_digits"] > held_out
    assert metadata["scan_rendering"]["share"] == train.SCAN_SHARE  # the recipe's numbers, not prose
    assert metadata["trained_from"] is None and metadata["learning_rate"] == train.LEARNING_RATE
    assert (out / "2" / "model.keras").is_file()
    classifier = load_classifier(out)
    assert classifier.version == "tiny-cnn/2"
    assert classifier.probabilities(x[:5].astype(np.float32) / 255).shape == (5, 10)


@pytest.mark.slow
def test_train_from_a_version_starts_from_its_weights(tmp_path: Path) -> None:
    with np.load(SAMPLE) as data:
        x, y = data["x"], data["y"]
    tiny = tmp_path / "tiny.npz"
    np.savez_compressed(tiny, x_train=x[:200], y_train=y[:200], x_test=x[200:300], y_test=y[200:300])
    out = tmp_path / "models" / "tiny-cnn"
    assert train.run(data=tiny, epochs=1, seed=3, out=out, limit=200) == 0
    import keras

    before = keras.models.load_model(out / "1" / "model.keras").get_weights()

    assert train.run(data=tiny, epochs=1, seed=3, out=out, base=out / "1", limit=200) == 0

    metadata = json.loads((out / "2" / "metadata.json").read_text())
    assert metadata["trained_from"] == "tiny-cnn/1" and metadata["learning_rate"] == train.BASE_LEARNING_RATE
    assert f"--from {out / '1'}" in metadata["command"] and not metadata["validation"]["base_trained_on_them"]
    after = keras.models.load_model(out / "2" / "model.keras").get_weights()
    from watcher.model.network import build_model

    fresh = build_model().get_weights()
    # Moved from the base's kernels, not drawn afresh: every kernel lies nearer the base's than a fresh one does.
    kernels = [index for index, weights in enumerate(before) if weights.ndim == 4]
    assert kernels
    for index in kernels:
        moved = np.linalg.norm(after[index] - before[index])
        assert 0 < moved < np.linalg.norm(fresh[index] - before[index])


@pytest.mark.slow
def test_train_learns_the_real_digits_beside_mnist_less_those_held_out(tmp_path: Path) -> None:
    tiny = mnist_archive(tmp_path, training=200)
    real = real_archive(tmp_path, start=300, count=100)
    out = tmp_path / "models" / "tiny-cnn"

    assert train.run(data=tiny, real=real, epochs=1, seed=3, out=out, limit=200) == 0

    metadata = json.loads((out / "1" / "metadata.json").read_text())
    held = {name: int(real_held_out(100).sum()) for name in ("usps", "ardis")}
    assert 0 < held["usps"] < 30
    learnt = sum(train.REAL_REPEATS * (100 - count) for count in held.values())
    assert metadata["training_digits"] == 200 - len(validation_indices(200)) + learnt
    assert set(metadata["real_validation_accuracy"]) == {"usps", "ardis"}
    assert all(0.0 <= share <= 1.0 for share in metadata["real_validation_accuracy"].values())
    assert len(metadata["real_sha256"]) == 64 and f"--real {real}" in metadata["command"]


def test_the_real_digits_held_out_are_the_same_every_run_and_never_learnt(tmp_path: Path) -> None:
    with np.load(SAMPLE) as data:
        y = data["y"]
    real = real_archive(tmp_path, start=0, count=300)

    split = load_real_digits(real)

    for name, ((x_fit, _), (x_held, y_held)) in split.items():
        assert x_fit.shape[1:] == x_held.shape[1:] == (28, 28)  # USPS's 16x16 at MNIST's layout
        assert len(x_fit) + len(x_held) == 300 and len(x_held) == real_held_out(300).sum()
        assert np.array_equal(y_held, (y[:300] if name == "usps" else y[300:600])[real_held_out(300)])
    assert np.array_equal(real_held_out(300), real_held_out(300))


def test_a_file_that_is_not_the_real_digits_is_a_config_error(tmp_path: Path, capsys) -> None:
    tiny = mnist_archive(tmp_path, training=20, test=10)
    assert train.run(data=tiny, real=tiny, epochs=1, seed=0, out=tmp_path / "m") == 78
    error = capsys.readouterr().err
    assert "mnist.npz: not the real-digits archive" in error and error.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_a_base_from_before_the_split_is_said_to_have_seen_the_validation_digits(tmp_path: Path) -> None:
    before_split, after_split = tmp_path / "m" / "4", tmp_path / "m" / "6"
    for version, metadata in ((before_split, {"epochs": 24}), (after_split, {"validation_digits": 5000})):
        version.mkdir(parents=True)
        (version / "metadata.json").write_text(json.dumps(metadata))

    assert train._validation(before_split) == {"seed": VALIDATION_SEED, "base_trained_on_them": True}
    assert train._validation(after_split) == train._validation(None)
    assert train._validation(None) == {"seed": VALIDATION_SEED, "base_trained_on_them": False}


def test_a_base_without_a_model_is_a_config_error(tmp_path: Path, capsys) -> None:
    with np.load(SAMPLE) as data:
        x, y = data["x"], data["y"]
    tiny = tmp_path / "tiny.npz"
    np.savez_compressed(tiny, x_train=x[:20], y_train=y[:20], x_test=x[20:30], y_test=y[20:30])
    assert train.run(data=tiny, epochs=1, seed=0, out=tmp_path / "m", base=tmp_path / "nothing") == 78
    error = capsys.readouterr().err
    assert "nothing: no model.keras to start from" in error and error.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_missing_data_file_is_a_config_error(tmp_path: Path, capsys) -> None:
    assert train.run(data=tmp_path / "absent.npz", epochs=1, seed=0, out=tmp_path / "m") == 78
    error = capsys.readouterr().err
    assert "absent.npz" in error and error.count("\n") == 1
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_digits_cut_out_of_numbers_keep_their_labels() -> None:
    with np.load(SAMPLE) as data:
        x, y = data["x"][:800], data["y"][:800]
    images, labels = train._numbers_through_segmentation(x, y, rng=np.random.default_rng(5))

    # Numbers cut into the wrong count are left out: 7 % of the full training set, up to 13 % of samples this size.
    assert images.shape[1:] == (28, 28) and len(images) == len(labels) and len(images) >= 0.85 * len(x)
    # The shipped model reads the cut digits as their labels: images and labels are in step, left to right.
    read = load_classifier(Path(__file__).parents[1] / "models" / "mnist-cnn").probabilities(images).argmax(axis=1)
    assert np.mean(read == labels) >= 0.95


def test_the_validation_digits_are_fixed_and_never_trained_on() -> None:
    digits = np.arange(60_000)
    (train_x, train_y), (validation_x, validation_y) = split_training(digits, digits % 10)
    assert len(validation_x) == VALIDATION_DIGITS and len(train_x) == 60_000 - VALIDATION_DIGITS
    assert not set(train_x) & set(validation_x), "no digit is in both"
    assert np.array_equal(validation_y, validation_x % 10) and np.array_equal(train_y, train_x % 10)
    assert list(validation_x[:5]) == [19, 21, 33, 66, 73], "the same digits in every run, tuning or training"
    assert np.array_equal(validation_indices(200), validation_x[validation_x < 200]), "a smaller set holds its share"
