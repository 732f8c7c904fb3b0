"""What people decided in the review station, as training digits: each scan cut as serving cuts it, with their value."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from watcher.forms.template import Template
from watcher.intake.decode import Unreadable, read_file
from watcher.intake.limits import LimitsConfig
from watcher.intake.pages import only_page
from watcher.ledger import record
from watcher.ledger.history import Results
from watcher.ledger.record import Row
from watcher.vocabulary import CANVAS_PX, DIGITS

HELD_BACK_ONE_IN = 5  # this share of the decided scans is never trained on, to measure the gain on


class CorrectionsError(Exception):
    """No usable decisions at the path given; str() is one line naming it."""


@dataclass(frozen=True)
class Corrections:
    """Digits people decided (verified or corrected), as serving's candidates, split into trained-on and held back."""

    images: np.ndarray  # (n, 28, 28) float32, ink bright on black, as serving feeds the model
    labels: np.ndarray  # (n,) the digit the person gave
    held_back: np.ndarray  # (n,) bool: a scan chosen by its hash to be measured on, never trained on
    sha256: str  # of every scan's hash and value, in order: which decisions a version learnt from
    scans: int  # decided scans whose digits were used
    skipped: int  # decisions not used: a form field's, a scan moved or deleted since, or cut into another count

    def part(self, *, held_back: bool) -> tuple[np.ndarray, np.ndarray]:
        chosen = self.held_back == held_back
        return self.images[chosen], self.labels[chosen]


def results_files(path: Path) -> list[Path]:
    """A results CSV, or the results files in a folder (results.csv and those set aside beside it)."""
    if path.is_dir():
        found = sorted(path.glob("results*.csv"))
        if not found:
            raise CorrectionsError(f"{path}: no results CSV in this folder")
        # A file an upgrade set aside is read with the one that replaced it (watcher.ledger.history): not twice.
        aside = {old for live in found for old in record.set_aside_files(live)}
        return [results for results in found if results not in aside]
    if not path.is_file():
        raise CorrectionsError(f"{path}: results file not found")
    return [path]


def standing_decisions(results: Path) -> list[Row]:
    """The review decisions in a results file that still stand (not undone since), oldest first, each with its
    `moved_to` where its file went last (a form's fields are decided one by one, the form moved at the last)."""
    reader = Results(results)
    reader.refresh()
    return [row._replace(moved_to=reader.now_at(row)) for row in reader.decisions if reader.stands(row)]


def load_corrections(path: Path, *, templates: Path | None = None) -> Corrections:
    """Every standing decision under `path`: its scan (where the row says it went, beside the CSV) read as served.

    A form field's decision is read from its field, found by aligning its page again to the form templates in
    the folder `templates` (without them it is skipped: the row names the whole form).
    """
    forms = _templates(templates)
    images: list[np.ndarray] = []
    labels: list[int] = []
    held_back: list[bool] = []
    digest = hashlib.sha256()
    scans = skipped = 0
    for results in results_files(path):
        for row in standing_decisions(results):
            value, scan = row.prediction, results.parent / row.moved_to
            if not value.isdigit() or (row.field and not forms):
                digits = None
            elif row.field:
                digits = field_digits(scan, row.field, value, forms)
            else:
                digits = decided_digits(scan, value)
            if digits is None:
                skipped += 1
                continue
            scans += 1
            decision = f"{row.sha256} {row.page} {row.field} {value}\n".encode("utf-8", "surrogateescape")
            digest.update(decision)
            images.extend(digits)
            labels.extend(int(digit) for digit in value)
            # Chosen by the decision's own hash, so the same scans are held back at every fine-tune.
            held_back.extend([int(hashlib.sha256(decision).hexdigest()[:8], 16) % HELD_BACK_ONE_IN == 0] * len(value))
    if not images:
        raise CorrectionsError(f"{path}: no review decisions whose scans are still there")
    return Corrections(
        images=np.asarray(images, np.float32).reshape(-1, CANVAS_PX, CANVAS_PX),
        labels=np.asarray(labels, np.uint8),
        held_back=np.asarray(held_back, bool),
        sha256=digest.hexdigest(),
        scans=scans,
        skipped=skipped,
    )


def field_digits(scan: Path, field: str, value: str, templates: Sequence[Template]) -> np.ndarray | None:
    """The digits serving reads in the form field `field` of a decided page, one per digit of `value`.

    None when the page is gone, aligns with no template holding the field, or its field reads as another count.
    """
    from watcher.forms.fields import FormRefused, field_candidates, read_form
    from watcher.vision.options import choose

    holding = [template for template in templates if any(f.name == field for f in template.fields)]
    image = _page(scan)
    if image is None or not holding:
        return None
    form = read_form(image, holding)
    if isinstance(form, FormRefused):
        return None
    images: list[np.ndarray] = []
    # A comb's cells one by one (empty ones have none), a number or a digit as one cell: as the daemon reads them.
    for cell in field_candidates(next(crop for crop in form.fields if crop.name == field)):
        if cell is not None:
            images.extend(cell.images[choose(np.ones((len(cell.images), DIGITS), np.float32), cell)])
    return np.asarray(images, np.float32) if len(images) == len(value) else None


def decided_digits(scan: Path, value: str) -> np.ndarray | None:
    """The digits serving finds in a decided scan (a single image, or a page's picture), one per digit of `value`.

    None when the scan is gone or unreadable, or is cut into another count of digits than the person wrote.
    """
    from watcher.vision.digits import page_digits
    from watcher.vision.options import choose

    image = _page(scan)
    # The mode serving would read it in: one digit as one, a number as a row of digits.
    digits = page_digits(image, mode="digit" if len(value) == 1 else "number") if image is not None else None
    if digits is None:
        return None
    # With every candidate equally sure, the choice is the geometry's own reading (as training cuts numbers).
    chosen = choose(np.ones((len(digits.images), DIGITS), np.float32), digits)
    return digits.images[chosen] if len(chosen) == len(value) else None


def _page(scan: Path) -> np.ndarray | None:
    """A decided scan's pixels (a single image, a page's picture, a one-page PDF); None when gone or unreadable."""
    limits = LimitsConfig()
    try:
        data = read_file(scan, max_bytes=limits.max_bytes)
    except Unreadable:
        return None
    return only_page(data, name=scan.name, max_pixels=limits.max_pixels)


def _templates(folder: Path | None) -> tuple[Template, ...]:
    from watcher.forms.template import TemplateError, load_templates

    try:
        return load_templates(folder) if folder is not None else ()
    except TemplateError as exc:
        raise CorrectionsError(str(exc)) from None
