"""Read a claimed file without following links and decode it into pixels, refusing bombs first."""

from __future__ import annotations

import errno
import os
import stat
import struct
from pathlib import Path

import cv2
import numpy as np

from watcher.vocabulary import FILE_KINDS

# A JPEG decodes at half its size for a fraction of the full decode's cost: the inverse DCT of each 8x8 block is
# taken at 4x4, from its lowest frequencies (libjpeg's scaled decoding). Grey, as the sheet finder reads it, and with
# the orientation the file's pixels have, as IMREAD_UNCHANGED gives them. Not smaller: decoded at a quarter (2x2), one
# of bench/sheetset.py's 600-dpi JPEG sheets lost a digit that it keeps decoded at half.
_JPEG_REDUCED = {
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2 | cv2.IMREAD_IGNORE_ORIENTATION,
    1: cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION,
}


class Unreadable(Exception):
    """A file that cannot be classified; str(e) is the CSV `detail`, in a user's words."""


def read_file(path: Path, *, max_bytes: int) -> bytes:
    """The file's bytes; a symbolic link, a non-regular file or an oversized one is Unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Unreadable("symbolic link (links are never followed)") from None
        if exc.errno == errno.ENOENT:
            raise Unreadable("file not found") from None
        raise Unreadable(f"cannot open file: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable("not a regular file")
        if info.st_size > max_bytes:
            raise Unreadable(f"file too large: {info.st_size} bytes > {max_bytes} bytes")
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Unreadable(f"file too large: more than {max_bytes} bytes")
    return data


def decode(data: bytes, *, name: str, max_pixels: int, least_side: int | None = None) -> np.ndarray:
    """Pixels as OpenCV gives them unchanged: H×W, H×W×3 (BGR) or H×W×4 (BGRA), uint8 or uint16.

    With `least_side`, a page whose longer side is at least twice that comes back at half its size: a JPEG in
    grey (uint8 H×W), by its scaled decoding; another 8-bit page without transparency, grey or colour, averaged 2×2
    (its last row or column dropped where it has an odd number).
    """
    if not data:
        raise Unreadable("empty file")
    kind = image_kind(data)
    if kind is None:
        named = FILE_KINDS.get(os.path.splitext(name)[1].lower())
        raise Unreadable(f"not a {named} image" if named else "not an image (PNG, JPEG, TIFF or BMP)")
    size = header_size(data, kind)
    if size is None:
        raise Unreadable(f"truncated or damaged {kind} header")
    width, height = size
    if width <= 0 or height <= 0:
        raise Unreadable(f"{kind} header says {width}x{height} pixels")
    if width * height > max_pixels:
        raise Unreadable(f"image too large: {width}x{height} > {max_pixels / 1e6:g} Mpx")
    if kind == "JPEG" and jpeg_reduction(max(width, height), least_side) > 1:
        image = grey_jpeg(data, longer_side=max(width, height), least_side=least_side)
    else:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise Unreadable(f"damaged {kind} image (cannot be decoded)")
    if image.dtype not in (np.uint8, np.uint16):
        raise Unreadable(f"unsupported pixel type {image.dtype}")
    return halved(image, least_side) if kind != "JPEG" else image


def halved(image: np.ndarray, least_side: int | None) -> np.ndarray:
    """An 8-bit grey or colour page averaged 2×2 where half its size leaves a longer side of `least_side` px at
    least (OpenCV's whole-factor INTER_AREA, a few ms), as a scanner at half the resolution sees it; else as it is."""
    height, width = image.shape[:2]
    eight_bit = image.dtype == np.uint8 and (image.ndim == 2 or image.shape[2] == 3)
    if not eight_bit or jpeg_reduction(max(height, width), least_side) == 1:
        return image
    even = image[: height // 2 * 2, : width // 2 * 2]
    return np.asarray(cv2.resize(even, (width // 2, height // 2), interpolation=cv2.INTER_AREA))


def jpeg_reduction(longer_side: int, least_side: int | None) -> int:
    """2 where JPEG's scaled decoding to half the size leaves a longer side of `least_side` px at least, else 1
    (always 1 without `least_side`)."""
    if least_side is None:
        return 1
    return next(factor for factor in _JPEG_REDUCED if factor == 1 or -(-longer_side // factor) >= least_side)


def grey_jpeg(data: bytes | memoryview, *, longer_side: int, least_side: int | None) -> np.ndarray | None:
    """A JPEG's pixels in grey (uint8 H×W), reduced by `jpeg_reduction`; None when OpenCV cannot decode them.
    Its size must have been checked: this decodes whatever it is given."""
    flags = _JPEG_REDUCED[jpeg_reduction(longer_side, least_side)]
    try:
        image: np.ndarray | None = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        return None
    return image


def image_kind(data: bytes) -> str | None:
    """The format named by the file's first bytes, whatever its name says."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data.startswith(b"BM"):
        return "BMP"
    return None


def header_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) read from the header alone, so a decompression bomb is never decoded."""
    try:
        if kind == "PNG":
            if data[12:16] != b"IHDR":
                return None
            return struct.unpack(">II", data[16:24])
        if kind == "BMP":
            width, height = struct.unpack("<ii", data[18:26])
            return width, abs(height)
        if kind == "JPEG":
            return _jpeg_size(data)
        return _tiff_size(data)
    except struct.error:
        return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    frame = jpeg_frame(data)
    return None if frame is None else (frame[0], frame[1])


def jpeg_frame(data: bytes | memoryview) -> tuple[int, int, int] | None:
    """A JPEG's (width, height, colour components) from its frame header; None when it has none."""
    start_of_frame = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:
            offset += 1
            continue
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        if marker in start_of_frame:
            height, width, components = struct.unpack(">HHB", data[offset + 5 : offset + 10])
            return width, height, components
        offset += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    found: dict[int, int] = {}
    for index in range(count):
        entry = data[ifd + 2 + 12 * index : ifd + 14 + 12 * index]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):
            value_format = order + ("H" if kind == 3 else "I")
            found[tag] = struct.unpack(value_format, entry[8 : 8 + struct.calcsize(value_format)])[0]
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None
