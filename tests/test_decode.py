from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from watcher.intake.decode import Unreadable, decode, header_size, image_kind, read_file


def png(width: int, height: int, *, depth: np.dtype = np.uint8, channels: int = 1) -> bytes:
    shape = (height, width) if channels == 1 else (height, width, channels)
    ok, data = cv2.imencode(".png", np.zeros(shape, depth))
    assert ok
    return data.tobytes()


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header promises a huge image."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("extension", "kind"),
    [(".png", "PNG"), (".jpg", "JPEG"), (".tiff", "TIFF"), (".bmp", "BMP")],
)
def test_sizes_are_read_from_every_header(extension: str, kind: str) -> None:
    ok, data = cv2.imencode(extension, np.full((31, 47, 3), 200, np.uint8))
    assert ok
    assert image_kind(data.tobytes()) == kind
    assert header_size(data.tobytes(), kind) == (47, 31)
    assert decode(data.tobytes(), name="x" + extension, max_pixels=10_000).shape[:2] == (31, 47)


def test_16_bit_and_alpha_are_kept() -> None:
    assert decode(png(10, 10, depth=np.uint16), name="a.png", max_pixels=100).dtype == np.uint16
    assert decode(png(10, 10, channels=4), name="a.png", max_pixels=100).shape == (10, 10, 4)


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    with pytest.raises(Unreadable, match=r"image too large: 30000x30000 > 40 Mpx"):
        decode(bomb_png(30000, 30000), name="bomb.png", max_pixels=40_000_000)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"hello, I am text", "not a PNG image"),
        (os.urandom(300).replace(b"\x89", b"\x00"), "not a PNG image"),
        (png(20, 20)[:40], "damaged PNG image"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "truncated or damaged PNG header"),
    ],
)
def test_broken_files_get_a_plain_reason(data: bytes, reason: str) -> None:
    with pytest.raises(Unreadable, match=reason):
        decode(data, name="scan.png", max_pixels=40_000_000)


def test_read_file_never_follows_links(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"x")
    os.symlink(tmp_path / "secret", tmp_path / "link.png")
    with pytest.raises(Unreadable, match="symbolic link"):
        read_file(tmp_path / "link.png", max_bytes=100)


def test_read_file_refuses_oversized_and_special_files(tmp_path: Path) -> None:
    (tmp_path / "big.png").write_bytes(b"x" * 101)
    with pytest.raises(Unreadable, match="file too large: 101 bytes > 100 bytes"):
        read_file(tmp_path / "big.png", max_bytes=100)
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(Unreadable, match="not a regular file"):
        read_file(tmp_path / "pipe.png", max_bytes=100)
    with pytest.raises(Unreadable, match="file not found"):
        read_file(tmp_path / "gone.png", max_bytes=100)
