"""Every page of a PDF or multi-page TIFF, read one at a time, bombs refused before they are drawn."""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
import pytest

from watcher.intake.decode import Unreadable, decode
from watcher.intake.pages import Page, pages

MAX_PIXELS = 40_000_000
LETTER = (612.0, 792.0)  # points


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


def tiff_directories(data: bytes) -> list[int]:
    """Offsets of each page's directory, little-endian TIFF as OpenCV writes it."""
    offsets, (offset,) = [], struct.unpack("<I", data[4:8])
    while offset:
        offsets.append(offset)
        (count,) = struct.unpack("<H", data[offset : offset + 2])
        (offset,) = struct.unpack("<I", data[offset + 2 + 12 * count : offset + 6 + 12 * count])
    return offsets


def with_next_directory(data: bytes, page: int, offset: int) -> bytes:
    """The TIFF with page `page`'s link to the following directory pointed at `offset`."""
    start = tiff_directories(data)[page - 1]
    (count,) = struct.unpack("<H", data[start : start + 2])
    link = start + 2 + 12 * count
    return data[:link] + struct.pack("<I", offset) + data[link + 4 :]


def read_all(data: bytes, *, name: str = "scan.pdf", max_pixels: int = MAX_PIXELS, max_pages: int = 1000) -> list[Page]:
    return list(pages(data, name=name, max_pixels=max_pixels, max_pages=max_pages))


def counting(monkeypatch: pytest.MonkeyPatch, owner: Any, attribute: str) -> list[tuple[Any, ...]]:
    """Record each call of owner.attribute (still made), to see when pages are drawn or decoded."""
    calls: list[tuple[Any, ...]] = []
    original: Callable[..., Any] = getattr(owner, attribute)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, attribute, recorded)
    return calls


def test_a_scanned_pdf_comes_back_at_its_images_own_resolution() -> None:
    read = read_all(scanned_pdf(3, dpi=200))
    assert [page.number for page in read] == [1, 2, 3]
    for page in read:
        assert page.error == "" and page.image is not None
        assert page.image.shape == (1100, 850, 3) and page.image.dtype == np.uint8
        # Each page is itself, the right way up: its black square sits at its own height.
        square = page.image[100 * page.number : 100 * page.number + 50, 100:150]
        assert square.max() < 40
        assert page.image[100 * page.number + 60 :, 100:150].min() > 200


def test_a_scanned_page_turned_by_the_pdf_comes_back_turned_at_full_resolution() -> None:
    document = pdfium.PdfDocument(scanned_pdf(1, dpi=200))
    document[0].set_rotation(90)
    (page,) = read_all(saved(document))
    assert page.image is not None and page.image.shape == (850, 1100, 3)


def test_a_page_without_a_scan_is_rendered_at_the_pdf_dpi() -> None:
    (page,) = read_all(vector_pdf([LETTER]))
    assert page.image is not None
    assert page.image.shape == (3300, 2550, 3)  # 11 x 8.5 inches at 300 dpi, not a pixel more
    # The rectangle at one inch from the bottom-left corner, one inch wide, lands where 300 dpi puts it.
    assert page.image[3300 - 600 + 5 : 3300 - 300 - 5, 300 + 5 : 600 - 5].max() < 40
    assert page.image[:2600, :].min() > 200


def test_the_pdf_dpi_is_the_callers() -> None:
    (page,) = list(pages(vector_pdf([LETTER]), name="a.pdf", max_pixels=MAX_PIXELS, max_pages=10, pdf_dpi=150))
    assert page.image is not None and page.image.shape == (1650, 1275, 3)


def test_an_image_covering_part_of_the_page_does_not_make_it_a_scan() -> None:
    document = pdfium.PdfDocument.new()
    add_scan(
        document, scan(1, 600, 600), LETTER, place=(72, 72, 144, 144)
    )  # a 2-inch photo at 300 dpi on a letter page
    (page,) = read_all(saved(document), max_pixels=MAX_PIXELS)
    assert page.image is not None and page.image.shape == (3300, 2550, 3)


