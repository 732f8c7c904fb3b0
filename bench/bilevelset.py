"""Every page kind an office scanner writes (issue 34 item 2): each sheet read as its grey scan and as the scanner's
black-and-white mode writes it (1 bit, CCITT G4 in a TIFF), through decoding, the sheet finder and the model; and
blank sheets with what an office adds to them (punched holes' shadows, a fold, a dark wedge where the page lay
askew), which must give no_digit.

    python bench/bilevelset.py [--sheets 200] [--blanks 200]
"""

from __future__ import annotations

import io
import sys

import cv2
import numpy as np
from common import bench_parser, set_up
from PIL import Image
from sheetset import LAYOUTS, PAPERS_MM, _draw_lines, _scan, _write_number

from watcher.intake.pages import open_pages
from watcher.model.classify import Classifier
from watcher.recognise import Prepared, read
from watcher.vision.digits import page_digits

DPIS = (200, 300)  # an office scanner's black-and-white resolutions
THRESHOLDS = (90, 170)  # the scanner's fixed black level, anywhere in this range of 8-bit grey
BILEVEL_GAP = 0.02  # bilevel pages read within two points of grey ones
BLANK_TARGET = 0.99
MAX_PIXELS = 64_000_000


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--sheets", type=int, default=200, help="written sheets (default 200)")
    parser.add_argument("--blanks", type=int, default=200, help="blank sheets with office marks (default 200)")
    args = parser.parse_args()
    setup = set_up(args)
    rng = setup.rng
    right: dict[str, list[bool]] = {"grey": [], "bilevel": []}
    for _ in range(args.sheets):
        darkness, per_mm, layout = _sheet(rng)
        picked = rng.choice(len(setup.x), size=int(rng.integers(1, 5)), replace=False)
        truth = "".join(map(str, setup.y[picked]))
        _write_number(darkness, setup.x[picked], per_mm=per_mm, rng=rng, layout=layout)
        for kind, data in _files(_scan(darkness, per_mm=per_mm, rng=rng), rng).items():
            right[kind].append(_reading(data, setup.classifier) == truth)
    blank: dict[str, list[bool]] = {"grey": [], "bilevel": []}
    for _ in range(args.blanks):
        darkness, per_mm, _ = _sheet(rng)
        _office_marks(darkness, per_mm=per_mm, rng=rng)
        for kind, data in _files(_scan(darkness, per_mm=per_mm, rng=rng), rng).items():
            blank[kind].append(_reading(data, setup.classifier) == "")
    for kind in right:
        print(
            f"  {kind:<8} whole numbers {np.mean(right[kind]):.1%} ({len(right[kind])}), "
            f"blank sheets with office marks no_digit {np.mean(blank[kind]):.1%} ({len(blank[kind])})"
        )
    passed = np.mean(right["bilevel"]) >= np.mean(right["grey"]) - BILEVEL_GAP
    passed &= all(np.mean(found) >= BLANK_TARGET for found in blank.values())
    print(
        f"targets bilevel within {BILEVEL_GAP:.0%} of grey, blank {BLANK_TARGET:.0%} no_digit: "
        f"{'met' if passed else 'NOT met'}"
    )
    return 0 if passed else 1


def _sheet(rng: np.random.Generator) -> tuple[np.ndarray, float, str]:
    """A sheet's darkness with its printed lines, at a black-and-white resolution; its pixels per mm and layout."""
    paper, dpi, layout = str(rng.choice(list(PAPERS_MM))), int(rng.choice(DPIS)), str(rng.choice(LAYOUTS))
    per_mm = dpi / 25.4
    width_mm, height_mm = PAPERS_MM[paper]
    darkness = np.zeros((round(height_mm * per_mm), round(width_mm * per_mm)), np.float32)
    _draw_lines(darkness, layout, per_mm=per_mm, rng=rng)
    return darkness, per_mm, layout


def _office_marks(darkness: np.ndarray, *, per_mm: float, rng: np.random.Generator) -> None:
    """Some of: two punched holes' shadows (6 mm, 12 mm from the left edge, 80 mm apart, ISO 838), a slanted
    fold's crease and soft shadow, a dark wedge along the left edge; and the scanner's dust."""
    height, width = darkness.shape
    if rng.random() < 0.5:
        radius = round(rng.uniform(2.5, 3.2) * per_mm)
        for y in (height / 2 - 40 * per_mm, height / 2 + 40 * per_mm):
            cv2.circle(darkness, (round(rng.uniform(9, 14) * per_mm), int(y)), radius, float(rng.uniform(0.5, 0.9)), -1)
    if rng.random() < 0.5:
        crease = np.zeros_like(darkness)
        y = int(rng.uniform(0.3, 0.7) * height)
        end = (width - 1, y + round(rng.uniform(-5, 5) * per_mm))
        cv2.line(crease, (0, y), end, float(rng.uniform(0.2, 0.6)), max(1, round(0.3 * per_mm)))
        np.maximum(darkness, cv2.GaussianBlur(crease, (0, 0), rng.uniform(0.2, 1.5) * per_mm), out=darkness)
    if rng.random() < 0.5:
        rows, columns = np.mgrid[0:height, 0:width]
        darkness[columns < rng.uniform(2, 12) * per_mm * rows / height] = 0.9
    for _ in range(int(rng.integers(0, 30))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(darkness, centre, max(1, round(rng.uniform(0.05, 0.4) * per_mm)), 0.7, -1)


def _files(scan: np.ndarray, rng: np.random.Generator) -> dict[str, bytes]:
    """The scan as a grey PNG, and as a G4 TIFF of it cut at the scanner's black level."""
    grey = cv2.cvtColor(scan, cv2.COLOR_BGR2GRAY) if scan.ndim == 3 else scan
    buffer = io.BytesIO()
    Image.fromarray(grey >= int(rng.integers(*THRESHOLDS))).save(buffer, "TIFF", compression="group4")
    return {"grey": cv2.imencode(".png", grey)[1].tobytes(), "bilevel": buffer.getvalue()}


def _reading(data: bytes, classifier: Classifier) -> str:
    (page,) = open_pages(data, name="sheet", max_pixels=MAX_PIXELS, max_pages=1).pages
    assert page.image is not None, page.error
    ((reading,),) = read(
        [Prepared.one_page(page_digits(page.image, mode="auto", cut=classifier.reader is None, bilevel=page.bilevel))],
        classifier,
        review_below=None,
    )
    return reading.prediction


if __name__ == "__main__":
    sys.exit(main())
