"""Specimen forms for the forms tests: templates written beside their references, pages filled and scanned."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.helpers import MNIST_SAMPLE
from watcher.forms import specimen
from watcher.forms.template import Template, load_template

REFERENCE_DPI = 100  # small references and pages keep the tests fast; the bench reads at 150-600 dpi


def write_template(folder: Path, layout: specimen.Layout, *, dpi: float = REFERENCE_DPI) -> Path:
    """The layout's reference PNG and template YAML in the folder; the YAML's path."""
    cv2.imwrite(str(folder / f"{layout.name}.png"), specimen.draw(layout, dpi))
    path = folder / f"{layout.name}.yaml"
    path.write_text(specimen.template_yaml(layout, dpi, reference=f"{layout.name}.png"), encoding="utf-8")
    return path


def specimen_template(folder: Path, layout: specimen.Layout) -> Template:
    return load_template(write_template(folder, layout))


def sample_digits() -> tuple[np.ndarray, np.ndarray]:
    """The committed MNIST test sample: images (ink bright, 28x28) and labels."""
    sample = np.load(MNIST_SAMPLE)
    return sample["x"], sample["y"]
