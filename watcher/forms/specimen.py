"""Specimen forms drawn by the project's own code: printed at any resolution, filled with MNIST digits, scanned.

The example form, the forms bench and the tests all draw their forms here, so a layout is described once (in
millimetres) and its template's boxes always match what is printed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
import yaml

MM_PER_INCH = 25.4
POINTS_PER_INCH = 72
PAPER = 250  # the specimen's paper, a little off white as scanned paper is
PRINT = 70  # printed lines and labels: dark grey, lighter than a pen
PEN = 25
LINE_MM = 0.35  # printed box lines
LABEL_MM = 3.2  # label text height
TITLE_MM = 6.0
DRAW_DPI = 300


@dataclass(frozen=True)
class Box:
    """A printed field: where it is on the sheet (mm, from the top left), its label, kind and rules."""

    name: str
    kind: str
    x: float
    y: float
    width: float
    height: float
    label: str
    cells: int = 1
    rules: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """A sheet (mm) with a title, lines of guide text and its printed fields, in reading order."""

    name: str
    title: str
    size: tuple[float, float]
    boxes: tuple[Box, ...]
    notes: tuple[str, ...] = ()


METER = Layout(
    name="meter",
    title="WATER METER READING CARD",
    size=(210.0, 148.0),  # A5 landscape
    notes=("Write one digit per cell in black or blue ink.", "Return the card by the end of the month."),
    boxes=(
        Box("account", "comb", 20, 40, 80, 11, "Account number", cells=8, rules={"check": "luhn"}),
        Box("reading", "number", 20, 72, 70, 16, "Meter reading (m3)", rules={"digits": [1, 6]}),
        Box("month", "number", 110, 72, 30, 16, "Month", rules={"range": [1, 12]}),
        Box("meter", "digit", 160, 72, 14, 16, "Meter no."),
        Box("code", "comb", 110, 40, 40, 11, "Area code", cells=4),
    ),
)

EXAM = Layout(
    name="exam",
    title="EXAMINATION SCORE SHEET",
    size=(210.0, 297.0),  # A4 portrait
    notes=("Examiner: write the marks for each question in its box.", "Use digits only; leave unused boxes empty."),
    boxes=(
        Box("student", "comb", 25, 50, 72, 12, "Student ID", cells=6),
        Box("room", "comb", 120, 50, 24, 12, "Room", cells=2),
        *(
            Box(f"q{index + 1}", "digit", 25 + 30 * index, 95, 14, 18, f"Q{index + 1}", rules={"range": [0, 9]})
            for index in range(5)
        ),
        Box("bonus", "number", 25, 140, 40, 18, "Bonus", rules={"range": [0, 20]}),
        Box("total", "number", 85, 140, 45, 18, "Total", rules={"digits": [1, 3], "range": [0, 100]}),
        Box("year", "number", 150, 140, 40, 18, "Year", rules={"digits": 4}),
    ),
)


class Scanned(NamedTuple):
    """A scanned page (8-bit grey) and the homography that took the page's pixels to the scan's."""

    image: np.ndarray
    warp: np.ndarray


LAYOUTS = {layout.name: layout for layout in (METER, EXAM)}


def px(mm: float, dpi: float) -> int:
    return round(mm * dpi / MM_PER_INCH)


def box_pixels(box: Box, dpi: float) -> tuple[int, int, int, int]:
    """The box's outer edge in the pixels of the layout drawn at `dpi`: what its template says."""
    return px(box.x, dpi), px(box.y, dpi), px(box.width, dpi), px(box.height, dpi)


def draw(layout: Layout, dpi: float) -> np.ndarray:
    """The blank form as 8-bit grey, at `dpi`: drawn once at DRAW_DPI and resized, as a printer's raster would be,
    so every resolution shows the same sheet (OpenCV's text does not scale exactly with its size)."""
    page = _draw_at(layout, DRAW_DPI)
    size = (px(layout.size[0], dpi), px(layout.size[1], dpi))
    return cv2.resize(page, size, interpolation=cv2.INTER_AREA if dpi < DRAW_DPI else cv2.INTER_LINEAR)


