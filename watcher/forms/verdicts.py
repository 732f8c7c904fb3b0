"""A form page read in one process: all its fields' candidate digits classified in one model call, then judged.

The daemon batches candidates across files itself (watcher.recognise); this serves `predict`-like uses, the
forms bench and the tests, with the same choice of reading as the daemon's.
"""

from __future__ import annotations

import numpy as np

from watcher.forms.fields import FormPage, field_candidates
from watcher.forms.rules import CellReading, FieldVerdict, judge
from watcher.forms.template import Template
from watcher.model.classify import Classifier, digit_shares
from watcher.vision.options import choose
from watcher.vision.segment import Candidates


def form_verdicts(
    form: FormPage, template: Template, classifier: Classifier, *, review_below: float | None
) -> dict[str, FieldVerdict]:
    """Each field's verdict, by name, in template order."""
    per_field = [field_candidates(field) for field in form.fields]
    found = [digits for crops in per_field for digits in crops if digits is not None and len(digits.images)]
    probabilities = (
        classifier.probabilities(np.concatenate([digits.images for digits in found])) if found else np.zeros((0, 10))
    )
    verdicts, start = {}, 0
    for field, crops in zip(template.fields, per_field, strict=True):
        readings: list[CellReading | None] = []
        for digits in crops:
            if digits is None or not len(digits.images):
                readings.append(None)
                continue
            readings.append(cell_reading(probabilities[start : start + len(digits.images)], digits))
            start += len(digits.images)
        verdicts[field.name] = judge(field, readings, review_below=review_below)
    return verdicts


def cell_reading(probabilities: np.ndarray, digits: Candidates) -> CellReading:
    """What one crop reads as: the model's best choice of its candidates, digits and the product of their shares."""
    shares = digit_shares(probabilities[choose(probabilities, digits)])
    if not len(shares):
        return CellReading("", 0.0)
    return CellReading("".join(map(str, shares.argmax(axis=1))), float(np.prod(shares.max(axis=1))))
