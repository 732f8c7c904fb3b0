"""The example under examples/form reads right: its template passes, its two filled scans are read as written."""

from __future__ import annotations

import csv

import cv2
import numpy as np

from tests.daemons import ROOT, SHIPPED_MODEL
from tests.forms import form_verdicts
from watcher.forms.fields import FormPage, read_form
from watcher.forms.template import load_template, read_reference
from watcher.model.classify import load_classifier
from watcher.vocabulary import Status

EXAMPLE = ROOT / "examples" / "form"


def test_the_printable_pdf_is_the_reference_form() -> None:
    printed = read_reference(EXAMPLE / "form.pdf", where=EXAMPLE / "form.pdf")  # rendered at 300 dpi
    reference = cv2.imread(str(EXAMPLE / "form.png"), cv2.IMREAD_GRAYSCALE)
    halved = cv2.resize(printed, reference.shape[::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(halved.astype(int) - reference).mean() < 3


def test_the_example_scans_read_as_written() -> None:
    template = load_template(EXAMPLE / "form.yaml")
    classifier = load_classifier(SHIPPED_MODEL)
    with open(EXAMPLE / "filled.csv", newline="", encoding="utf-8") as file:
        written = list(csv.DictReader(file))
    assert len(written) == 2
    for row in written:
        form = read_form(cv2.imread(str(EXAMPLE / row["file"]), cv2.IMREAD_UNCHANGED), [template])
        assert isinstance(form, FormPage), form
        for name, verdict in form_verdicts(form, template, classifier, review_below=None).items():
            assert verdict.prediction == row[name], (row["file"], name)
            assert verdict.status == (Status.OK if row[name] else Status.NO_DIGIT), verdict
