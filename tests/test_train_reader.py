"""Training the sequence reader end to end on tiny data: a version with the reader comes out, quantised and judged on
its own readings, and a resumed run goes on from the checkpoint instead of starting again."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import mnist_archive, real_archive
from watcher.model import train_reader
from watcher.model.classify import Classifier, load_classifier, load_version
from watcher.model.sequence import EVIDENCE, Judge, StringReading
from watcher.vision.field import FIELD_HEIGHT, FIELD_WIDTH

SAMPLE = Path(__file__).parent / "data" / "mnist_sample.npz"
SHIPPED = Path(__file__).resolve().parent.parent / "models" / "mnist-cnn"


def tiny_data(folder: Path) -> tuple[Path, Path, Path]:
    """MNIST, the real digits and register cells in their archives' layouts, made from the test sample."""
    with np.load(SAMPLE) as data:
        x, y = data["x"], data["y"]
    mnist = mnist_archive(folder, training=300)
    real = real_archive(folder, start=400, count=300)
    rows = folder / "dk-rows"
    for split, start in (("train", 1000), ("validation", 1100)):
        (rows / split).mkdir(parents=True)
        with open(rows / split / "labels.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["filename", "label"])
            for index in range(start, start + 20):
                pair = np.hstack([x[index], x[index + 50]])
                cell = cv2.copyMakeBorder(255 - pair, 40, 40, 30, 30, cv2.BORDER_CONSTANT, value=235)
                cell[:, :12] = 20  # the scanner's dark margin along the left edge
                cv2.imwrite(str(rows / split / f"cell-{index}.jpg"), cell)
                writer.writerow([f"cell-{index}.jpg", f"{y[index]}{y[index + 50]}"])
            writer.writerow(["cell-23a.jpg", "23a"])  # letters in a row number: left out
    return mnist, real, rows


def int8_tensors(model_file: Path) -> int:
    """How many of a .tflite model's tensors hold 8-bit integers: quantised weights."""
    from ai_edge_litert.interpreter import Interpreter

    return sum(tensor["dtype"] == np.int8 for tensor in Interpreter(model_path=str(model_file)).get_tensor_details())


@pytest.mark.slow
def test_train_reader_writes_a_version_with_the_reader_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mnist, real, rows = tiny_data(tmp_path)
    out, cache = tmp_path / "models" / "mnist-cnn", tmp_path / "cache"
    base = max((entry for entry in SHIPPED.iterdir() if entry.name.isdigit()), key=lambda entry: int(entry.name))
    options = {"mnist": mnist, "real": real, "rows": rows, "base": base, "out": out, "seed": 2, "cache": cache}
    # What the judge is fitted on: the validation cells as the reader it is given reads them.
    judged: list[list[StringReading]] = []
    judge = train_reader._judge

    def judge_and_keep(served: Classifier, data: train_reader.Validation) -> tuple[Judge, dict[str, dict[str, float]]]:
        assert served.reader is not None
        judged.append(served.reader.read(data.cells[0].astype(np.float32) / 255.0))
        return judge(served, data)

    monkeypatch.setattr(train_reader, "_judge", judge_and_keep)

    assert train_reader.run(**options, epochs=1, resume=False, fields=128, validation_fields=32) == 0

    metadata = json.loads((out / "1" / "metadata.json").read_text())
    reader = metadata["reader"]
    assert reader["synthetic_fields"] == 128 and reader["register_cells"] == 20 and reader["epochs"] == 1
    assert "--reader" in reader["command"] and len(reader["real_digits_sha256"]) == 64
    assert list(reader["judge"]["weights"]) == list(EVIDENCE) and isinstance(reader["judge"]["bias"], float)
    assert set(reader["validation_register_cells"]) == {"accuracy", "accepted", "accepted_wrong"}
    assert reader["quantisation"].startswith("reader.tflite and model.tflite: dynamic range")
    assert metadata["digits_from"] == f"mnist-cnn/{base.name}" and 0 <= metadata["test_accuracy"] <= 1
    assert int8_tensors(out / "1" / "reader.tflite") > 0 and int8_tensors(out / "1" / "model.tflite") > 0
    classifier = load_classifier(out)
    assert classifier.reader is not None and classifier.reader.judge is not None
    # The judge was fitted on the readings of exactly the reader served, quantised, not of the Keras one.
    with np.load(cache / "register-validation.npz") as cells:
        assert classifier.reader.read(cells["images"].astype(np.float32) / 255.0) == judged[0]
    assert len(classifier.reader.read(np.zeros((3, FIELD_HEIGHT, FIELD_WIDTH), np.float32))) == 3
    assert sorted(path.name for path in cache.iterdir() if path.suffix == ".npz") == [
        "fields-2-128.npz",
        "fields-validation-2-32.npz",
        "numbers-validation-2-32.npz",
        "register-train.npz",
        "register-validation.npz",
    ]

    # Resumed with two epochs: the first is the checkpoint's, so one more is trained, from the same cached data.
    assert train_reader.run(**options, epochs=2, resume=True, fields=128, validation_fields=32) == 0
    assert load_version(out / "2").reader is not None
    assert json.loads((out / "2" / "metadata.json").read_text())["reader"]["epochs"] == 2


def test_a_version_judged_again_serves_its_bases_models_byte_for_byte_with_a_judge_of_every_evidence(
    tmp_path: Path,
) -> None:
    mnist, real, rows = tiny_data(tmp_path)
    base, out = SHIPPED / "19", tmp_path / "models" / "mnist-cnn"
    options = {"mnist": mnist, "real": real, "rows": rows, "base": base, "out": out, "epochs": 1, "seed": 3}

    assert train_reader.run(**options, resume=False, cache=tmp_path / "cache", validation_fields=32, rejudge=True) == 0

    for name in ("model.tflite", "model.keras", "reader.tflite", "reader.keras"):
        assert (out / "1" / name).read_bytes() == (base / name).read_bytes(), name
    made, judged = (json.loads((folder / "metadata.json").read_text())["reader"] for folder in (base, out / "1"))
    assert list(judged["judge"]["weights"]) == list(EVIDENCE) and "log_margin" not in made["judge"]["weights"]
    assert judged["command"].endswith(f"--seed 3 --out {out} --rejudge") and f"--from {base}" in judged["command"]
    assert judged["reader_command"] == made["command"] and judged["rejudged"] == "mnist-cnn/19"
    assert judged["synthetic_fields"] == made["synthetic_fields"] and "training_minutes" in judged
    served = load_classifier(out)
    assert served.reader is not None and served.reader.judge is not None
    assert not (tmp_path / "cache" / "fields-3-80000.npz").exists(), "nothing is rendered to train on"


def test_judging_again_a_version_without_a_reader_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mnist, real, rows = tiny_data(tmp_path)
    base = SHIPPED / "9"

    code = train_reader.run(
        mnist=mnist, real=real, rows=rows, base=base, out=tmp_path / "out", epochs=1, seed=1, resume=False,
        cache=tmp_path / "cache", rejudge=True,
    )  # fmt: skip

    assert code == 78
    assert capsys.readouterr().err.strip() == f"digit-watcher train: {base}: no reader.tflite to judge again"
    assert not (tmp_path / "out").exists()


def test_the_recipe_writes_its_generator_and_licence_whole() -> None:
    recipe = train_reader.Recipe(
        command="c", mnist="m", mnist_sha256="0", real_digits="r", real_digits_sha256="0", register_rows="d",
        synthetic_fields=1, register_cells=1, register_repeats=1, epochs=1, seed=1,
    )  # fmt: skip
    assert recipe.generator.endswith("watcher.model.sequence.field_image")
    assert recipe.register_licence.endswith("used for training only")
    assert "tf.lite.Optimize.DEFAULT" in recipe.quantisation


@pytest.mark.slow
def test_averaged_readers_take_the_mean_weights_and_measure_their_batch_statistics_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras
    import tensorflow as tf

    from watcher.model.sequence import build_reader

    readers, checkpoints = [], []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        reader = build_reader()
        checkpoints.append(tf.train.Checkpoint(reader=reader).save(str(tmp_path / f"run-{seed}" / "ckpt")))
        readers.append(reader)
    images = np.random.default_rng(0).integers(0, 256, (200, FIELD_HEIGHT, FIELD_WIDTH), dtype=np.uint8)
    monkeypatch.setattr(train_reader, "NORM_BATCHES", 5)

    averaged = train_reader._averaged(checkpoints, images, seed=0)

    for layer, first, second in zip(averaged.layers, *(reader.layers for reader in readers), strict=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            # Freshly built readers hold statistics 0 and 1; measured on the fields, the mean moves off 0.
            assert np.abs(layer.moving_mean.numpy()).max() > 0.01
            assert layer.momentum == first.momentum
        else:
            for mean, one, other in zip(layer.get_weights(), first.get_weights(), second.get_weights(), strict=True):
                np.testing.assert_allclose(mean, (one + other) / 2, rtol=1e-6)


def test_averaging_a_folder_without_checkpoints_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mnist, real, rows = tiny_data(tmp_path)
    base = max((entry for entry in SHIPPED.iterdir() if entry.name.isdigit()), key=lambda entry: int(entry.name))
    empty = tmp_path / "no-checkpoints"
    empty.mkdir()

    code = train_reader.run(
        mnist=mnist, real=real, rows=rows, base=base, out=tmp_path / "out", epochs=1, seed=1, resume=False,
        cache=tmp_path / "cache", average=(empty,),
    )  # fmt: skip

    assert code == 78
    assert capsys.readouterr().err.strip() == f"digit-watcher train: {empty}: no reader checkpoint to average"
    assert not (tmp_path / "out").exists()


def test_the_judge_is_made_cautious_until_each_set_alone_is_rarely_accepted_wrong() -> None:
    """Sure plain numbers must not hide a set whose accepted readings are often wrong: pooled, 10 wrong in 1,100
    accepted are under 1 %, but the fields' 10 in 100 are not."""
    weights = np.zeros(len(EVIDENCE))
    weights[0] = 1.0

    def settled(level: float, right: list[bool]) -> train_reader._Settled:
        evidence = np.zeros((len(right), len(EVIDENCE)))
        evidence[:, 0] = level
        return train_reader._Settled(evidence, np.asarray(right), len(right))

    numbers, fields = settled(5.0, [True] * 1000), settled(2.0, [True] * 90 + [False] * 10)

    bias = train_reader.cautious_bias(weights, 0.0, [numbers, fields])

    # Review's threshold, 0.8, is a logit of 1.386: the fields at 2 + bias fall under it, the numbers stay over.
    assert 1.386 - 2.0 - train_reader.CAUTION_STEP < bias < 1.386 - 2.0
    judge = Judge(tuple(weights), bias)
    assert train_reader._accepted(judge, fields.evidence, fields.right) == (0.0, 0.0)
    assert train_reader._accepted(judge, numbers.evidence, numbers.right) == (1.0, 0.0)
    assert train_reader.cautious_bias(weights, 0.0, [numbers]) == 0.0  # nothing to be cautious about