def test_an_encrypted_pdf_is_unreadable_and_says_so() -> None:
    data = encrypted_pdf("secret")
    assert len(pdfium.PdfDocument(data, password="secret")) == 1  # the sample really is encrypted, not broken
    with pytest.raises(Unreadable, match=r"^PDF is encrypted \(a password is needed\)$"):
        pages(data, name="locked.pdf", max_pixels=MAX_PIXELS, max_pages=10)


def test_a_pdf_locked_only_against_editing_is_read() -> None:
    (page,) = read_all(encrypted_pdf(""))
    assert page.image is not None and page.image.shape == (3300, 2550, 3)


@pytest.mark.parametrize("kept", [0.1, 0.5, 0.9, 0.99])
def test_a_truncated_pdf_is_unreadable(kept: float) -> None:
    data = scanned_pdf(3)
    with pytest.raises(Unreadable, match=r"^damaged or truncated PDF"):
        pages(data[: int(len(data) * kept)], name="cut.pdf", max_pixels=MAX_PIXELS, max_pages=10)


def test_a_pdf_without_pages_is_unreadable() -> None:
    with pytest.raises(Unreadable, match=r"^PDF has no pages$"):
        pages(saved(pdfium.PdfDocument.new()), name="empty.pdf", max_pixels=MAX_PIXELS, max_pages=10)


def test_a_huge_page_is_refused_before_rendering_and_its_siblings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    renders = counting(monkeypatch, pdfium.PdfPage, "render")
    first, huge, last = read_all(vector_pdf([(144, 144), (14400, 14400), (144, 144)]))
    assert huge.number == 2 and huge.image is None
    assert huge.error == "page too large: 60000x60000 > 40 Mpx (200x200 in at 300 dpi)"
    assert first.image is not None and last.image is not None and last.image.shape == (600, 600, 3)
    assert len(renders) == 2


def test_an_image_too_large_to_decode_is_refused_however_small_it_is_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    renders = counting(monkeypatch, pdfium.PdfPage, "render")
    document = pdfium.PdfDocument.new()
    add_scan(document, scan(1, 400, 400), LETTER, place=(72, 72, 72, 72))
    (page,) = read_all(saved(document), max_pixels=100_000)
    assert page.error == "page holds an image too large: 400x400 > 0.1 Mpx"
    assert renders == []


def test_a_scan_whose_resolution_makes_the_page_too_large_is_refused() -> None:
    document = pdfium.PdfDocument.new()
    # 400 pixels over 0.95 inch: the 1-inch page at that resolution is 422 pixels wide.
    add_scan(document, scan(1, 400, 400), (72, 72), place=(0, 0, 68.4, 68.4))
    (page,) = read_all(saved(document), max_pixels=170_000)
    assert page.error == "page too large: 422x422 > 0.17 Mpx (1x1 in at 421 dpi)"
    (page,) = read_all(saved(document), max_pixels=422 * 422)
    assert page.image is not None and page.image.shape == (422, 422, 3)


def test_more_pages_than_the_limit_is_unreadable_with_the_count() -> None:
    data = vector_pdf([(72, 72)] * 5)
    with pytest.raises(Unreadable, match=r"^PDF has 5 pages; limits.max_pages is 4$"):
        pages(data, name="long.pdf", max_pixels=MAX_PIXELS, max_pages=4)
    assert len(read_all(data, max_pages=5)) == 5


def test_pdf_pages_are_rendered_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    renders = counting(monkeypatch, pdfium.PdfPage, "render")
    reading = pages(scanned_pdf(3), name="a.pdf", max_pixels=MAX_PIXELS, max_pages=10)
    assert renders == []
    assert next(reading).number == 1 and len(renders) == 1
    assert next(reading).number == 2 and len(renders) == 2
    assert next(reading).number == 3 and len(renders) == 3
    assert next(reading, None) is None


