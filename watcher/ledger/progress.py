"""The pages of a multi-page file read so far, kept beside its claim, so a restart goes on from the next page.

A file's rows are still written once, by the commit of its last pages. Until then what each run of pages
gave is appended here, one JSON line per run (its readings and its rows for other sheets, such as a form's),
and the pictures of its pages lie beside them; a takeover moves them with the claim, since they share its
claim folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from watcher.ledger import place, record
from watcher.ledger.record import Sheet
from watcher.vocabulary import Status

READINGS_SUFFIX = ".pages.jsonl"
PICTURE_SUFFIX = ".png"


class Kept(NamedTuple):
    """What the runs of pages kept so far gave, in page order."""

    readings: list[record.Reading]
    sheet_rows: list[tuple[Sheet, list[str]]]


def picture_path(claimed: Path, page: int) -> Path:
    """Where a page's picture waits beside the claimed file (hidden, so never taken for a claim)."""
    return claimed.with_name(f".{claimed.name}.page-{page}{PICTURE_SUFFIX}")


def picture_name(file: str, page: int) -> str:
    """The name a page's picture gets in review/: the file's own name and the page, e.g. scan.pdf.page-3.png."""
    return f"{file}.page-{page}{PICTURE_SUFFIX}"


def keep(
    claimed: Path,
    readings: Sequence[record.Reading],
    pictures: Mapping[int, bytes],
    sheet_rows: Sequence[tuple[Sheet, Sequence[str]]] = (),
) -> None:
    """Make a run of pages durable, pictures first: a kept reading always has its picture."""
    for page, picture in pictures.items():
        keep_picture(claimed, page, picture)
    run = {
        "readings": [_as_json(reading) for reading in readings],
        "sheet_rows": [
            {"path": os.fspath(sheet.path), "header": list(sheet.header), "cells": list(cells)}
            for sheet, cells in sheet_rows
        ],
    }
    line = (json.dumps(run) + "\n").encode("utf-8")
    path = _readings_path(claimed)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        size = os.fstat(fd).st_size
        whole = _whole_lines_length(os.pread(fd, size, 0))
        # A line cut short by a crash is cut off: its run of pages is read again and kept after the whole ones.
        os.ftruncate(fd, whole)
        os.pwrite(fd, line, whole)
        os.fsync(fd)
    finally:
        os.close(fd)
    place.sync_folders([claimed.parent])


def keep_picture(claimed: Path, page: int, picture: bytes) -> Path:
    """Write a page's picture durably beside the claimed file; returns where."""
    path = picture_path(claimed, page)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        record.write_all(fd, picture)
        os.fsync(fd)
    finally:
        os.close(fd)
    place.sync_folders([claimed.parent])
    return path


def kept(claimed: Path) -> Kept:
    """What the runs kept so far gave; a line cut short by a crash is not a run."""
    try:
        data = _readings_path(claimed).read_bytes()
    except FileNotFoundError:
        return Kept([], [])
    runs = [json.loads(line) for line in data[: _whole_lines_length(data)].decode("utf-8").splitlines()]
    return Kept(
        readings=[_from_json(reading) for run in runs for reading in run["readings"]],
        sheet_rows=[
            (Sheet(Path(row["path"]), tuple(row["header"])), list(row["cells"]))
            for run in runs
            for row in run["sheet_rows"]
        ],
    )


def forget(claimed: Path) -> None:
    """Remove what was kept for a file whose rows are committed (its pictures for review are moved by then)."""
    hidden = f".{claimed.name}."
    try:
        entries = list(os.scandir(claimed.parent))
    except FileNotFoundError:
        return  # the claim folder went with the batch's last file
    for entry in entries:
        if entry.name.startswith(hidden) and entry.name.endswith((READINGS_SUFFIX, PICTURE_SUFFIX)):
            os.unlink(entry.path)


def _readings_path(claimed: Path) -> Path:
    return claimed.with_name(f".{claimed.name}{READINGS_SUFFIX}")


def _whole_lines_length(data: bytes) -> int:
    return data.rfind(b"\n") + 1


def _as_json(reading: record.Reading) -> dict[str, Any]:
    return {
        "page": reading.page,
        "field": reading.field,
        "status": str(reading.status),
        "prediction": reading.prediction,
        "confidence": reading.confidence,
        "top3": [[list(pair) for pair in likeliest] for likeliest in reading.top3],
        "detail": reading.detail,
    }


def _from_json(entry: dict[str, Any]) -> record.Reading:
    return record.Reading(
        status=Status(entry["status"]),
        prediction=entry["prediction"],
        confidence=entry["confidence"],
        top3=tuple(tuple((int(digit), float(share)) for digit, share in likeliest) for likeliest in entry["top3"]),
        detail=entry["detail"],
        page=entry["page"],
        field=entry["field"],
    )
