from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from watcher.intake.decode import Unreadable, decode, header_size, image_kind, jpeg_reduction, read_file


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


def jpeg(image: np.ndarray, *, exif: bytes = b"") -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    encoded = data.tobytes()
    if exif:  # an APP1 Exif segment right after SOI
        segment = b"Exif\x00\x00" + exif
        encoded = encoded[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + encoded[2:]
    return encoded


def speckled(height: int, width: int, *, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (height, width) if channels == 1 else (height, width, channels)
    image = np.full(shape, 235, np.uint8)
    image[rng.random((height, width)) < 0.001] = 20
    return image


@pytest.mark.parametrize(
    ("longer", "least", "factor"),
    [(3508, 1650, 2), (3300, 1650, 2), (3298, 1650, 1), (7016, 1650, 2), (40000, 1650, 2), (1000, 1650, 1)],
)
def test_a_jpeg_is_halved_where_that_keeps_the_least_side(longer: int, least: int, factor: int) -> None:
    assert jpeg_reduction(longer, least) == factor
    assert jpeg_reduction(longer, None) == 1


@pytest.mark.parametrize("channels", [1, 3])
def test_a_large_jpeg_with_a_least_side_comes_back_reduced_and_grey(channels: int) -> None:
    image = speckled(2001, 1201, channels=channels)
    data = jpeg(image)
    full = decode(data, name="sheet.jpg", max_pixels=10**8)
    assert full.shape == image.shape  # unchanged without least_side
    reduced = decode(data, name="sheet.jpg", max_pixels=10**8, least_side=1000)
    assert reduced.shape == (1001, 601) and reduced.dtype == np.uint8  # by 2, rounded up as libjpeg does
    grey = full if channels == 1 else cv2.cvtColor(full, cv2.COLOR_BGR2GRAY)
    expected = cv2.resize(grey, (601, 1001), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.astype(int) - expected).mean() < 2.0  # the same page, averaged down


def test_a_reduced_jpeg_keeps_the_pixels_orientation_as_the_full_decode_does() -> None:
    # Exif orientation 6 (turned a quarter): IMREAD_UNCHANGED ignores it, and so must the reduced decode.
    exif = b"MM\x00*" + struct.pack(">IHHHIHHI", 8, 1, 0x0112, 3, 1, 6, 0, 0)
    data = jpeg(speckled(2000, 1200), exif=exif)
    assert decode(data, name="sheet.jpg", max_pixels=10**8).shape == (2000, 1200)
    assert decode(data, name="sheet.jpg", max_pixels=10**8, least_side=1000).shape == (1000, 600)


def test_a_small_page_is_decoded_whole_whatever_the_least_side() -> None:
    field = speckled(300, 200, channels=3)
    assert decode(jpeg(field), name="field.jpg", max_pixels=10**8, least_side=1000).shape == (300, 200, 3)
    assert decode(png(1200, 1998), name="sheet.png", max_pixels=10**8, least_side=1000).shape == (1998, 1200)


@pytest.mark.parametrize(("channels", "odd"), [(1, 0), (3, 0), (1, 1)])
def test_a_large_8_bit_page_of_another_format_comes_back_averaged_2_by_2(channels: int, odd: int) -> None:
    image = speckled(2000 + odd, 1200 + odd, channels=channels)
    data = cv2.imencode(".png", image)[1].tobytes()
    assert decode(data, name="sheet.png", max_pixels=10**8).shape == image.shape  # whole without least_side
    halved = decode(data, name="sheet.png", max_pixels=10**8, least_side=1000)
    assert halved.shape == (1000, 600, channels)[: image.ndim]  # an odd last row and column dropped
    expected = cv2.resize(image[:2000, :1200], (600, 1000), interpolation=cv2.INTER_AREA)
    assert np.array_equal(halved, expected)


@pytest.mark.parametrize(("depth", "channels"), [(np.uint16, 1), (np.uint8, 4)])
def test_a_large_16_bit_or_transparent_page_is_decoded_whole(depth: type, channels: int) -> None:
    data = png(1200, 2000, depth=np.dtype(depth), channels=channels)
    image = decode(data, name="sheet.png", max_pixels=10**8, least_side=1000)
    assert image.shape[:2] == (2000, 1200) and image.dtype == depth


def test_a_reduced_jpeg_is_refused_from_its_full_size_header() -> None:
    data = jpeg(speckled(2000, 1200))
    with pytest.raises(Unreadable, match="image too large: 1200x2000"):
        decode(data, name="sheet.jpg", max_pixels=1_000_000, least_side=500)
