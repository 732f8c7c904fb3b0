"""Every page of a file, one at a time: PDF pages rendered, TIFF pages decoded, any other image as one page.

PDFs are read with PDFium (pypdfium2), Chromium's PDF engine: well kept, permissively licensed, with wheels
for every platform, and it never runs a document's JavaScript or forms (no V8 in these builds, and forms are
never initialised here). PDFium is not thread-safe: read PDFs from one thread per process, as the daemon's
worker processes do.
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw

from watcher.intake.decode import Unreadable, decode, grey_jpeg, image_kind, jpeg_frame

PDF_MAGIC = b"%PDF-"
POINTS_PER_INCH = 72
# An image covering this share of the page makes it a scan, read at the image's own resolution.
SCAN_COVERAGE = 0.9
_GREY_SPACES = (pdfium_raw.FPDF_COLORSPACE_DEVICEGRAY, pdfium_raw.FPDF_COLORSPACE_CALGRAY)

_PDF_OPEN_ERRORS = {
    pdfium_raw.FPDF_ERR_PASSWORD: "PDF is encrypted (a password is needed)",
    pdfium_raw.FPDF_ERR_SECURITY: "PDF is encrypted with an unsupported security scheme",
    pdfium_raw.FPDF_ERR_FORMAT: "damaged or truncated PDF (it cannot be parsed)",
    pdfium_raw.FPDF_ERR_PAGE: "damaged PDF (its list of pages cannot be read)",
}


@dataclass(frozen=True)
class Page:
    """One page of a file (`number` counts from 1): its pixels, as `decode` gives them, or why it has none."""

    number: int
    image: np.ndarray | None = None
    error: str = ""
    # Drawn from black-and-white images alone (CCITT, JBIG2, 1-bit): a bilevel scan at its own resolution, though
    # PDFium's drawing may leave a few greys (watcher.vision.sheet reduces such a page as it reduces one of two levels)
    bilevel: bool = False


class PagedFile(NamedTuple):
    """A file opened for its pages: how many it has, and its pages from the first asked for."""

    page_count: int
    pages: Iterator[Page]


def open_pages(
    data: bytes,
    *,
    name: str,
    max_pixels: int,
    max_pages: int,
    pdf_dpi: int = 300,
    first: int = 1,
    least_side: int | None = None,
) -> PagedFile:
    """The file's pages from page `first` on, each read only when asked for and never kept.

    With `least_side`, a page may come back smaller where that is cheaper than its full size, its longer side
    `least_side` px at least (a large JPEG, halved by its scaled decoding: see `decode`); without it, every page is at
    its full size.

    A file that cannot be opened at all raises Unreadable here, before any page; a page that cannot be
    read is a Page with an `error`, and the pages after it are still read. The bytes say what the file
    is, whatever its name says.
    """
    if data.startswith(PDF_MAGIC):
        document = _open_pdf(data, max_pages=max_pages)
        pages = _pdf_pages(
            document, _Streams(data), max_pixels=max_pixels, dpi=pdf_dpi, first=first, least_side=least_side
        )
        return PagedFile(len(document), pages)
    kind = image_kind(data)
    if kind == "TIFF":
        directories = _tiff_directories(data, max_pages=max_pages)
        if len(directories) > 1:
            return PagedFile(len(directories), _tiff_pages(data, directories, max_pixels=max_pixels, first=first))
    if data and kind is None and os.path.splitext(name)[1].lower() == ".pdf":
        raise Unreadable("not a PDF document")
    if first != 1:
        return PagedFile(1, iter([]))
    return PagedFile(1, iter([Page(1, decode(data, name=name, max_pixels=max_pixels, least_side=least_side))]))


def only_page(data: bytes, *, name: str, max_pixels: int, pdf_dpi: int = 300) -> np.ndarray | None:
    """The pixels of a file of one page (a single image, a page's picture, a one-page PDF); None when it cannot
    be read, or has more pages."""
    try:
        page = next(open_pages(data, name=name, max_pixels=max_pixels, max_pages=1, pdf_dpi=pdf_dpi).pages, None)
    except Unreadable:
        return None
    return page.image if page is not None else None


def _open_pdf(data: bytes, *, max_pages: int) -> pdfium.PdfDocument:
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        raise Unreadable(_pdf_open_error(data)) from None
    count = len(document)
    if count > max_pages:
        document.close()
        raise Unreadable(f"PDF has {count} pages; limits.max_pages is {max_pages}")
    return document


def _pdf_open_error(data: bytes) -> str:
    """Why PDFium will not open the file, asked again of its raw API: a document without pages is refused
    too, and then PDFium's last error is whatever an earlier file left there."""
    handle = pdfium_raw.FPDF_LoadMemDocument64(data, len(data), None)
    if handle:
        pdfium_raw.FPDF_CloseDocument(handle)
        return "PDF has no pages"
    return _PDF_OPEN_ERRORS.get(pdfium_raw.FPDF_GetLastError(), "damaged PDF (it cannot be opened)")


def _pdf_pages(
    document: pdfium.PdfDocument, streams: _Streams, *, max_pixels: int, dpi: int, first: int, least_side: int | None
) -> Iterator[Page]:
    try:
        for index in range(first - 1, len(document)):
            try:
                drawn, bilevel = _render(
                    document, index, max_pixels=max_pixels, dpi=dpi, least_side=least_side, streams=streams
                )
                yield Page(index + 1, drawn, bilevel=bilevel)
            except Unreadable as exc:
                yield Page(index + 1, error=str(exc))
    finally:
        document.close()


def _render(
    document: pdfium.PdfDocument,
    index: int,
    *,
    max_pixels: int,
    dpi: int,
    least_side: int | None = None,
    streams: _Streams | None = None,
) -> tuple[np.ndarray, bool]:
    """One page as an HxWx3 BGR picture, and whether it was drawn from black-and-white images alone (`Page.bilevel`);
    its size is checked before anything is drawn.

    With `least_side` (a page read as a sheet, in grey), a page that is a JPEG scan and nothing else is that JPEG
    decoded as `decode` decodes one (maybe halved), and a page without colour images is drawn in grey (HxW): a third
    of the pixels for the sheet finder to shrink, and PDFium draws a black-and-white scan or a page of text faster
    into grey than into colour (a colour image it draws slower into grey, so such a page is drawn in colour)."""
    try:
        page = document[index]
    except pdfium.PdfiumError:
        raise Unreadable("damaged PDF page (it cannot be read)") from None
    try:
        scale = _render_scale(page, dpi=dpi, max_pixels=max_pixels)
        _check_render_size(page, scale, max_pixels=max_pixels)
        scan = None if least_side is None or streams is None else _jpeg_scan(page, scale, streams, least_side)
        if scan is not None:
            return scan, False
        # Not copied: the bitmap's buffer is Python's (render's default), so the array keeps it alive.
        grey = least_side is not None and _without_colour_images(page)
        image: np.ndarray = page.render(scale=scale, may_draw_forms=False, grayscale=grey).to_numpy()
        return image, grey and _bilevel_images(page)
    except pdfium.PdfiumError:
        raise Unreadable("damaged PDF page (it cannot be drawn)") from None
    finally:
        page.close()


def _render_scale(page: pdfium.PdfPage, *, dpi: int, max_pixels: int) -> float:
    """Pixels per point: a scan's own resolution when an image covers the page, else `dpi`.

    Rendering at the scan's resolution, rather than extracting its image, keeps what PDFium applies on the
    way (rotation, crop box, masks, colour spaces, JBIG2/CCITT) and anything drawn over the scan.
    """
    left, bottom, right, top = page.get_cropbox()
    page_area = (right - left) * (top - bottom)
    scan_scale = 0.0
    for image in page.get_objects(filter=[pdfium_raw.FPDF_PAGEOBJ_IMAGE]):
        pixels_wide, pixels_high = image.get_px_size()
        # Drawing an image decodes all of it, however small it is drawn: a bomb is refused unread.
        if pixels_wide * pixels_high > max_pixels:
            raise Unreadable(f"page holds an image too large: {pixels_wide}x{pixels_high} > {max_pixels / 1e6:g} Mpx")
        # Only the page's own images can make it a scan: one inside a form XObject has its bounds in the form's space.
        if image.level > 0:
            continue
        image_left, image_bottom, image_right, image_top = image.get_bounds()
        wide, high = image_right - image_left, image_top - image_bottom
        if wide <= 0 or high <= 0:
            continue
        covered = max(0.0, min(image_right, right) - max(image_left, left)) * max(
            0.0, min(image_top, top) - max(image_bottom, bottom)
        )
        if covered >= SCAN_COVERAGE * page_area:
            # An image turned a quarter on the page has its pixel rows along the page's height.
            if (pixels_wide < pixels_high) != (wide < high):
                pixels_wide, pixels_high = pixels_high, pixels_wide
            # The sharpest covering image sets the resolution (a mixed-raster scan lays a fine text mask
            # over a coarse background).
            scan_scale = max(scan_scale, pixels_wide / wide, pixels_high / high)
    scale = scan_scale or dpi / POINTS_PER_INCH
    # A hair under, so that a size that is a whole number of pixels is not rounded up by float noise
    # in render's ceil (792 pt at 300 dpi would otherwise come out 3301 pixels high).
    return scale * (1 - 1e-9)


def _without_colour_images(page: pdfium.PdfPage) -> bool:
    """Whether every image on the page is grey or black-and-white (or it has none): CCITT and JBIG2 images always
    are; any other is asked for its colour space, but JPEG 2000, which PDFium might decode to answer."""
    for image in page.get_objects(filter=[pdfium_raw.FPDF_PAGEOBJ_IMAGE]):
        filters = image.get_filters()
        if {"CCITTFaxDecode", "JBIG2Decode"} & set(filters):
            continue
        if "JPXDecode" in filters:
            return False
        try:
            metadata = image.get_metadata()
        except pdfium.PdfiumError:
            return False
        if metadata.bits_per_pixel != 1 and metadata.colorspace not in _GREY_SPACES:
            return False
    return True


def _bilevel_images(page: pdfium.PdfPage) -> bool:
    """Whether the page holds images, all of them black-and-white (CCITT, JBIG2 or 1-bit); asked of a page
    `_without_colour_images` passed, so no image needs decoding to answer."""
    found = False
    for image in page.get_objects(filter=[pdfium_raw.FPDF_PAGEOBJ_IMAGE]):
        if (
            not {"CCITTFaxDecode", "JBIG2Decode"} & set(image.get_filters())
            and image.get_metadata().bits_per_pixel != 1
        ):
            return False
        found = True
    return found


def _jpeg_scan(page: pdfium.PdfPage, scale: float, streams: _Streams, least_side: int) -> np.ndarray | None:
    """The page's pixels from its JPEG as it is, when the page is a scanner's: one JPEG image (grey or colour)
    filling the page upright, within a pixel of its size drawn at `scale`, and nothing else on the page (no other
    object, annotation, mask, transparency or decode array). Decoding the JPEG reduced costs a fraction of drawing
    it at full size. None for any other page: it is drawn."""
    if page.get_rotation() or pdfium_raw.FPDFPage_GetAnnotCount(page.raw):
        return None
    if pdfium_raw.FPDFPage_CountObjects(page.raw) != 1:
        return None
    image = pdfium.PdfImage(pdfium_raw.FPDFPage_GetObject(page.raw, 0), page=page)
    if pdfium_raw.FPDFPageObj_GetType(image.raw) != pdfium_raw.FPDF_PAGEOBJ_IMAGE:
        return None
    if image.get_filters() != ["DCTDecode"] or pdfium_raw.FPDFPageObj_HasTransparency(image.raw):
        return None
    left, bottom, right, top = page.get_cropbox()
    a, b, c, d, e, f = image.get_matrix().get()
    # The image's unit square onto the page's visible box, its first row at the top, neither turned nor flipped.
    if max(abs(b), abs(c), abs(a - (right - left)), abs(d - (top - bottom)), abs(e - left), abs(f - bottom)) > 1e-3:
        return None
    wide, high = image.get_px_size()
    width, height = page.get_size()
    # A scanner's pixels fit a page of whole points only roughly (A4 at 300 dpi is 2480.3 px wide): PDFium
    # stretches the image by the fraction of a pixel left, which the sheet finder never sees.
    if abs(math.ceil(width * scale) - wide) > 1 or abs(math.ceil(height * scale) - high) > 1:
        return None
    data = memoryview(image.get_data(decode_simple=False)).cast("B")
    frame = jpeg_frame(data)
    if frame is None or frame != (wide, high, frame[2]) or frame[2] not in (1, 3):
        return None
    if not streams.plain(data, grey=frame[2] == 1):
        return None
    return grey_jpeg(data, longer_side=max(wide, high), least_side=least_side)


# What drawing applies to an image beyond its pixels, named in its own dictionary (a mask, a decode array): a name
# followed by a delimiter, not a longer name (/DecodeParms). And for a colour JPEG, whether its colours are YCbCr,
# which PDFium may take from the dictionary and libjpeg from the JPEG (a grey one has none to transform).
_IMAGE_EXTRAS = re.compile(rb"/(?:SMask|Mask|ImageMask|Decode)(?![^\s()<>\[\]{}/%])")
_COLOUR_TRANSFORM = re.compile(rb"/ColorTransform(?![^\s()<>\[\]{}/%])")
_OBJECT_HEADER = re.compile(rb"\d+\s+\d+\s+obj\b")
_DICTIONARY_REACH = 4096  # bytes before an image's stream its dictionary is sought in
_STREAM_TRIES = 64  # places where an image's first bytes lie that are checked for the whole of it


class _Streams:
    """Image streams found in the PDF's own bytes, for what PDFium's API does not tell of an image: its soft mask
    (/SMask) and decode array (/Decode), which drawing applies. Pages lie in the file mostly in order: each search
    starts where the last stream found ended."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.after = 0

    def plain(self, stream: memoryview, *, grey: bool) -> bool:
        """Whether `stream` (an image's data as stored, `grey` or not) lies in the file, its dictionary naming
        nothing drawing applies beyond its pixels; False when it is not found (an encrypted file stores it
        encrypted)."""
        start = self._find(stream)
        if start is None:
            return False
        self.after = start + len(stream)
        before = self.data[max(0, start - _DICTIONARY_REACH) : start]
        headers = list(_OBJECT_HEADER.finditer(before))
        if not headers:
            return False
        extras = [_IMAGE_EXTRAS] if grey else [_IMAGE_EXTRAS, _COLOUR_TRANSFORM]
        return not any(extra.search(before, headers[-1].end()) for extra in extras)

    def _find(self, stream: memoryview) -> int | None:
        """Where the stream starts in the file: its first bytes (a JPEG's headers, alike on every page of a scan)
        sought from the last stream's end on, then from the file's start, each place checked whole."""
        probe = bytes(stream[:64])
        whole = memoryview(self.data)
        tries = 0
        for begin, end in ((self.after, len(self.data)), (0, self.after)):
            found = self.data.find(probe, begin, end)
            while found >= 0 and tries < _STREAM_TRIES:
                if whole[found : found + len(stream)] == stream:
                    return found
                tries += 1
                found = self.data.find(probe, found + 1, end)
        return None


def _check_render_size(page: pdfium.PdfPage, scale: float, *, max_pixels: int) -> None:
    """Refuse a page whose picture would be empty or too large, computed as `render` will size it."""
    width_points, height_points = page.get_size()
    width, height = width_points * scale, height_points * scale
    if not (math.isfinite(width) and math.isfinite(height) and width >= 1 and height >= 1):
        raise Unreadable(f"PDF page has no usable size ({width_points:g}x{height_points:g} points)")
    pixels_wide, pixels_high = math.ceil(width), math.ceil(height)
    if pixels_wide * pixels_high > max_pixels:
        inches = f"{width_points / POINTS_PER_INCH:.3g}x{height_points / POINTS_PER_INCH:.3g} in"
        raise Unreadable(
            f"page too large: {pixels_wide}x{pixels_high} > {max_pixels / 1e6:g} Mpx"
            f" ({inches} at {scale * POINTS_PER_INCH:.0f} dpi)"
        )


class _Directory(NamedTuple):
    """Where one TIFF page's header lies, and the (width, height) it gives; None when it cannot be read."""

    offset: int
    size: tuple[int, int] | None


def _tiff_directories(data: bytes, *, max_pages: int) -> list[_Directory]:
    """Each page's header, read without decoding anything; a broken link ends the chain after an unreadable one."""
    if len(data) < 8:
        return [_Directory(0, None)]
    order = _byte_order(data)
    directories: list[_Directory] = []
    seen: set[int] = set()
    (offset,) = struct.unpack(order + "I", data[4:8])
    while offset:
        if len(directories) == max_pages:
            raise Unreadable(f"TIFF has more than {max_pages} pages; limits.max_pages is {max_pages}")
        # A directory met twice is a loop, which would otherwise be pages without end.
        found = None if offset in seen else _tiff_directory(data, offset, order)
        if found is None:
            directories.append(_Directory(offset, None))
            break
        seen.add(offset)
        size, following = found
        directories.append(_Directory(offset, size))
        offset = following
    return directories


def _tiff_directory(data: bytes, offset: int, order: str) -> tuple[tuple[int, int] | None, int] | None:
    """One directory's (width, height) and the next one's offset; None when it lies outside the file."""
    if offset < 8 or offset + 2 > len(data):
        return None
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    end = offset + 2 + 12 * count
    if end + 4 > len(data):
        return None
    found: dict[int, int] = {}
    for entry in range(offset + 2, end, 12):
        tag, kind = struct.unpack(order + "HH", data[entry : entry + 4])
        if tag in (256, 257) and kind in (3, 4):
            value_format = order + ("H" if kind == 3 else "I")
            found[tag] = struct.unpack(value_format, data[entry + 8 : entry + 8 + struct.calcsize(value_format)])[0]
    (following,) = struct.unpack(order + "I", data[end : end + 4])
    size = (found[256], found[257]) if 256 in found and 257 in found else None
    return size, following


def _byte_order(data: bytes) -> str:
    return "<" if data[:2] == b"II" else ">"


def _tiff_pages(data: bytes, directories: list[_Directory], *, max_pixels: int, first: int) -> Iterator[Page]:
    # One copy of the file, its header pointed at each page in turn: OpenCV reads that page as a single
    # image, without stepping over every page before it (a cost that grows with the square of the pages).
    pointed = bytearray(data)
    for number, directory in enumerate(directories[first - 1 :], first):
        struct.pack_into(_byte_order(data) + "I", pointed, 4, directory.offset)
        try:
            yield Page(number, _decode_tiff_page(pointed, directory.size, max_pixels=max_pixels))
        except Unreadable as exc:
            yield Page(number, error=str(exc))


def _decode_tiff_page(pointed: bytearray, size: tuple[int, int] | None, *, max_pixels: int) -> np.ndarray:
    """The page the header points at, decoded as `decode` decodes a single image, once its size is checked."""
    if size is None:
        raise Unreadable("truncated or damaged TIFF header")
    width, height = size
    if width <= 0 or height <= 0:
        raise Unreadable(f"TIFF header says {width}x{height} pixels")
    if width * height > max_pixels:
        raise Unreadable(f"image too large: {width}x{height} > {max_pixels / 1e6:g} Mpx")
    try:
        image = cv2.imdecode(np.frombuffer(pointed, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise Unreadable("damaged TIFF image (cannot be decoded)")
    if image.dtype not in (np.uint8, np.uint16):
        raise Unreadable(f"unsupported pixel type {image.dtype}")
    return image
