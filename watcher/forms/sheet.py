"""forms/NAME.csv (SPEC "Forms"): a template's sheet, and a page's row in it, as the daemon and review write them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from watcher.forms.template import PAGE_COLUMNS, TAIL_COLUMNS, Template
from watcher.ledger.record import Sheet


class Fit(Protocol):
    """How well a page aligned with its template, as the sheet shows it."""

    @property
    def inliers(self) -> int: ...
    @property
    def inlier_share(self) -> float: ...
    @property
    def residual_px(self) -> float: ...


def form_sheet(template: Template, folder: Path) -> Sheet:
    """The template's forms CSV: the page, one column per field in template order, then how it was read."""
    return Sheet(
        folder / f"{template.name}.csv", (*PAGE_COLUMNS, *(field.name for field in template.fields), *TAIL_COLUMNS)
    )


def form_row(
    *, file: str, page: int, values: Sequence[str], status: str, detail: str, fit: Fit | None, time: str, sha256: str
) -> list[str]:
    """A page's row: `values` in template order (empty for an empty field); the fit's cells empty when unknown."""
    fitted = ["", "", ""] if fit is None else [str(fit.inliers), f"{fit.inlier_share:.3f}", f"{fit.residual_px:.2f}"]
    return [file, str(page), *values, status, detail, *fitted, time, sha256]
