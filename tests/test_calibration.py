"""Calibration: temperature scaling, its fit, the calibration error, and a version's temperature applied when served."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from watcher.model import classify
from watcher.model.calibration import (
    confident_error_share,
    expected_calibration_error,
    fit_logistic,
    fit_temperature,
    temper,
    with_no_digit,
)
from watcher.model.classify import LiteRTClassifier, ModelError, digit_shares, latest_version, load_version
from watcher.model.sequence import EVIDENCE

SHIPPED = Path(__file__).parents[1] / "models" / "mnist-cnn"
SAMPLE = Path(__file__).parent / "data" / "mnist_sample.npz"


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def test_tempering_divides_the_logits_and_keeps_the_ranking() -> None:
    logits = np.random.default_rng(0).normal(0, 4, (50, 11))
    probabilities = softmax(logits)
    assert np.allclose(temper(probabilities, 2.5), softmax(logits / 2.5), atol=1e-6)
    assert temper(probabilities, 1.0) is probabilities  # a model without a temperature is served as it is
    assert (temper(probabilities, 3.0).argmax(axis=1) == probabilities.argmax(axis=1)).all()
    assert (temper(probabilities, 3.0).max(axis=1) < probabilities.max(axis=1)).all()  # T > 1: less sure
    # A class the model rounded to 0 stays 0, with no warning about a log of 0.
    assert temper(np.array([[1.0, 0.0]], np.float32), 2.0).tolist() == [[1.0, 0.0]]


@pytest.mark.slow
def test_fit_finds_the_temperature_the_labels_were_drawn_at() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 5, (20_000, 10))
    # The labels follow the logits at T = 2: a model twice as sure as it should be.
    labels = np.array([rng.choice(10, p=row) for row in softmax(logits / 2)])
    assert fit_temperature(with_no_digit(softmax(logits)), labels) == pytest.approx(2.0, rel=0.05)
    sure_and_right = softmax(logits).argmax(axis=1)
    assert fit_temperature(with_no_digit(softmax(logits)), sure_and_right) < 0.5  # always right: sharpen


def test_the_no_digit_column_is_what_the_digits_lack() -> None:
    full = with_no_digit(np.array([[0.5, 0.2] + [0.0] * 8, [0.1] * 10], np.float32))
    assert full.shape == (2, 11) and np.allclose(full[:, 10], [0.3, 0.0]) and np.allclose(full.sum(axis=1), 1)


def test_expected_calibration_error() -> None:
    # 80 % confident and right 8 times in 10: calibrated.
    assert expected_calibration_error(np.full(10, 0.8), np.arange(10) < 8) == pytest.approx(0.0)
    # Always right at 0.6: 40 points under-confident.
    assert expected_calibration_error(np.full(5, 0.6), np.ones(5, bool)) == pytest.approx(0.4)
    # Two bins, weighted by their readings: 3 at 0.99 all wrong, 1 at 0.5 right: (3 * 0.99 + 1 * 0.5) / 4.
    confidence, correct = np.array([0.99, 0.99, 0.99, 0.5]), np.array([False, False, False, True])
    assert expected_calibration_error(confidence, correct) == pytest.approx((3 * 0.99 + 0.5) / 4)
    # 15 bins: 0.61 and 0.66 share the bin (0.6, 0.667], 0.68 is in the next; 0 joins the first.
    assert expected_calibration_error(np.array([0.61, 0.66]), np.array([True, False])) == pytest.approx(0.135)
    assert expected_calibration_error(np.array([0.61, 0.68]), np.array([True, False])) == pytest.approx(0.535)
    assert expected_calibration_error(np.array([0.0]), np.array([False])) == 0.0
    assert expected_calibration_error(np.array([]), np.array([], bool)) == 0.0


def test_confident_error_share() -> None:
    confidence = np.array([0.999, 0.995, 0.95, 0.5, 0.999])
    correct = np.array([False, False, False, False, True])
    assert confident_error_share(confidence, correct, at_least=0.99) == 0.5
    assert confident_error_share(confidence, correct, at_least=0.9) == 0.75
    assert confident_error_share(confidence, np.ones(5, bool), at_least=0.9) == 0.0


class FakeInterpreter:
    """LiteRT's interface, answering every digit with the same eleven probabilities."""

    def __init__(self, row: np.ndarray, batch_size: int) -> None:
        self.row, self.batch_size = row, batch_size

    def get_input_details(self) -> list[dict[str, int]]:
        return [{"index": 0}]

    def get_output_details(self) -> list[dict[str, int]]:
        return [{"index": 1}]

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        assert value.shape[0] == self.batch_size

    def invoke(self) -> None:
        pass

    def get_tensor(self, index: int) -> np.ndarray:
        return np.tile(self.row, (self.batch_size, 1))


