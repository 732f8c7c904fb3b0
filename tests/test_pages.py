"""Every page of a PDF or multi-page TIFF, read one at a time, bombs refused before they are drawn."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
import pytest

from tests.documents import (
    _pdf,
    _stream,
    add_scan,
    bilevel_pdf,
    encrypted_pdf,
    saved,
    scan,
    scanned_pdf,
    tiff,
    vector_pdf,
)
from watcher.intake.decode import Unreadable, decode
from watcher.intake.pages import Page, open_pages

MAX_PIXELS = 40_000_000
LETTER = (612.0, 792.0)  # points


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
    return list(open_pages(data, name=name, max_pixels=max_pixels, max_pages=max_pages).pages)


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
    (page,) = open_pages(vector_pdf([LETTER]), name="a.pdf", max_pixels=MAX_PIXELS, max_pages=10, pdf_dpi=150).pages
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
        open_pages(data, name="locked.pdf", max_pixels=MAX_PIXELS, max_pages=10)


def test_a_pdf_locked_only_against_editing_is_read() -> None:
    (page,) = read_all(encrypted_pdf(""))
    assert page.image is not None and page.image.shape == (3300, 2550, 3)


@pytest.mark.parametrize("kept", [0.1, 0.5, 0.9, 0.99])
def test_a_truncated_pdf_is_unreadable(kept: float) -> None:
    data = scanned_pdf(3)
    with pytest.raises(Unreadable, match=r"^damaged or truncated PDF"):
        open_pages(data[: int(len(data) * kept)], name="cut.pdf", max_pixels=MAX_PIXELS, max_pages=10)


def test_a_pdf_without_pages_is_unreadable() -> None:
    with pytest.raises(Unreadable, match=r"^PDF has no pages$"):
        open_pages(saved(pdfium.PdfDocument.new()), name="empty.pdf", max_pixels=MAX_PIXELS, max_pages=10)


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
        open_pages(data, name="long.pdf", max_pixels=MAX_PIXELS, max_pages=4)
    assert len(read_all(data, max_pages=5)) == 5


def test_pdf_pages_are_rendered_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    renders = counting(monkeypatch, pdfium.PdfPage, "render")
    reading = open_pages(scanned_pdf(3), name="a.pdf", max_pixels=MAX_PIXELS, max_pages=10).pages
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
    reading = open_pages(
        tiff([np.zeros((20, 20), np.uint8)] * 3), name="a.tif", max_pixels=MAX_PIXELS, max_pages=10
    ).pages
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
        open_pages(data, name="a.tif", max_pixels=MAX_PIXELS, max_pages=2)


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
        open_pages(data, name=name, max_pixels=MAX_PIXELS, max_pages=10)


def test_a_file_opened_at_a_later_page_says_its_count_and_reads_from_there(monkeypatch: pytest.MonkeyPatch) -> None:
    renders = counting(monkeypatch, pdfium.PdfPage, "render")
    opened = open_pages(scanned_pdf(3), name="a.pdf", max_pixels=MAX_PIXELS, max_pages=10, first=3)
    assert opened.page_count == 3
    assert [page.number for page in opened.pages] == [3] and len(renders) == 1
    stack = open_pages(
        tiff([np.zeros((20, 20), np.uint8)] * 3), name="a.tif", max_pixels=MAX_PIXELS, max_pages=10, first=2
    )
    assert stack.page_count == 3 and [page.number for page in stack.pages] == [2, 3]
    single = open_pages(tiff([np.zeros((20, 20), np.uint8)]), name="a.tif", max_pixels=MAX_PIXELS, max_pages=10)
    assert single.page_count == 1 and [page.number for page in single.pages] == [1]


def jpeg_scan_pdf(image: np.ndarray, *, dpi: int, rotation: int = 0, drawing: bool = False) -> bytes:
    """A page as a scanner's scan-to-PDF writes it: the scan's JPEG stream itself (DCTDecode) filling the page."""
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    document = pdfium.PdfDocument.new()
    size = (image.shape[1] / dpi * 72, image.shape[0] / dpi * 72)
    page = document.new_page(*size)
    picture = pdfium.PdfImage.new(document)
    picture.load_jpeg(io.BytesIO(jpeg), pages=[page], inline=False)
    picture.set_matrix(pdfium.PdfMatrix().scale(*size))
    page.insert_obj(picture)
    if drawing:  # a black box drawn over the scan, as a redaction or a stamp would be
        box = pdfium_raw.FPDFPageObj_CreateNewRect(72, 72, 72, 72)
        pdfium_raw.FPDFPageObj_SetFillColor(box, 0, 0, 0, 255)
        pdfium_raw.FPDFPath_SetDrawMode(box, pdfium_raw.FPDF_FILLMODE_ALTERNATE, False)
        pdfium_raw.FPDFPage_InsertObject(page.raw, box)
    page.set_rotation(rotation)
    page.gen_content()
    return saved(document)


def one_page(data: bytes, *, least_side: int | None) -> np.ndarray:
    (page,) = open_pages(data, name="scan.pdf", max_pixels=MAX_PIXELS, max_pages=1, least_side=least_side).pages
    assert page.image is not None, page.error
    return page.image


def a_sheet(height: int, width: int) -> np.ndarray:
    """Grey paper with a dark bar a tenth of the way down: which way up the page is."""
    image = np.full((height, width), 235, np.uint8)
    image[height // 10 : height // 10 + 40, width // 4 : width // 2] = 30
    return image


def test_a_jpeg_scan_filling_its_page_is_decoded_as_it_is_reduced_and_grey() -> None:
    sheet = a_sheet(2000, 1400)
    data = jpeg_scan_pdf(sheet, dpi=200)
    drawn = one_page(data, least_side=None)
    assert drawn.shape == (2000, 1400, 3)  # drawn, without least_side
    reduced = one_page(data, least_side=1000)
    assert reduced.shape == (1000, 700) and reduced.dtype == np.uint8
    expected = cv2.resize(cv2.cvtColor(drawn, cv2.COLOR_BGR2GRAY), (700, 1000), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.astype(int) - expected).mean() < 1.0  # the page as it is drawn, averaged down
    assert one_page(data, least_side=1500).shape == (2000, 1400)  # not halved below the least side: whole, grey


def test_a_jpeg_scan_with_anything_else_on_its_page_is_drawn_in_grey() -> None:
    sheet = a_sheet(2000, 1400)
    drawn = one_page(jpeg_scan_pdf(sheet, dpi=200, drawing=True), least_side=1000)
    assert drawn.shape == (2000, 1400) and drawn[-350:-250, 250:350].max() < 40  # the box drawn over the scan
    # Turned by the PDF: drawn turned, as a page is shown.
    assert one_page(jpeg_scan_pdf(sheet, dpi=200, rotation=90), least_side=1000).shape == (1400, 2000)


def test_a_black_and_white_page_drawn_for_a_sheet_is_drawn_in_grey_as_its_colour_drawing_turned_grey() -> None:
    sheet = a_sheet(2000, 1400)
    for data in (bilevel_pdf([sheet], dpi=200, encodings=["g4"]), bilevel_pdf([sheet], dpi=200, encodings=["flate"])):
        grey = one_page(data, least_side=500)
        assert grey.shape == (2000, 1400) and grey.dtype == np.uint8
        colour = one_page(data, least_side=None)
        assert np.abs(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY).astype(int) - grey).max() <= 1


def test_a_black_and_white_scan_drawn_for_a_sheet_says_so() -> None:
    sheet = a_sheet(2000, 1400)
    for data in (bilevel_pdf([sheet], dpi=200, encodings=["g4"]), bilevel_pdf([sheet], dpi=200, encodings=["flate"])):
        (page,) = open_pages(data, name="scan.pdf", max_pixels=10**8, max_pages=1, least_side=500).pages
        assert page.bilevel
        (page,) = open_pages(data, name="scan.pdf", max_pixels=10**8, max_pages=1).pages
        assert not page.bilevel  # drawn in colour, not read as a sheet
    for data in (jpeg_scan_pdf(sheet, dpi=200, drawing=True), vector_pdf([LETTER])):
        (page,) = open_pages(data, name="page.pdf", max_pixels=10**8, max_pages=1, least_side=500).pages
        assert not page.bilevel


def test_a_page_with_a_colour_image_is_drawn_in_colour_whatever_the_least_side() -> None:
    assert one_page(scanned_pdf(1, dpi=200), least_side=500).shape == (1100, 850, 3)  # a colour scan, not a JPEG
    tinted = cv2.cvtColor(a_sheet(2000, 1400), cv2.COLOR_GRAY2BGR)
    tinted[:, :, 0] //= 2
    assert one_page(jpeg_scan_pdf(tinted, dpi=200, drawing=True), least_side=1000).shape == (2000, 1400, 3)


def test_a_page_of_drawings_is_drawn_in_grey_for_a_sheet() -> None:
    assert one_page(vector_pdf([LETTER]), least_side=500).shape == (3300, 2550)  # at the PDF dpi, 300
    assert one_page(vector_pdf([LETTER]), least_side=None).shape == (3300, 2550, 3)


def hand_written_jpeg_pdf(image: np.ndarray, extra: bytes = b"") -> bytes:
    """A page holding one grey JPEG image XObject, written by hand with `extra` entries in its dictionary (a soft
    mask, a decode array), which PDFium's API does not tell of."""
    high, wide = image.shape
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    points = (wide * 72 / 200, high * 72 / 200)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.4f %.4f] /Resources << /XObject << /Scan 5 0 R >> >>"
        b" /Contents 4 0 R >>" % points,
        _stream(b"", b"q %.4f 0 0 %.4f 0 0 cm /Scan Do Q" % points),
        _stream(
            b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8"
            b" /Filter /DCTDecode%s" % (wide, high, extra),
            jpeg,
        ),
        _stream(
            b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8"
            % (wide, high),
            np.zeros((high, wide), np.uint8).tobytes(),
        ),
    ]
    return _pdf(objects)


