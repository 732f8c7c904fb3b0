"""Documents for tests, built as scanners and office software write them: PDFs, multi-page TIFFs, written sheets."""

from __future__ import annotations

import hashlib
import io
import struct
from typing import Any

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw

from tests.helpers import MNIST_SAMPLE

POINTS_PER_INCH = 72
MM_PER_INCH = 25.4
A4_MM = (210.0, 297.0)  # width, height


def saved(document: Any) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def add_scan(
    document: Any, image: np.ndarray, page_size: tuple[float, float], place: tuple[float, ...] | None = None
) -> None:
    """A page holding one BGR image, drawn at `place` (left, bottom, width, height in points), else page-wide."""
    left, bottom, wide_points, high_points = place or (0, 0, *page_size)
    page = document.new_page(*page_size)
    high, wide = image.shape[:2]
    bitmap = pdfium.PdfBitmap.new_native(wide, high, pdfium_raw.FPDFBitmap_BGR)
    np.frombuffer(bitmap.buffer, np.uint8).reshape(high, wide, 3)[:] = image
    picture = pdfium.PdfImage.new(document)
    picture.set_bitmap(bitmap)
    picture.set_matrix(pdfium.PdfMatrix().scale(wide_points, high_points).translate(left, bottom))
    page.insert_obj(picture)
    page.gen_content()


def add_vector_page(document: Any, size: tuple[float, float], box: tuple[float, float, float, float]) -> None:
    """A page with no image: a black rectangle (left, bottom, width, height in points) drawn as a path."""
    page = document.new_page(*size)
    path = pdfium_raw.FPDFPageObj_CreateNewRect(*box)
    pdfium_raw.FPDFPageObj_SetFillColor(path, 0, 0, 0, 255)
    pdfium_raw.FPDFPath_SetDrawMode(path, pdfium_raw.FPDF_FILLMODE_ALTERNATE, False)
    pdfium_raw.FPDFPage_InsertObject(page.raw, path)
    page.gen_content()


def scan(number: int, wide: int, high: int) -> np.ndarray:
    """White paper with a black square whose height on the page tells which page it is."""
    image = np.full((high, wide, 3), 255, np.uint8)
    image[100 * number : 100 * number + 50, 100:150] = 0
    return image


def scanned_pdf(count: int, *, inches: tuple[float, float] = (4.25, 5.5), dpi: int = 200) -> bytes:
    document = pdfium.PdfDocument.new()
    for number in range(1, count + 1):
        add_scan(
            document, scan(number, round(inches[0] * dpi), round(inches[1] * dpi)), (inches[0] * 72, inches[1] * 72)
        )
    return saved(document)


def vector_pdf(sizes: list[tuple[float, float]]) -> bytes:
    document = pdfium.PdfDocument.new()
    for size in sizes:
        add_vector_page(document, size, (72, 72, 72, 72))
    return saved(document)


def encrypted_pdf(user_password: str) -> bytes:
    """A one-page PDF under the standard security handler, revision 2 (40-bit RC4), written by hand."""
    padding = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")
    padded = (user_password.encode() + padding)[:32]
    file_id = hashlib.md5(b"digit-watcher").digest()
    owner_entry = rc4(hashlib.md5((b"owner" + padding)[:32]).digest()[:5], padded)
    permissions = -4
    key = hashlib.md5(padded + owner_entry + struct.pack("<i", permissions) + file_id).digest()[:5]
    user_entry = rc4(key, padding)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>"
        % (owner_entry.hex().encode(), user_entry.hex().encode(), permissions),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    identifier = file_id.hex().encode()
    out += b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 4 0 R /ID [<%s> <%s>] >>\n" % (
        len(objects) + 1,
        identifier,
        identifier,
    )
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def rc4(key: bytes, data: bytes) -> bytes:
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) % 256
        state[i], state[j] = state[j], state[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + state[i]) % 256
        state[i], state[j] = state[j], state[i]
        out.append(byte ^ state[(state[i] + state[j]) % 256])
    return bytes(out)


def tiff(images: list[np.ndarray]) -> bytes:
    ok, data = cv2.imencodemulti(".tiff", images)
    assert ok
    return data.tobytes()


def a4_pdf(pages: list[np.ndarray], *, dpi: int) -> bytes:
    """A PDF of A4 scans, each page one grey image at `dpi`, as a scanner's scan-to-PDF writes it."""
    document = pdfium.PdfDocument.new()
    size = (A4_MM[0] / MM_PER_INCH * POINTS_PER_INCH, A4_MM[1] / MM_PER_INCH * POINTS_PER_INCH)
    for page in pages:
        add_scan(document, cv2.cvtColor(page, cv2.COLOR_GRAY2BGR), size)
    return saved(document)


def written_sheet(
    first_digit: int, count: int, *, dpi: int, height_mm: float = 10.0, seed: int = 0
) -> tuple[np.ndarray, str]:
    """A blank grey A4 page with MNIST sample digits `first_digit`... written as one number somewhere on it;
    returns the page and the number."""
    rng = np.random.default_rng(seed)
    sample = np.load(MNIST_SAMPLE)
    digits, labels = sample["x"][first_digit : first_digit + count], sample["y"][first_digit : first_digit + count]
    per_mm = dpi / MM_PER_INCH
    page = np.full((round(A4_MM[1] * per_mm), round(A4_MM[0] * per_mm)), 240, np.uint8)
    # MNIST digits are 20 px tall in a 28-px box: scale so the written digits are height_mm tall.
    side = round(28 / 20 * height_mm * per_mm)
    glyphs = [cv2.resize(digit, (side, side), interpolation=cv2.INTER_LINEAR) for digit in digits]
    ink = np.concatenate([glyph[:, side // 6 : side - side // 6] for glyph in glyphs], axis=1)
    top = int(rng.integers(round(30 * per_mm), page.shape[0] - ink.shape[0] - round(30 * per_mm)))
    left = int(rng.integers(round(20 * per_mm), page.shape[1] - ink.shape[1] - round(20 * per_mm)))
    region = page[top : top + ink.shape[0], left : left + ink.shape[1]]
    region[:] = np.minimum(region, 255 - ink.astype(np.int32) * 230 // 255).astype(np.uint8)
    return page, "".join(str(int(label)) for label in labels)