def test_every_tiff_page_comes_out_as_decode_gives_a_single_image() -> None:
    grey = np.arange(30 * 40, dtype=np.uint8).reshape(30, 40)
    deep = (np.arange(50 * 20, dtype=np.uint16) * 60).reshape(50, 20)
    colour = np.dstack([grey, grey // 2, grey // 3])
    alpha = np.dstack([colour, np.full_like(grey, 128)])
    read = read_all(tiff([grey, deep, colour, alpha]), name="stack.tif")
    assert [page.number for page in read] == [1, 2, 3, 4]
    for page, original in zip(read, [grey, deep, colour, alpha], strict=True):
        alone = decode(tiff([original]), name="one.tif", max_pixels=MAX_PIXELS)
        assert page.image is not None and page.image.dtype == alone.dtype
        np.testing.assert_array_equal(page.image, alone)
        np.testing.assert_array_equal(page.image, original)


def test_a_tiff_page_too_large_is_refused_from_its_header_and_its_siblings_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decodes = counting(monkeypatch, cv2, "imdecode")
    small, large = np.zeros((50, 50), np.uint8), np.zeros((300, 300), np.uint8)
    first, second, third = read_all(tiff([small, large, small]), name="stack.tif", max_pixels=10_000)
    assert second.error == "image too large: 300x300 > 0.01 Mpx" and second.image is None
    assert first.image is not None and third.image is not None
    assert len(decodes) == 2


def test_tiff_pages_are_decoded_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    decodes = counting(monkeypatch, cv2, "imdecode")
    reading = pages(tiff([np.zeros((20, 20), np.uint8)] * 3), name="a.tif", max_pixels=MAX_PIXELS, max_pages=10)
    assert decodes == []
    assert next(reading).number == 1 and len(decodes) == 1
    assert next(reading).number == 2 and len(decodes) == 2


def test_a_tiff_page_past_the_files_end_is_a_page_error() -> None:
    data = with_next_directory(tiff([np.zeros((20, 20), np.uint8)]), 1, 10_000_000)
    assert [page.error for page in read_all(data, name="a.tif")] == ["", "truncated or damaged TIFF header"]


def test_tiff_pages_that_loop_end_in_a_page_error() -> None:
    data = tiff([np.zeros((20, 20), np.uint8)] * 2)
    data = with_next_directory(data, 2, tiff_directories(data)[0])
    assert [page.error for page in read_all(data, name="a.tif")] == ["", "", "truncated or damaged TIFF header"]


def test_more_tiff_pages_than_the_limit_is_unreadable() -> None:
    data = tiff([np.zeros((20, 20), np.uint8)] * 3)
    with pytest.raises(Unreadable, match=r"^TIFF has more than 2 pages; limits.max_pages is 2$"):
        pages(data, name="a.tif", max_pixels=MAX_PIXELS, max_pages=2)


def test_a_single_page_tiff_is_one_page() -> None:
    (page,) = read_all(tiff([np.full((20, 30), 7, np.uint8)]), name="a.tif")
    assert page.number == 1 and page.image is not None and page.image.shape == (20, 30)


def test_the_bytes_decide_not_the_name() -> None:
    ok, png = cv2.imencode(".png", np.full((20, 30, 3), 9, np.uint8))
    assert ok
    (page,) = read_all(png.tobytes(), name="really-a-png.pdf")
    assert page.image is not None and page.image.shape == (20, 30, 3)
    (page,) = read_all(vector_pdf([(72, 72)]), name="really-a-pdf.png")
    assert page.image is not None and page.image.shape == (300, 300, 3)


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"hello, I am text", "a.pdf", "not a PDF document"),
        (b"hello, I am text", "a.png", "not a PNG image"),
        (b"", "a.pdf", "empty file"),
    ],
)
def test_a_file_that_is_not_what_it_says_is_unreadable(data: bytes, name: str, reason: str) -> None:
    with pytest.raises(Unreadable, match=f"^{reason}$"):
        pages(data, name=name, max_pixels=MAX_PIXELS, max_pages=10)