def test_the_classifier_serves_tempered_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    row = np.array([0.9, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05], np.float32)
    monkeypatch.setattr(
        classify, "_interpreter", lambda model_file, batch_size, shape: FakeInterpreter(row, batch_size)
    )
    digits = np.zeros((3, 28, 28), np.float32)

    as_trained = LiteRTClassifier(Path("fake.tflite"), version="fake/1").probabilities(digits)
    tempered = LiteRTClassifier(Path("fake.tflite"), version="fake/2", temperature=2.0).probabilities(digits)

    assert np.allclose(as_trained, row[:10])
    # p ∝ p ** (1 / T) over all eleven classes, then the ten digits' columns: sqrt(.9), sqrt(.05), sqrt(.05).
    total = np.sqrt(0.9) + 2 * np.sqrt(0.05)
    assert np.allclose(tempered[0, :2], [np.sqrt(0.9) / total, np.sqrt(0.05) / total], atol=1e-6)
    assert np.allclose(tempered.sum(axis=1), 1 - np.sqrt(0.05) / total, atol=1e-6)  # no digit keeps its share


def copy_version(folder: Path, metadata: dict[str, object]) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(latest_version(SHIPPED) / "model.tflite", folder / "model.tflite")
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def test_a_version_with_a_temperature_is_served_tempered(tmp_path: Path) -> None:
    with np.load(SAMPLE) as data:
        digits = data["x"][:50].astype(np.float32) / 255
    as_trained = load_version(copy_version(tmp_path / "m" / "1", {"epochs": 1})).probabilities(digits)
    calibrated = load_version(copy_version(tmp_path / "m" / "2", {"temperature": 1.8})).probabilities(digits)
    # The digits' shares among themselves, which a reading's confidence is: those of the tempered rows.
    assert np.allclose(digit_shares(calibrated), digit_shares(temper(as_trained, 1.8)), atol=1e-5)
    assert (calibrated.argmax(axis=1) == as_trained.argmax(axis=1)).all()
    assert calibrated.max(axis=1).mean() < as_trained.max(axis=1).mean()


@pytest.mark.parametrize("temperature", ["hot", -1, 0, True, None])
def test_a_bad_temperature_is_a_one_line_model_error(tmp_path: Path, temperature: object) -> None:
    version = copy_version(tmp_path / "1", {"temperature": temperature})
    with pytest.raises(ModelError) as raised:
        load_version(version)
    assert "temperature" in str(raised.value) and "metadata.json" in str(raised.value) and "\n" not in str(raised.value)


def test_the_logistic_fit_recovers_the_weights_the_outcomes_were_drawn_with() -> None:
    rng = np.random.default_rng(0)
    evidence = rng.normal(size=(20_000, 3)) * [1.0, 3.0, 0.2]  # columns of different scales, as a judge's are
    truth, bias = np.array([1.5, -0.4, 5.0]), 0.7
    right = rng.random(len(evidence)) < 1 / (1 + np.exp(-(evidence @ truth + bias)))
    weights, fitted_bias = fit_logistic(evidence, right)
    assert np.allclose(weights, truth, rtol=0.1) and abs(fitted_bias - bias) < 0.1


def reader_version(folder: Path, judge: object) -> Path:
    """The shipped version with its reader, the reader's judge replaced by `judge`."""
    shutil.copytree(latest_version(SHIPPED), folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["reader"]["judge"] = judge
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


@pytest.mark.parametrize(
    "judge",
    [
        "sure",
        {"weights": {"log_path": 1.0, "luck": 1.0}, "bias": 0.0},  # evidence the reader does not know
        {"weights": dict.fromkeys(EVIDENCE, 1.0)},  # no bias
        {"weights": dict.fromkeys(EVIDENCE, 1.0), "bias": float("nan")},
        {"weights": dict.fromkeys(EVIDENCE, True), "bias": 0.0},
    ],
)
def test_a_bad_judge_is_a_one_line_model_error(tmp_path: Path, judge: object) -> None:
    with pytest.raises(ModelError) as raised:
        load_version(reader_version(tmp_path / "1", judge))
    assert "reader.judge" in str(raised.value) and "\n" not in str(raised.value)


def test_a_judge_fitted_before_some_evidence_existed_gives_it_no_weight(tmp_path: Path) -> None:
    older = {name: 1.0 for name in EVIDENCE if name != "log_least_blank"}
    reader = load_version(reader_version(tmp_path / "1", {"weights": older, "bias": 0.5})).reader
    assert reader is not None and reader.judge is not None
    assert dict(zip(EVIDENCE, reader.judge.weights, strict=True)) == {**older, "log_least_blank": 0.0}
