"""Helpers for tests: digit images and MNIST scans as files, polling for results with a deadline."""

from __future__ import annotations

import csv
import io
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from watcher.ledger.outbox import row_id
from watcher.ledger.record import COLUMNS

T = TypeVar("T")

MNIST_SAMPLE = Path(__file__).parent / "data" / "mnist_sample.npz"


def mnist_archive(folder: Path, *, training: int, test: int = 100) -> Path:
    """An MNIST .npz in the Keras layout made from the sample: its first `training` digits, then `test` more."""
    with np.load(MNIST_SAMPLE) as data:
        x, y = data["x"], data["y"]
    path = folder / "mnist.npz"
    end = training + test
    np.savez(path, x_train=x[:training], y_train=y[:training], x_test=x[training:end], y_test=y[training:end])
    return path


def real_archive(folder: Path, *, start: int, count: int) -> Path:
    """The real-digits archive's layout made from the sample: `count` digits from `start` on as USPS's (16x16), the
    `count` after them as ARDIS's."""
    with np.load(MNIST_SAMPLE) as data:
        x, y = data["x"], data["y"]
    usps, ardis = slice(start, start + count), slice(start + count, start + 2 * count)
    small = np.stack([cv2.resize(digit, (16, 16), interpolation=cv2.INTER_AREA) for digit in x[usps]])
    path = folder / "real-digits.npz"
    np.savez(path, usps_x=small, usps_y=y[usps], ardis_x=x[ardis], ardis_y=y[ardis])
    return path


def digit_png(*, rows: int = 7, size: int = 56) -> bytes:
    """A light page with a dark bar-shaped 'digit' on it, as PNG bytes."""
    page = np.full((size, size), 235, np.uint8)
    cv2.rectangle(page, (size // 2 - 3, size // 4), (size // 2 + 3, size // 4 + rows * size // 28), 20, -1)
    ok, data = cv2.imencode(".png", page)
    assert ok
    return data.tobytes()


def mnist_scans(count: int) -> list[tuple[int, bytes]]:
    """MNIST test digits from the committed sample, as dark-on-light PNG scans."""
    sample = np.load(MNIST_SAMPLE)
    scans = []
    for image, label in zip(sample["x"][:count], sample["y"][:count], strict=True):
        page = cv2.copyMakeBorder(255 - image, 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=255)
        scans.append((int(label), cv2.imencode(".png", page)[1].tobytes()))
    return scans


def drop(inbox: Path, name: str, data: bytes) -> None:
    """Write a file beside the inbox, then rename it in, as scanners and scripts do."""
    staging = inbox.parent / f".staging-{os.getpid()}-{time.monotonic_ns()}"
    staging.write_bytes(data)
    os.rename(staging, inbox / name)


def wait_for(condition: Callable[[], T], *, timeout: float = 30, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def result_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a results CSV as dicts (the header checked too)."""
    if not path.exists():
        return []
    text = path.read_bytes().decode("utf-8", errors="replace")
    # The daemon may be appending as we read: a row without its line end is not written yet.
    written = text[: text.rfind("\r\n") + 2] if "\r\n" in text else ""
    table = list(csv.reader(io.StringIO(written, newline="")))
    if not table:
        return []
    assert table[0] == list(COLUMNS)
    return [dict(zip(COLUMNS, row, strict=True)) for row in table[1:]]


def rows_by_id(path: Path, csv_name: str) -> dict[str, dict[str, str]]:
    """Each row of a CSV under the id a hook is given for it (outbox.row_id), with its CSV and cells as sent."""
    data = path.read_bytes() if path.exists() else b""
    rows, start = {}, 0
    header: list[str] = []
    for end in (match.end() for match in re.finditer(b"\r\n", data)):
        if data.count(b'"', start, end) % 2:
            continue  # a line break inside a quoted cell
        row = data[start:end]
        (cells,) = csv.reader(io.StringIO(row.decode("utf-8"), newline=""))
        if start == 0:
            header = cells
        else:
            rows[row_id(csv_name, start, row)] = {"csv": csv_name, **dict(zip(header, cells, strict=True))}
        start = end
    return rows
