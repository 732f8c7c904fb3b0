"""Specimen forms for the forms tests and the forms bench: templates written beside their references, pages filled
and scanned, and a form page read as the daemon reads it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.helpers import MNIST_SAMPLE
from watcher.forms import specimen
from watcher.forms.fields import FormPage
from watcher.forms.template import Template, load_template
from watcher.ledger.record import Reading
from watcher.model.classify import Classifier
from watcher.recognise import Prepared, form_page, read

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


def form_verdicts(
    form: FormPage, template: Template, classifier: Classifier, *, review_below: float | None
) -> dict[str, Reading]:
    """Each field's reading, its rules judged, by name, in template order: the page read in one process, its fields
    classified in one model call (the daemon batches candidates across files itself, watcher.recognise)."""
    prepared = Prepared(sha256="", pages=(form_page(1, form),))
    (readings,) = read([prepared], classifier, review_below=review_below, templates={template.name: template})
    return {reading.field: reading for reading in readings}
