"""Hostile and broken input through the real daemon: each gets a plain `error` row, the rest is left alone."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.daemons import run_once, write_e2e_config
from tests.helpers import result_rows

SAMPLE = np.load(Path(__file__).parent / "data" / "mnist_sample.npz")
GOOD = cv2.imencode(".png", np.pad(255 - SAMPLE["x"][0], 20, constant_values=255))[1].tobytes()
GOOD_LABEL = str(SAMPLE["y"][0])
LONG_NAME = "ü" * 125 + ".png"


def bomb() -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 30001 * 64))
        + chunk(b"IEND", b"")
    )


ERRORS = {
    "empty.png": (b"", "empty file"),
    "truncated.png": (GOOD[: len(GOOD) // 2], "damaged PNG image (cannot be decoded)"),
    "letter.png": (b"Dear scanner, this is text.", "not a PNG image"),
    "random.png": (bytes(np.random.default_rng(1).integers(1, 255, 4096, dtype=np.uint8)), "not a PNG image"),
    "animation.png": (b"GIF89a" + b"\0" * 64, "not a PNG image"),
    "bomb.png": (bomb(), "image too large: 30000x30000 > 40 Mpx"),
    "huge-file.png": (GOOD + b"\0" * 3_000_000, "file too large: "),
}
ODD_NAMES = {
    "comma, and more.png": "comma, and more.png",
    'say "cheese".png': 'say "cheese".png',
    "two\nlines.png": "two\nlines.png",
    "数字 ünïcödé.png": "数字 ünïcödé.png",
    "=HYPERLINK(1).png": "'=HYPERLINK(1).png",
    "-2+3.png": "'-2+3.png",
    "@SUM(A1).png": "'@SUM(A1).png",
    LONG_NAME: LONG_NAME,
}
LEFT_ALONE = [".hidden.png", "upload.png.part", "upload.tmp", "~lock.png", "notes.txt", "picture.gif"]


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("hostile")
    config = write_e2e_config(folder, extra="limits:\n  max_bytes: 2000000\n")
    inbox = folder / "inbox"
    inbox.mkdir()
    for name, (data, _) in ERRORS.items():
        (inbox / name).write_bytes(data)
    for name in [*ODD_NAMES, *LEFT_ALONE]:
        (inbox / name).write_bytes(GOOD)
    (folder / "secret.txt").write_text("never read through a link")
    os.symlink(folder / "secret.txt", inbox / "link.png")
    (inbox / "folder.png").mkdir()
    result = run_once(config)
    assert "Traceback" not in result.stdout + result.stderr
    rows = result_rows(folder / "results.csv")
    by_file = {row["file"]: row for row in rows}
    assert len(by_file) == len(rows), "one row per file"
    return folder, by_file


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ERRORS))
def test_broken_files_get_an_error_row_and_go_to_error(
    processed: tuple[Path, dict[str, dict[str, str]]], name: str
) -> None:
    folder, rows = processed
    row = rows[name]
    assert row["status"] == "error"
    assert row["detail"].startswith(ERRORS[name][1])
    assert row["prediction"] == "" and row["confidence"] == ""
    assert row["moved_to"] == f"inbox/error/{name}"
    assert (folder / "inbox" / "error" / name).read_bytes() == ERRORS[name][0]


def test_a_link_is_never_followed_and_moves_as_a_link(processed: tuple[Path, dict[str, dict[str, str]]]) -> None:
    folder, rows = processed
    assert rows["link.png"]["status"] == "error"
    assert rows["link.png"]["detail"] == "symbolic link (links are never followed)"
    assert (folder / "inbox" / "error" / "link.png").is_symlink()
    assert (folder / "secret.txt").read_text() == "never read through a link"


@pytest.mark.parametrize("name", list(ODD_NAMES))
def test_odd_names_are_read_and_kept(processed: tuple[Path, dict[str, dict[str, str]]], name: str) -> None:
    folder, rows = processed
    row = rows[ODD_NAMES[name]]
    assert row["status"] == "ok" and row["prediction"] == GOOD_LABEL
    assert (folder / "inbox" / "done" / name).read_bytes() == GOOD


def test_other_things_are_left_alone(processed: tuple[Path, dict[str, dict[str, str]]]) -> None:
    folder, rows = processed
    assert sorted(p.name for p in (folder / "inbox").iterdir()) == sorted(
        [*LEFT_ALONE, "folder.png", "done", "error", ".digit-watcher"]
    )
    assert not set(LEFT_ALONE) & set(rows)
    assert len(rows) == len(ERRORS) + len(ODD_NAMES) + 1
