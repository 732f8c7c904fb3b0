"""Learning from review decisions: the decided scans read back as training digits, and the fine-tune end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import mnist_scans
from tests.reviewing import open_desk, review_config, send_to_review
from watcher.model import evaluate, finetune
from watcher.model.classify import load_classifier
from watcher.model.corrections import CorrectionsError, load_corrections
from watcher.model.versions import newest_complete
from watcher.service.config import Config

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = Path(__file__).parent / "data" / "mnist_sample.npz"
SERVED = newest_complete(ROOT / "models" / "mnist-cnn") or ROOT / "models" / "mnist-cnn" / "missing"


def decided(config: Config, count: int, *, reviewer: str = "ann") -> list[int]:
    """`count` MNIST scans sent to review, each decided with its true value; returns the values."""
    scans = mnist_scans(count)
    for number, (_, data) in enumerate(scans):
        send_to_review(config, f"scan-{number:02d}.png", data, prediction="0")
    desk = open_desk(config, reviewer=reviewer)
    try:
        by_name = {item.name: item.id for item in desk.queue.items()}
        for number, (label, _) in enumerate(scans):
            desk.decide(by_name[f"scan-{number:02d}.png"], str(label))
    finally:
        desk.close()
    return [label for label, _ in scans]


def test_each_standing_decision_is_its_scan_cut_as_served_with_the_persons_value(tmp_path: Path) -> None:
    config = review_config(tmp_path)
    labels = decided(config, 12)
    corrections = load_corrections(config.paths.results)
    assert corrections.images.shape == (12, 28, 28)
    assert list(corrections.labels) == labels
    assert corrections.scans == 12 and corrections.skipped == 0
    # The shipped model reads MNIST scans right: images and values are in step.
    read = load_classifier(ROOT / "models" / "mnist-cnn").probabilities(corrections.images)[:, :10].argmax(axis=1)
    assert np.mean(read == corrections.labels) >= 0.9
    assert 0 < corrections.held_back.sum() < 12
    assert load_corrections(tmp_path).sha256 == corrections.sha256  # a folder: its results files


def test_undone_and_vanished_decisions_are_not_learnt_from(tmp_path: Path) -> None:
    config = review_config(tmp_path)
    labels = decided(config, 4)
    desk = open_desk(config)
    try:
        desk.undo()
    finally:
        desk.close()
    (config.paths.done / "scan-02.png").unlink()
    corrections = load_corrections(config.paths.results)
    assert (corrections.scans, corrections.skipped) == (2, 1)
    assert list(corrections.labels) == labels[:2]


def test_a_form_fields_decision_is_not_learnt_from(tmp_path: Path) -> None:
    # Its row names the whole form (the field's place on it is the template's): no one digit to learn.
    config = review_config(tmp_path)
    labels = decided(config, 2)
    send_to_review(config, "card.png", mnist_scans(1)[0][1], prediction="5", field="month")
    desk = open_desk(config)
    try:
        (item,) = desk.queue.items()
        desk.decide(item.id, "")
    finally:
        desk.close()
    corrections = load_corrections(config.paths.results)
    assert (corrections.scans, corrections.skipped) == (2, 1)
    assert list(corrections.labels) == labels


def test_no_decisions_is_one_line_naming_the_path(tmp_path: Path) -> None:
    config = review_config(tmp_path)
    send_to_review(config, "a.png", mnist_scans(1)[0][1])
    with pytest.raises(CorrectionsError, match=r"results\.csv: no review decisions"):
        load_corrections(config.paths.results)
    with pytest.raises(CorrectionsError, match="not found"):
        load_corrections(tmp_path / "absent.csv")


@pytest.fixture
def tuning(tmp_path: Path) -> tuple[Config, Path, Path]:
    """Decisions on 20 scans, a tiny MNIST and a copy of the served version (with its sequence reader) to fine-tune."""
    config = review_config(tmp_path)
    decided(config, 20)
    with np.load(SAMPLE) as data:
        x, y = data["x"], data["y"]
    tiny = tmp_path / "tiny.npz"
    np.savez_compressed(tiny, x_train=x[:300], y_train=y[:300], x_test=x[300:500], y_test=y[300:500])
    out = tmp_path / "models" / "mnist-cnn"
    shutil.copytree(SERVED, out / SERVED.name)
    return config, tiny, out


@pytest.mark.slow
def test_fine_tuning_writes_the_next_version_with_the_corrections_in_its_metadata(
    tuning: tuple[Config, Path, Path],
) -> None:
    config, tiny, out = tuning
    # 200 test digits: one read differently is half a point, so the gate is opened here and tested below.
    assert finetune.run(corrections=config.paths.results, data=tiny, epochs=1, seed=2, out=out, max_mnist_drop=1) == 0

    tuned = out / str(int(SERVED.name) + 1)
    metadata = json.loads((tuned / "metadata.json").read_text())
    assert metadata["fine_tuned_from"] == f"mnist-cnn/{SERVED.name}"
    assert metadata["corrections_count"] == 20
    assert metadata["corrections_sha256"] == load_corrections(config.paths.results).sha256
    assert 0 < metadata["corrections_held_back"] < 20
    assert 0.9 <= metadata["mnist_test_accuracy_after"] <= 1
    assert "--corrections" in metadata["command"]
    assert metadata["mix"]["correction_share"] == finetune.CORRECTION_SHARE  # the recipe's numbers, not prose
    classifier = load_classifier(out)
    assert classifier.version == f"mnist-cnn/{tuned.name}"
    # Numbers are still read whole: the reader and its calibration come along unchanged.
    assert classifier.reader is not None
    assert (tuned / "reader.tflite").read_bytes() == (SERVED / "reader.tflite").read_bytes()
    assert metadata["reader"] == json.loads((SERVED / "metadata.json").read_text())["reader"]


@pytest.mark.slow
def test_a_fine_tune_that_costs_mnist_accuracy_writes_no_version(
    tuning: tuple[Config, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, tiny, out = tuning
    # No epoch: accuracy unchanged, which a gate asking for a gain refuses; the gate alone is under test.
    assert finetune.run(corrections=config.paths.results, data=tiny, epochs=0, seed=2, out=out, max_mnist_drop=-1) == 1
    assert "not written: MNIST test accuracy fell" in capsys.readouterr().err
    assert sorted(entry.name for entry in out.iterdir()) == [SERVED.name]


def test_evaluate_reports_the_held_back_corrections(
    tuning: tuple[Config, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, tiny, out = tuning
    held_back = int(load_corrections(config.paths.results).held_back.sum())
    assert evaluate.run(data=tiny, model=out, report=None, corrections=config.paths.results) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("held-back corrections"))
    assert line.endswith(f"of {held_back} digits)")