def _draw_at(layout: Layout, dpi: float) -> np.ndarray:
    page = np.full((px(layout.size[1], dpi), px(layout.size[0], dpi)), PAPER, np.uint8)
    line = max(1, px(LINE_MM, dpi))
    _text(page, layout.title, (px(15, dpi), px(20, dpi)), height=px(TITLE_MM, dpi), weight=2 * line)
    for index, note in enumerate(layout.notes):
        row = px(layout.size[1] - 12 - 6 * (len(layout.notes) - 1 - index), dpi)
        _text(page, note, (px(15, dpi), row), height=px(LABEL_MM, dpi), weight=line)
    for box in layout.boxes:
        x, y, w, h = box_pixels(box, dpi)
        _text(page, box.label, (x, y - px(2, dpi)), height=px(LABEL_MM, dpi), weight=line)
        # The box's outer edge is its template box: the line is drawn inside it.
        page[y : y + h, x : x + w] = PRINT
        page[y + line : y + h - line, x + line : x + w - line] = PAPER
        for cell in range(1, box.cells):
            wall = x + round(cell * w / box.cells)
            page[y : y + h, wall - line // 2 : wall - line // 2 + line] = PRINT
    # Registration corners, as printed forms carry: they make the sheet's extent plain to the aligner.
    for corner_x, corner_y in (
        (8, 8),
        (layout.size[0] - 14, 8),
        (8, layout.size[1] - 14),
        (layout.size[0] - 14, layout.size[1] - 14),
    ):
        left, top = px(corner_x, dpi), px(corner_y, dpi)
        page[top : top + px(6, dpi), left : left + px(6, dpi)] = PRINT
    return page


def template_yaml(layout: Layout, dpi: float, *, reference: str) -> str:
    """The layout's template, its boxes in the pixels of the reference drawn at `dpi`."""
    fields: dict[str, object] = {}
    for box in layout.boxes:
        spec: dict[str, object] = {"box": list(box_pixels(box, dpi)), "kind": box.kind}
        if box.kind == "comb":
            spec["cells"] = box.cells
        spec.update(box.rules)
        fields[box.name] = spec
    return yaml.safe_dump({"reference": reference, "fields": fields}, sort_keys=False, default_flow_style=None)


def fill(
    blank: np.ndarray,
    layout: Layout,
    dpi: float,
    writing: Mapping[str, Sequence[np.ndarray | None]],
    rng: np.random.Generator,
) -> np.ndarray:
    """The form with MNIST digits (28x28, ink bright) written in: per field name, its digits in order.

    A comb takes one digit or None (left empty) per cell; a number's digits are written side by side; a digit box
    takes one. Writers vary: digits sit off centre, some touch or cross a cell wall, some are stretched to fill
    their cell.
    """
    page = blank.copy()
    for box in layout.boxes:
        digits = writing.get(box.name, ())
        x, y, w, h = box_pixels(box, dpi)
        if box.kind == "comb":
            cell_width = w / box.cells
            for index, digit in enumerate(digits):
                if digit is not None:
                    _write_in_cell(page, digit, (x + index * cell_width, y, cell_width, h), rng)
        elif box.kind == "digit":
            if digits and digits[0] is not None:
                _write_in_cell(page, digits[0], (x, y, w, h), rng)
        else:
            _write_number(page, [d for d in digits if d is not None], (x, y, w, h), rng)
    return page


def scan(
    page: np.ndarray,
    rng: np.random.Generator,
    *,
    scale: float = 1.0,
    angle: float = 0.0,
    quarter_turns: int = 0,
    perspective: float = 0.0,
    noise: float = 2.0,
) -> Scanned:
    """The page as a scanner or camera sees it: resized by `scale`, tilted `angle` degrees, turned by quarter
    turns, its corners pulled by up to `perspective` of its size, on a slightly larger bed, a little blurred and
    noisy."""
    height, width = page.shape
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    moved = corners + rng.uniform(-perspective, perspective, corners.shape).astype(np.float32) * [width, height]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), angle + 90 * quarter_turns, scale)
    placed = cv2.transform(moved[np.newaxis], turn)[0]
    margin = 0.03 * max(width, height) * scale
    placed += margin - placed.min(axis=0) + rng.uniform(0, margin, 2).astype(np.float32)
    size = np.ceil(placed.max(axis=0) + margin + rng.uniform(0, margin, 2)).astype(int)
    warp = cv2.getPerspectiveTransform(corners, placed.astype(np.float32))
    bed = int(rng.integers(215, 255))
    # The scanner's optics blur by about half a pixel of its own; shrinking first blurs by the source's pixels.
    source = cv2.GaussianBlur(page, (0, 0), 0.6 / scale) if scale < 1 else page
    scanned = cv2.warpPerspective(source, warp, (int(size[0]), int(size[1])), borderValue=bed)
    scanned = cv2.GaussianBlur(scanned, (0, 0), 0.6)
    noisy = scanned.astype(np.float32) + np.asarray(rng.normal(0.0, noise, scanned.shape), np.float32)
    return Scanned(np.clip(noisy, 0, 255).astype(np.uint8), warp)


