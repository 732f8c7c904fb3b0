"""Model version folders, read without loading a model: which one is served, and which of its files serving reads.

The build (setup.py) ships the served version inside the package with these rules, so this module needs the
standard library alone.
"""

from __future__ import annotations

from pathlib import Path

MODEL_FILE = "model.tflite"
KERAS_FILE = "model.keras"  # the digit model's Keras weights: what training goes on from (not served, not shipped)
METADATA_FILE = "metadata.json"
# The version the build ships inside the package: what `model.path` means when a config does not set it.
SHIPPED_MODEL = Path(__file__).with_name("shipped") / "mnist-cnn"


def newest_complete(model_path: Path) -> Path | None:
    """The highest-numbered version folder holding metadata.json and the model file; None when there is none."""
    complete = [
        entry
        for entry in model_path.iterdir()
        if entry.name.isdigit() and (entry / METADATA_FILE).is_file() and (entry / MODEL_FILE).is_file()
    ]
    return max(complete, key=lambda entry: int(entry.name), default=None)


def serving_files(version: Path) -> list[Path]:
    """What serving reads from a version folder: its metadata and every LiteRT model (not the Keras one)."""
    return [version / METADATA_FILE, *sorted(version.glob("*.tflite"))]