@pytest.mark.parametrize(
    ("extra", "decoded"),
    [(b"", True), (b" /SMask 6 0 R", False), (b" /Decode [1 0]", False), (b" /DecodeParms << /Foo 1 >>", True)],
)
def test_a_jpeg_scan_whose_dictionary_asks_more_of_drawing_is_drawn(extra: bytes, decoded: bool) -> None:
    sheet = a_sheet(2000, 1400)
    page = one_page(hand_written_jpeg_pdf(sheet, extra), least_side=1000)
    # Decoded as it is: halved. Drawn: whole, and as PDFium draws it (masked out to white, or inverted).
    assert page.shape == ((1000, 700) if decoded else (2000, 1400))
    if not decoded:
        drawn = one_page(hand_written_jpeg_pdf(sheet, extra), least_side=None)
        assert np.abs(cv2.cvtColor(drawn, cv2.COLOR_BGR2GRAY).astype(int) - page).max() <= 1


def test_a_colour_jpeg_scan_is_decoded_as_it_is_in_grey() -> None:
    tinted = cv2.cvtColor(a_sheet(2000, 1400), cv2.COLOR_GRAY2BGR)
    tinted[:, :, 0] //= 2
    data = jpeg_scan_pdf(tinted, dpi=200)
    reduced = one_page(data, least_side=1000)
    assert reduced.shape == (1000, 700)
    drawn = cv2.cvtColor(one_page(data, least_side=None), cv2.COLOR_BGR2GRAY)
    assert np.abs(reduced.astype(int) - cv2.resize(drawn, (700, 1000), interpolation=cv2.INTER_AREA)).mean() < 1.0


def test_pages_that_are_jpeg_scans_are_each_decoded_as_they_are() -> None:
    document = pdfium.PdfDocument.new()
    for number in range(3):
        sheet = a_sheet(2000, 1400)
        sheet[300 + 100 * number : 350 + 100 * number, 600:700] = 0  # which page it is
        single = pdfium.PdfDocument(jpeg_scan_pdf(sheet, dpi=200))
        document.import_pages(single)
    pages = list(
        open_pages(saved(document), name="scan.pdf", max_pixels=MAX_PIXELS, max_pages=9, least_side=1000).pages
    )
    for number, page in enumerate(pages):
        assert page.image is not None and page.image.shape == (1000, 700)
        assert page.image[155 + 50 * number : 170 + 50 * number, 310:340].max() < 60
