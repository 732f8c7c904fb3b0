"""Whole sheets at any resolution (issue 15 item 3): one written number anywhere on a page, read through the sheet
finder, by resolution, paper size, ruling and file format; blank sheets must give no_digit."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pypdfium2 as pdfium
from common import bench_parser, set_up

from tests.documents import POINTS_PER_INCH, add_scan, saved
from watcher.intake.pages import open_pages
from watcher.model.synthetic import NUMBER_LENGTHS, compose_number
from watcher.recognise import Prepared, read
from watcher.vision.digits import page_digits
from watcher.vision.sheet import READ_SIDE

TARGET, BLANK_TARGET = 0.97, 0.99
MODES = ("number", "auto")
PAPERS_MM = {"A4": (210.0, 297.0), "Letter": (215.9, 279.4), "A5": (148.0, 210.0)}
DPIS = (150, 200, 300, 600)
LAYOUTS = ("plain", "ruled", "squared", "margin")
HEIGHT_MM = ((5.0, 15.0), (4.0, 25.0))  # most numbers 5-15 mm tall, some anywhere from 4 to 25 mm
BLANK_SHARE = 0.1
TRAIL_SHARE = 0.25  # numbers followed by a full stop or a comma
TINTS = ((1.0, 1.0, 1.0), (0.86, 0.95, 1.0), (0.95, 1.0, 0.93), (1.0, 0.96, 0.9))  # BGR: white, cream, green, blue
FORMATS = ("PNG", "JPEG", "TIFF", "PDF")
MAX_PIXELS = 64_000_000  # A4 at 600 dpi is 35 Mpx


@dataclass(frozen=True)
class Sheet:
    data: bytes
    truth: str  # "" for a blank sheet
    dpi: int
    paper: str
    layout: str
    format: str


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--sheets", type=int, default=200, help="sheets (default 200)")
    args = parser.parse_args()
    setup = set_up(args)
    digits, labels, classifier, rng = setup.x, setup.y, setup.classifier, setup.rng
    print(f"{args.sheets} sheets")
    # Each sheet is made, read and dropped: a 600 dpi page is tens of megabytes.
    sheets: list[Sheet] = []
    readings: dict[str, list[str]] = {mode: [] for mode in MODES}
    decode_s, read_s = 0.0, dict.fromkeys(MODES, 0.0)
    cut = classifier.reader is None  # as the daemon: numbers cut into digits only without a sequence reader
    for _ in range(args.sheets):
        sheet = make_sheet(digits, labels, rng)
        started = time.perf_counter()
        # Decoded as the daemon decodes a page it reads as a sheet (a large JPEG at a reduced size).
        opened = open_pages(sheet.data, name="sheet", max_pixels=MAX_PIXELS, max_pages=1, least_side=READ_SIDE)
        (page,) = opened.pages
        assert page.image is not None, page.error
        image = page.image
        decode_s += time.perf_counter() - started
        for mode in MODES:
            started = time.perf_counter()
            ((reading,),) = read(
                [Prepared.one_page(page_digits(image, mode=mode, cut=cut, bilevel=page.bilevel))],
                classifier,
                review_below=None,
            )
            readings[mode].append(reading.prediction)
            read_s[mode] += time.perf_counter() - started
        sheets.append(Sheet(b"", sheet.truth, sheet.dpi, sheet.paper, sheet.layout, sheet.format))
    passed = True
    for mode in MODES:
        print(
            f"\nmode {mode}: ms/page decode {1000 * decode_s / len(sheets):.0f}, "
            f"decode+find+read {1000 * (decode_s + read_s[mode]) / len(sheets):.0f}"
        )
        passed &= report(sheets, readings[mode])
    print(f"targets {TARGET:.0%} whole-number, blank {BLANK_TARGET:.0%} no_digit: {'met' if passed else 'NOT met'}")
    return 0 if passed else 1


def report(sheets: list[Sheet], readings: list[str]) -> bool:
    """Whole-number accuracy by resolution and by format and layout, and the blank sheets' no_digit rate."""
    passed = True
    keys: dict[str, Callable[[Sheet], str]] = {
        "dpi": lambda s: str(s.dpi),
        "paper": lambda s: s.paper,
        "layout": lambda s: s.layout,
        "format": lambda s: s.format,
    }
    for title, key in keys.items():
        groups: dict[str, list[bool]] = defaultdict(list)
        for sheet, reading in zip(sheets, readings, strict=True):
            if sheet.truth:
                groups[key(sheet)].append(reading == sheet.truth)
        line = "  ".join(f"{name} {np.mean(right):.1%} ({len(right)})" for name, right in sorted(groups.items()))
        passed &= all(np.mean(right) >= TARGET for right in groups.values())
        print(f"  by {title:<6} {line}")
    blanks = [reading == "" for sheet, reading in zip(sheets, readings, strict=True) if not sheet.truth]
    if blanks:
        passed &= bool(np.mean(blanks) >= BLANK_TARGET)
        print(f"  blank sheets no_digit {np.mean(blanks):.1%} ({len(blanks)})")
    return bool(passed)


