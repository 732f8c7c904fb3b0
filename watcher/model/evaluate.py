"""Measure a model on the MNIST test split: accuracy, per-digit precision/recall, a confusion-matrix picture."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from watcher.model.classify import Classifier, ModelError, load_classifier, load_version
from watcher.model.corrections import CorrectionsError, load_corrections
from watcher.model.dataset import DatasetError, load_mnist
from watcher.model.versions import METADATA_FILE
from watcher.vision.normalise import normalise
from watcher.vocabulary import DIGITS, ExitCode

BATCH = 256
NO_INK_FOUND = -1  # the prediction recorded when normalisation finds no ink: never a true label


def run(
    *,
    data: Path | None,
    model: Path,
    report: Path | None,
    corrections: Path | None = None,
    templates: Path | None = None,
) -> int:
    """Print accuracy (as given and through normalise) and per-digit figures; draw the matrix to report.

    With `corrections`, also the accuracy on the review decisions `train --corrections` never trains on.
    """
    try:
        _, _, x_test, y_test = load_mnist(data)
        classifier = _load(Path(model))
        held_back = (
            load_corrections(corrections, templates=templates).part(held_back=True) if corrections is not None else None
        )
    except (DatasetError, ModelError, CorrectionsError) as error:
        print(f"digit-watcher evaluate: {error}", file=sys.stderr)
        return ExitCode.BAD_CONFIG
    as_given = _predict(classifier, x_test.astype(np.float32) / 255.0)
    # The same digits through the serving pipeline: proves normalisation does not hurt clean input.
    through_pipeline = _predict_normalised(classifier, x_test)
    accuracy = float(np.mean(as_given == y_test))
    pipeline_accuracy = float(np.mean(through_pipeline == y_test))
    print(f"model {classifier.version}, {len(y_test)} MNIST test digits")
    print(f"accuracy                    {accuracy:.2%}  ({int(np.sum(as_given != y_test))} wrong)")
    print(f"accuracy through normalise  {pipeline_accuracy:.2%}  ({int(np.sum(through_pipeline != y_test))} wrong)")
    if held_back is not None:
        digits, labels = held_back
        right = int(np.sum(_predict(classifier, digits) == labels)) if len(labels) else 0
        print(f"held-back corrections       {right / max(1, len(labels)):.2%}  ({right} of {len(labels)} digits)")
    matrix = confusion_matrix(y_test, as_given)
    print("digit  precision  recall  support")
    for digit in range(10):
        precision = matrix[digit, digit] / max(1, matrix[:, digit].sum())
        recall = matrix[digit, digit] / max(1, matrix[digit, :].sum())
        print(f"{digit:>5}  {precision:>9.2%}  {recall:>6.2%}  {matrix[digit].sum():>7}")
    if report is not None:
        draw_confusion_matrix(
            matrix,
            title=f"{classifier.version}: {accuracy:.2%} on {len(y_test):,} MNIST test digits",
            path=Path(report),
        )
        print(f"confusion matrix written to {report}")
    return 0


def _load(model: Path) -> Classifier:
    """A version folder is served as it is; a model folder serves its newest complete version."""
    return load_version(model) if (model / METADATA_FILE).is_file() else load_classifier(model)


def _predict(classifier: Classifier, digits: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [
            classifier.probabilities(digits[start : start + BATCH]).argmax(axis=1)
            for start in range(0, len(digits), BATCH)
        ]
    )


def _predict_normalised(classifier: Classifier, images: np.ndarray) -> np.ndarray:
    normalised = [normalise(image) for image in images]
    found = np.array([digit is not None for digit in normalised])
    predictions = np.full(len(images), NO_INK_FOUND)
    if found.any():
        predictions[found] = _predict(classifier, np.stack([digit for digit in normalised if digit is not None]))
    return predictions


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """10x10 counts: rows are the true digit, columns the prediction."""
    matrix = np.zeros((DIGITS, DIGITS), np.int64)
    np.add.at(matrix, (truth.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix


def draw_confusion_matrix(matrix: np.ndarray, *, title: str, path: Path) -> None:
    """A PNG where the errors stand out: mistakes in log-scaled red, correct counts in quiet grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    errors = np.where(np.eye(10, dtype=bool), np.nan, matrix.astype(float))
    errors[errors == 0] = np.nan
    figure, axes = plt.subplots(figsize=(7.5, 6.5), dpi=120)
    axes.imshow(np.where(np.eye(10, dtype=bool), 1.0, np.nan), cmap="Greys", vmin=0, vmax=5)
    top = max(2.0, float(np.nanmax(errors)) if np.isfinite(errors).any() else 2.0)
    shown = axes.imshow(errors, cmap="Reds", norm=LogNorm(vmin=1, vmax=top))
    for row in range(10):
        for column in range(10):
            count = matrix[row, column]
            if count == 0:
                continue
            mistake = row != column
            dark = mistake and count > np.sqrt(top)
            axes.text(
                column,
                row,
                str(count),
                ha="center",
                va="center",
                fontsize=9,
                color="white" if dark else ("black" if mistake else "dimgrey"),
                fontweight="bold" if mistake else "normal",
            )
    axes.set_xticks(range(10))
    axes.set_yticks(range(10))
    axes.set_xlabel("predicted digit")
    axes.set_ylabel("true digit")
    axes.set_title(title)
    ticks = [tick for tick in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if tick <= top]
    bar = figure.colorbar(shown, ax=axes, label="mistakes (log scale)", fraction=0.046, pad=0.04, ticks=ticks)
    bar.ax.set_yticklabels([str(tick) for tick in ticks])
    bar.ax.minorticks_off()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