def pdf(page: np.ndarray, dpi: float) -> bytes:
    """A one-page PDF the size of the sheet holding the 8-bit grey page as a raster at `dpi`, as a scanner's
    PDF (or a printer's file) does."""
    height, width = page.shape
    document = pdfium.PdfDocument.new()
    try:
        sheet = document.new_page(width * POINTS_PER_INCH / dpi, height * POINTS_PER_INCH / dpi)
        bitmap = pdfium.PdfBitmap.new_native(width, height, pdfium_raw.FPDFBitmap_Gray)
        bitmap.to_numpy()[:] = page
        image = pdfium.PdfImage.new(document)
        image.set_bitmap(bitmap)
        image.set_matrix(pdfium.PdfMatrix().scale(sheet.get_width(), sheet.get_height()))
        sheet.insert_obj(image)
        sheet.gen_content()
        written = io.BytesIO()
        document.save(written)
        return written.getvalue()
    finally:
        document.close()


def _write_in_cell(
    page: np.ndarray, digit: np.ndarray, cell: tuple[float, float, float, float], rng: np.random.Generator
) -> None:
    x, y, w, h = cell
    ink = _ink_of(digit)
    if rng.random() < 0.15:  # stretched to fill the cell: a wide 0, a squat 7
        target_h, target_w = h * rng.uniform(0.6, 0.8), w * rng.uniform(0.6, 0.8)
    else:
        target_h = h * rng.uniform(0.55, 0.8)
        target_w = min(w * 0.85, target_h * ink.shape[1] / ink.shape[0])
    centre_x = x + w / 2 + rng.uniform(-0.12, 0.12) * w
    centre_y = y + h / 2 + rng.uniform(-0.1, 0.1) * h
    if rng.random() < 0.15:  # a writer who runs over the cell's edge
        centre_y += rng.choice([-1, 1]) * (h - target_h) / 2 * 1.4
    _stamp(page, ink, centre=(centre_x, centre_y), size=(target_w, target_h))


def _write_number(
    page: np.ndarray, digits: Sequence[np.ndarray], box: tuple[float, float, float, float], rng: np.random.Generator
) -> None:
    if not digits:
        return
    x, y, w, h = box
    inks = [_ink_of(digit) for digit in digits]
    height = h * rng.uniform(0.5, 0.7)
    widths = [height * ink.shape[1] / ink.shape[0] for ink in inks]
    gap = height * rng.uniform(0.1, 0.3)
    total = sum(widths) + gap * (len(inks) - 1)
    shrink = min(1.0, 0.85 * w / total)
    height, widths, gap, total = height * shrink, [v * shrink for v in widths], gap * shrink, total * shrink
    left = x + (w - total) / 2 + rng.uniform(-0.5, 0.5) * (0.9 * w - total) / 2
    centre_y = y + h / 2 + rng.uniform(-0.08, 0.08) * h
    for ink, width in zip(inks, widths, strict=True):
        _stamp(page, ink, centre=(left + width / 2, centre_y), size=(width, height))
        left += width + gap


def _ink_of(digit: np.ndarray) -> np.ndarray:
    """The digit's ink (0-1) cropped to its box."""
    left, top, w, h = cv2.boundingRect((digit > 0).astype(np.uint8))
    return digit[top : top + h, left : left + w].astype(np.float32) / 255


def _stamp(page: np.ndarray, ink: np.ndarray, *, centre: tuple[float, float], size: tuple[float, float]) -> None:
    """Pen ink laid over the page, sized and centred as given (clipped to the page)."""
    width, height = max(2, round(size[0])), max(2, round(size[1]))
    resized = cv2.resize(ink, (width, height), interpolation=cv2.INTER_LINEAR)
    left, top = round(centre[0] - width / 2), round(centre[1] - height / 2)
    region = page[max(top, 0) : top + height, max(left, 0) : left + width]
    alpha = resized[max(-top, 0) : max(-top, 0) + region.shape[0], max(-left, 0) : max(-left, 0) + region.shape[1]]
    region[:] = (region * (1 - alpha) + PEN * alpha).astype(np.uint8)


def _text(page: np.ndarray, text: str, origin: tuple[int, int], *, height: int, weight: int) -> None:
    scale = height / 22  # Hershey simplex capitals are about 22 px tall at scale 1
    cv2.putText(page, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, PRINT, max(1, weight), cv2.LINE_AA)