def make_sheet(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> Sheet:
    """One scanned sheet: paper, its printed lines, maybe a number (and a full stop or comma), scanner effects."""
    paper, dpi, layout = str(rng.choice(list(PAPERS_MM))), int(rng.choice(DPIS)), str(rng.choice(LAYOUTS))
    per_mm = dpi / 25.4
    width_mm, height_mm = PAPERS_MM[paper]
    shape = (round(height_mm * per_mm), round(width_mm * per_mm))
    darkness = np.zeros(shape, np.float32)  # how much of the light each pixel's ink absorbs
    _draw_lines(darkness, layout, per_mm=per_mm, rng=rng)
    truth = ""
    if rng.random() >= BLANK_SHARE:
        picked = rng.choice(len(digits), size=int(rng.choice((1, *NUMBER_LENGTHS))), replace=False)
        truth = "".join(map(str, labels[picked]))
        _write_number(darkness, digits[picked], per_mm=per_mm, rng=rng, layout=layout)
    for _ in range(int(rng.integers(0, 6))):  # the scanner's dust: specks well under a millimetre
        centre = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        cv2.circle(darkness, centre, max(1, round(rng.uniform(0.05, 0.3) * per_mm)), 0.7, -1)
    kind = str(rng.choice(FORMATS))
    return Sheet(
        _file(_scan(darkness, per_mm=per_mm, rng=rng), kind, dpi=dpi, rng=rng), truth, dpi, paper, layout, kind
    )


def _draw_lines(darkness: np.ndarray, layout: str, *, per_mm: float, rng: np.random.Generator) -> None:
    """Ruled, squared or margin-lined paper: faint printed lines a fraction of a millimetre wide."""
    height, width = darkness.shape
    level = float(rng.uniform(0.2, 0.45))
    thickness = max(1, round(rng.uniform(0.15, 0.3) * per_mm))
    if layout in ("ruled", "margin"):
        step = rng.uniform(7.0, 9.0) * per_mm
        for y in np.arange(rng.uniform(15, 30) * per_mm, height, step):
            cv2.line(darkness, (0, int(y)), (width - 1, int(y)), level, thickness)
    if layout == "squared":
        step = 5.0 * per_mm
        for y in np.arange(rng.uniform(0, step), height, step):
            cv2.line(darkness, (0, int(y)), (width - 1, int(y)), level, thickness)
        for x in np.arange(rng.uniform(0, step), width, step):
            cv2.line(darkness, (int(x), 0), (int(x), height - 1), level, thickness)
    if layout == "margin":
        x = int(rng.uniform(20, 35) * per_mm)
        cv2.line(darkness, (x, 0), (x, height - 1), level + 0.1, thickness)


def _write_number(
    darkness: np.ndarray, picked: np.ndarray, *, per_mm: float, rng: np.random.Generator, layout: str
) -> None:
    """The composed MNIST number at its physical size, anywhere on the page, maybe with a full stop or comma."""
    ink, _ = compose_number(picked, rng)
    low, high = HEIGHT_MM[int(rng.random() < 0.2)]
    height, width = darkness.shape
    edge = round(8 * per_mm)
    # compose_number's digits are about 20 px tall; six 25 mm digits would not fit across an A5 page.
    scale = min(rng.uniform(low, high) * per_mm / 20, 0.9 * (width - 2 * edge) / ink.shape[1])
    big = cv2.resize(ink.astype(np.float32) / 255, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    coverage = np.clip((big - 0.3) * 4.0, 0.0, 1.0)  # a pen's crisp edges, as render_number_scan draws them
    h, w = coverage.shape
    top, left = int(rng.integers(edge, height - h - edge)), int(rng.integers(edge, width - w - edge))
    pen = float(rng.uniform(0.7, 1.0))
    region = darkness[top : top + h, left : left + w]
    np.maximum(region, pen * coverage, out=region)
    if rng.random() < TRAIL_SHARE:
        rows, columns = np.nonzero(coverage > 0.5)
        baseline, right = top + int(np.percentile(rows, 95)), left + int(columns.max())
        radius = max(1, round(rng.uniform(0.3, 0.6) * per_mm))
        centre = (right + round(rng.uniform(0.8, 2.5) * per_mm), baseline - radius)
        cv2.circle(darkness, centre, radius, pen, -1)
        if rng.random() < 0.5:  # a comma: the dot and a tail curling down and left
            tail = (centre[0] - radius, centre[1] + round(rng.uniform(1.2, 2.5) * per_mm))
            cv2.line(darkness, centre, tail, pen, max(1, radius // 2))


def _scan(darkness: np.ndarray, *, per_mm: float, rng: np.random.Generator) -> np.ndarray:
    """The page as a scanner sees it: tinted paper, uneven light, slight blur, noise, edge band."""
    height, width = darkness.shape
    if rng.random() < 0.5:
        darkness = cv2.GaussianBlur(darkness, (0, 0), rng.uniform(0.3, 0.8) * per_mm / 11.8)
    light: float | np.ndarray = float(rng.uniform(0.8, 1.0))
    if rng.random() < 0.4:  # uneven light: a smooth gradient across the page
        small = rng.uniform(0.8, 1.0, (3, 3)).astype(np.float32)
        light = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC) * light
    page = light * (1.0 - darkness)
    if rng.random() < 0.2:  # the scanner lid's dark band along one edge
        band = round(rng.uniform(1.0, 5.0) * per_mm)
        page[:, :band] *= 0.2
    noise = np.empty(darkness.shape, np.float32)
    cv2.randn(noise, np.zeros(1), np.full(1, rng.uniform(0.0, 0.05)))
    page += noise
    grey = np.clip(page * 255, 0, 255).astype(np.uint8)
    tint = TINTS[int(rng.integers(len(TINTS)))]
    return grey if tint == TINTS[0] else cv2.merge([cv2.convertScaleAbs(grey, alpha=channel) for channel in tint])


def _file(image: np.ndarray, kind: str, *, dpi: int, rng: np.random.Generator) -> bytes:
    """The page as a scanner writes it: PNG, JPEG, TIFF, or a PDF holding the (JPEG-marked) scan at its resolution."""
    if kind in ("JPEG", "PDF"):
        jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 95))])[1]
        if kind == "JPEG":
            return jpeg.tobytes()
        colour = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        assert colour is not None
        image = colour
        document = pdfium.PdfDocument.new()
        height, width = image.shape[:2]
        add_scan(document, image, (width / dpi * POINTS_PER_INCH, height / dpi * POINTS_PER_INCH))
        return saved(document)
    return cv2.imencode(".png" if kind == "PNG" else ".tif", image)[1].tobytes()


if __name__ == "__main__":
    sys.exit(main())
