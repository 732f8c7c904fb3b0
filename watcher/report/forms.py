"""The report's forms: per template, the pages read, their fields, what went to review, what failed to align.

A results row names its field, not its template: a page's field rows (written together, in template order)
are told apart by their field names, which each template's `forms/NAME.csv` header lists.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from watcher.forms.template import PAGE_COLUMNS, TAIL_COLUMNS
from watcher.vocabulary import Status

UNMATCHED = re.compile(r"matches no form template \(closest: (?P<template>.+?), ")
FORMS_FOLDER = "forms"  # beside the results file, as the daemon writes them


@dataclass
class Tally:
    """One template's counts (or a set of field names no forms CSV names)."""

    pages: int = 0  # pages read as this form
    fields: int = 0
    to_review: int = 0  # fields sent to review (unsure, or a rule broken)
    empty: int = 0
    unaligned: int = 0  # pages that matched no template, this one the closest
    final: int = 0  # rows in forms/NAME.csv: pages with every field final
    inliers: list[int] = field(default_factory=list)


@dataclass
class FormsTally:
    """Field rows grouped into pages as the CSV is streamed, and error rows naming the template closest."""

    by_fields: dict[tuple[str, ...], Tally] = field(default_factory=dict)
    unaligned: dict[str, int] = field(default_factory=dict)
    _page: tuple[str, str, str] | None = None
    _fields: list[tuple[str, str]] = field(default_factory=list)

    def add(self, *, file: str, page: str, sha256: str, field_name: str, status: str, detail: str) -> None:
        """A model's row (not a person's decision), in CSV order."""
        key = (file, page, sha256)
        if not field_name or key != self._page:
            self.close()
        if field_name:
            self._page = key
            self._fields.append((field_name, status))
        elif status == Status.ERROR and (refused := UNMATCHED.match(detail)):
            self.unaligned[refused["template"]] = self.unaligned.get(refused["template"], 0) + 1

    def close(self) -> None:
        """End the page being gathered (at the next page, or the end of the CSV)."""
        if self._fields:
            tally = self.by_fields.setdefault(tuple(name for name, _ in self._fields), Tally())
            tally.pages += 1
            tally.fields += len(self._fields)
            tally.to_review += sum(status == Status.LOW_CONFIDENCE for _, status in self._fields)
            tally.empty += sum(status == Status.NO_DIGIT for _, status in self._fields)
        self._page, self._fields = None, []

    def per_template(self, results: Path) -> dict[str, Tally]:
        """The tallies named by template, with each forms CSV's rows; field sets no forms CSV names are kept
        under `fields a, b, …`."""
        named: dict[str, Tally] = {}
        unknown = dict(self.by_fields)
        for sheet in sorted((results.parent / FORMS_FOLDER).glob("*.csv")):
            fields, rows, inliers = _read_sheet(sheet)
            if fields is None:
                continue
            tally = unknown.pop(fields, Tally())
            tally.final, tally.inliers = rows, inliers
            named[sheet.stem] = tally
        for fields, tally in unknown.items():
            named[f"fields {', '.join(fields)}"] = tally
        for template, pages in self.unaligned.items():
            named.setdefault(template, Tally()).unaligned = pages
        return named


def _read_sheet(path: Path) -> tuple[tuple[str, ...] | None, int, list[int]]:
    """A forms CSV's field names (None if it is not one), its row count and each row's inliers."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as file:
            reader = csv.reader(file)
            header = next(reader, [])
            pages, tail = len(PAGE_COLUMNS), len(TAIL_COLUMNS)
            if tuple(header[:pages]) != PAGE_COLUMNS or tuple(header[-tail:]) != TAIL_COLUMNS:
                return None, 0, []
            at = len(header) - tail + TAIL_COLUMNS.index("inliers")
            rows = [cells for cells in reader if len(cells) == len(header)]
    except (OSError, csv.Error):
        return None, 0, []
    return tuple(header[pages:-tail]), len(rows), [int(cells[at]) for cells in rows if cells[at].isdigit()]
