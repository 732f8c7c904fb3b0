"""Form pages in review: each unsure field shown as its own part of the page, and the page's forms row written
with the decision on its last unsure field.

A results row names its page's field, not where that field lies on the scan: the page is aligned again, to the
templates with the page's field names in their order (the daemon's own), to find it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import structlog

from watcher.forms.align import Alignment, Refusal, best_alignment, reference
from watcher.forms.features import features, grey
from watcher.forms.fields import field_view
from watcher.forms.sheet import form_row, form_sheet
from watcher.forms.template import Template
from watcher.intake.pages import only_page
from watcher.ledger.history import is_decision
from watcher.ledger.record import Row, Sheet
from watcher.vocabulary import Event, Status

log = structlog.get_logger()

ALIGNMENTS_KEPT = 256  # pages aligned again are remembered, by file, page and bytes: a grid asks for each once


class Located(NamedTuple):
    """A review page aligned again: the template it is a page of, and how."""

    template: Template
    alignment: Alignment | None  # None: the page no longer aligns (the template's reference changed)


class FormPages:
    """The form templates as review sees them: a field's picture, and a decided page's forms row."""

    def __init__(self, templates: Sequence[Template], *, folder: Path, max_pixels: int, pdf_dpi: int) -> None:
        self.templates = tuple(templates)
        self.folder = folder
        self.max_pixels = max_pixels
        self.pdf_dpi = pdf_dpi
        self._fits: OrderedDict[tuple[str, str, str], Located] = OrderedDict()
        self._lock = threading.Lock()

    def first_page(self, path: Path) -> np.ndarray | None:
        """The pixels of a review file's page (it has one: a single scan, or a page's picture); None if gone."""
        data = read_plain(path)
        return (
            None if data is None else only_page(data, name=path.name, max_pixels=self.max_pixels, pdf_dpi=self.pdf_dpi)
        )

    def field_picture(self, path: Path, row: Row, fields: Sequence[str]) -> bytes | None:
        """A PNG of the page around the field `row` reads, upright; None when it cannot be found."""
        image = self.first_page(path)
        located = self.locate(image, row, fields)
        if image is None or located is None or located.alignment is None:
            return None
        field = next(field for field in located.template.fields if field.name == row.field)
        ok, encoded = cv2.imencode(".png", field_view(image, field, located.alignment))
        return encoded.tobytes() if ok else None

    def locate(self, image: np.ndarray | None, row: Row, fields: Sequence[str]) -> Located | None:
        """The template a page with these fields (in this order) is read by, and the page's fit to it (None without
        the page's pixels)."""
        candidates = tuple(t for t in self.templates if tuple(field.name for field in t.fields) == tuple(fields))
        if not candidates:
            return None
        if image is None:
            return Located(candidates[0], None)
        key = (row.file, row.page, row.sha256)
        # One file's page has one fit: the grid's requests and the decision share it (the server runs them in threads).
        with self._lock:
            if key not in self._fits:
                self._fits[key] = _align(image, candidates)
                if len(self._fits) > ALIGNMENTS_KEPT:
                    self._fits.popitem(last=False)
            self._fits.move_to_end(key)
            return self._fits[key]

    def sheet_row(
        self, image: np.ndarray | None, page: Mapping[str, Row], *, time: str
    ) -> tuple[Sheet, list[str]] | None:
        """The forms row of a page whose fields are all final (`page`: each field's last row, decisions included)."""
        first = next(iter(page.values()))
        located = self.locate(image, first, list(page))
        if located is None:
            log.warning(Event.REVIEW_FORM_UNMATCHED, file=first.file, page=first.page, fields=list(page))
            return None
        decided = [row for row in page.values() if is_decision(row)]
        status = Status.CORRECTED if any(row.status == Status.CORRECTED for row in decided) else Status.VERIFIED
        detail = "reviewed: " + ", ".join(f"{row.field} {row.status} by {row.model}" for row in decided)
        cells = form_row(
            file=first.file,
            page=int(first.page),
            values=[row.prediction for row in page.values()],
            status=str(status),
            detail=detail,
            fit=located.alignment,
            time=time,
            sha256=first.sha256,
        )
        return form_sheet(located.template, self.folder), cells


def _align(image: np.ndarray, candidates: Sequence[Template]) -> Located:
    fit = best_alignment(features(grey(image)), [reference(template) for template in candidates])
    if isinstance(fit, Refusal):
        return Located(next(t for t in candidates if t.name == fit.template), None)
    matched, alignment = fit
    return Located(matched.template, alignment)


def read_plain(path: Path) -> bytes | None:
    """A review file's bytes, never through a link; None when it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as file:
            return file.read()
    except OSError:
        return None
