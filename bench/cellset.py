"""Register cells and field crops with what real ones carry (issue 15 item 4): a table or ruled line beside or
through the writing, a table grid, a full stop or comma after the number, printed text near an edge, a small
digit in a large cell, a dark band where the scan was cut, lines tilted a little; each beside a plain control.

Every cell is read through the product's own path (vision.digits.page_digits, then recognise.read, in auto mode unless
--mode says otherwise). Per artefact: whole readings right, wrong readings at confidence >= the review threshold
(they would pass unreviewed), and readings of no digit. On "alone" rows, a cell without writing, no digit is
the right reading.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from common import bench_parser, set_up

from watcher.model.synthetic import compose_number, print_on_paper
from watcher.recognise import Prepared, read
from watcher.vision.digits import page_digits
from watcher.vocabulary import Status

REVIEW_AT = 0.9  # the default review.threshold: readings this sure pass unreviewed
DIGIT_PX = (28, 80)  # the writing's height in an ordinary cell
SMALL_DIGIT_PX = (15, 30)  # ...and in a large cell, which is this many times taller than the digit
LARGE_CELL = (4.0, 8.0)
NUMBER_DIGITS = (2, 3, 4)
TILT_DEG = 3.0


@dataclass
class Cell:
    """A cell being drawn: ink coverage (1 = full pen), the writing's box in it, and its height."""

    ink: np.ndarray
    left: int
    top: int
    right: int
    bottom: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def pad(self, *, left: int = 0, top: int = 0, right: int = 0, bottom: int = 0) -> None:
        """Widen the cell's margins, so that a mark fits beside the writing without touching it."""
        self.ink = cv2.copyMakeBorder(self.ink, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0.0)
        self.left, self.right, self.top, self.bottom = (
            self.left + left,
            self.right + left,
            self.top + top,
            self.bottom + top,
        )


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--singles", type=int, default=300, help="single-digit cells per artefact (default 300)")
    parser.add_argument("--numbers", type=int, default=150, help="cells of 2-4 digits per artefact (default 150)")
    parser.add_argument("--mode", choices=("auto", "number", "digit"), default="auto")
    args = parser.parse_args()
    setup = set_up(args)
    x, y, classifier, rng = setup.x, setup.y, setup.classifier, setup.rng
    print(f"{args.singles} single digits and {args.numbers} numbers of 2-4 digits per artefact, mode {args.mode}")
    print(f"{'artefact':<24} {'kind':<7} {'right':>7} {'wrong>=0.9':>11} {'no digit':>9}")
    for name, (draw, small) in ARTEFACTS.items():
        for kind, count in (("single", args.singles), ("number", args.numbers)):
            if name.endswith("alone") and kind == "number":
                continue
            pages, truths = [], []
            for _ in range(count):
                picked = rng.choice(
                    len(x), size=1 if kind == "single" else int(rng.choice(NUMBER_DIGITS)), replace=False
                )
                cell = _write(x[picked], rng, small=small)
                blank = name.endswith("alone")
                if blank:
                    cell.ink[:] = 0.0
                pages.append(_scan(draw(cell, rng), rng))
                truths.append("" if blank else "".join(map(str, y[picked])))
            cut = classifier.reader is None
            prepared = [Prepared.one_page(page_digits(page, mode=args.mode, cut=cut)) for page in pages]
            readings = [reading for (reading,) in read(prepared, classifier, review_below=None)]
            right = np.mean([r.prediction == truth for r, truth in zip(readings, truths, strict=True)])
            sure_wrong = np.mean(
                [
                    r.prediction != truth and r.confidence is not None and r.confidence >= REVIEW_AT
                    for r, truth in zip(readings, truths, strict=True)
                ]
            )
            no_digit = np.mean([r.status == Status.NO_DIGIT for r in readings])
            print(f"{name:<24} {kind:<7} {right:>7.1%} {sure_wrong:>11.1%} {no_digit:>9.1%}")
    return 0


def _write(digits: np.ndarray, rng: np.random.Generator, *, small: bool) -> Cell:
    """The digits written with a pen in a cell with margins; a small digit in a large cell when `small`."""
    ink = digits[0] if len(digits) == 1 else compose_number(digits, rng)[0]
    rows, columns = np.nonzero(ink)
    tight = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1].astype(np.float32) / 255
    height = rng.uniform(*(SMALL_DIGIT_PX if small else DIGIT_PX))
    scale = height / tight.shape[0]
    big = cv2.resize(tight, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    coverage = np.clip((big - 0.3) * 4.0, 0.0, 1.0)  # a pen's crisp edges, as synthetic.render_number_scan draws
    h, w = coverage.shape
    if small:
        cell_h = int(rng.uniform(*LARGE_CELL) * h)
        cell_w = max(w + 4, int(cell_h * rng.uniform(0.8, 1.5)))
        top, left = int(rng.integers(2, cell_h - h - 1)), int(rng.integers(2, cell_w - w - 1))
    else:
        top, left = (int(rng.uniform(0.15, 0.5) * h) for _ in range(2))
        left = int(rng.uniform(0.2, 0.8) * h)
        cell_h, cell_w = h + top + int(rng.uniform(0.15, 0.5) * h), w + left + int(rng.uniform(0.2, 0.8) * h)
    page = np.zeros((cell_h, cell_w), np.float32)
    page[top : top + h, left : left + w] = coverage
    return Cell(page, left, top, left + w, top + h)


def _scan(cell: Cell, rng: np.random.Generator) -> np.ndarray:
    """The cell on paper, as 8-bit grey: pen, paper, sometimes uneven light and noise."""
    effects = {effect for effect in ("lighting", "noise") if rng.random() < 0.3}
    page: np.ndarray = print_on_paper(cell.ink, rng, effects=effects)
    return page


def _line(cell: Cell, start: tuple[float, float], end: tuple[float, float], rng: np.random.Generator) -> None:
    """A printed line from `start` to `end` (x, y), 1-4 px thick and often lighter than the pen."""
    layer = np.zeros(cell.ink.shape, np.uint8)
    thickness = int(rng.integers(1, 5))
    shift = 4  # sub-pixel end points, so tilted lines are not staircases of whole pixels
    points = [tuple(round(v * 2**shift) for v in point) for point in (start, end)]
    cv2.line(layer, points[0], points[1], 255, thickness, cv2.LINE_AA, shift)
    np.maximum(cell.ink, layer.astype(np.float32) / 255 * rng.uniform(0.5, 1.0), out=cell.ink)


def _tilt(rng: np.random.Generator, *, tilted: bool) -> float:
    """The slope of a line scanned a little askew (none when not `tilted`)."""
    return float(np.tan(np.radians(rng.uniform(-TILT_DEG, TILT_DEG)))) if tilted else 0.0


def _vertical(cell: Cell, x: float, rng: np.random.Generator, *, tilted: bool = False) -> None:
    """A column line at `x` (at mid-height), top to bottom of the cell."""
    height = cell.ink.shape[0]
    slope = _tilt(rng, tilted=tilted)
    _line(cell, (x - slope * height / 2, 0), (x + slope * height / 2, height - 1), rng)


def _horizontal(cell: Cell, y: float, rng: np.random.Generator, *, tilted: bool = False) -> None:
    """A ruled line at `y` (at mid-width), edge to edge of the cell."""
    width = cell.ink.shape[1]
    slope = _tilt(rng, tilted=tilted)
    _line(cell, (0, y - slope * width / 2), (width - 1, y + slope * width / 2), rng)


def _beside(cell: Cell, rng: np.random.Generator, *, tilted: bool = False) -> Cell:
    """A column line left or right of the writing, touching it or a few px away."""
    gap = 0 if rng.random() < 0.5 else int(rng.integers(2, 7))
    room = gap + 6
    if rng.random() < 0.5:
        cell.pad(left=max(0, room - cell.left))
        _vertical(cell, cell.left - gap - 1, rng, tilted=tilted)
    else:
        cell.pad(right=max(0, room - (cell.ink.shape[1] - cell.right)))
        _vertical(cell, cell.right + gap, rng, tilted=tilted)
    return cell


def _through_vertical(cell: Cell, rng: np.random.Generator) -> Cell:
    _vertical(cell, cell.left + rng.uniform(0.3, 0.7) * (cell.right - cell.left), rng)
    return cell


def _through_horizontal(cell: Cell, rng: np.random.Generator) -> Cell:
    _horizontal(cell, cell.top + rng.uniform(0.35, 0.65) * cell.height, rng)
    return cell


def _under(cell: Cell, rng: np.random.Generator) -> Cell:
    cell.pad(bottom=max(0, 8 - (cell.ink.shape[0] - cell.bottom)))
    _horizontal(cell, cell.bottom + rng.uniform(0, 4), rng)
    return cell


def _grid(cell: Cell, rng: np.random.Generator, *, tilted: bool = False) -> Cell:
    """The four lines of a table's cell, at or just inside the crop's edges, running through to them."""
    height, width = cell.ink.shape
    inset = (float(rng.uniform(0, 3)) for _ in range(4))
    _horizontal(cell, next(inset), rng, tilted=tilted)
    _horizontal(cell, height - 1 - next(inset), rng, tilted=tilted)
    _vertical(cell, next(inset), rng, tilted=tilted)
    _vertical(cell, width - 1 - next(inset), rng, tilted=tilted)
    return cell


def _trailing_mark(cell: Cell, rng: np.random.Generator) -> Cell:
    """A full stop (or, half the time, a comma) after the last digit, on its baseline."""
    radius = max(1, round(rng.uniform(0.05, 0.09) * cell.height))
    gap = round(rng.uniform(0.05, 0.3) * cell.height)
    comma = rng.random() < 0.5
    tail = round(rng.uniform(0.15, 0.25) * cell.height) if comma else 0
    cell.pad(
        right=max(0, gap + 3 * radius + 4 - (cell.ink.shape[1] - cell.right)),
        bottom=max(0, tail + 3 - (cell.ink.shape[0] - cell.bottom)),
    )
    centre = (cell.right + gap + radius, cell.bottom - radius)
    layer = np.zeros(cell.ink.shape, np.uint8)
    cv2.circle(layer, centre, radius, 255, -1, cv2.LINE_AA)
    if comma:  # the dot and a tail curling down and left
        cv2.line(layer, centre, (centre[0] - radius, centre[1] + tail), 255, max(1, radius // 2 + 1), cv2.LINE_AA)
    np.maximum(cell.ink, layer.astype(np.float32) / 255, out=cell.ink)
    return cell


PRINTED = ("No.", "Total", "Qty", "Date", "kg", "Nr.", "Ref", "EUR")


def _printed_text(cell: Cell, rng: np.random.Generator) -> Cell:
    """A fragment of printed text along the top or bottom edge, often cut by it, apart from the writing."""
    text = str(rng.choice(PRINTED))
    text_h = rng.uniform(0.2, 0.4) * cell.height
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = text_h / cv2.getTextSize("0", font, 1.0, 1)[0][1]
    stroke = max(1, round(scale * 1.5))
    (text_w, _), _ = cv2.getTextSize(text, font, scale, stroke)
    cut = rng.uniform(0.0, 0.4) * text_h  # how much of the text the crop's edge cuts off
    room = int(text_h - cut + 3)
    at_top = rng.random() < 0.5
    if at_top:
        cell.pad(top=max(0, room - cell.top))
        baseline = text_h - cut
    else:
        cell.pad(bottom=max(0, room - (cell.ink.shape[0] - cell.bottom)))
        baseline = cell.ink.shape[0] - 1 + cut
    width = cell.ink.shape[1]
    left = rng.uniform(-0.3 * text_w, max(1.0, width - 0.7 * text_w))
    layer = np.zeros(cell.ink.shape, np.uint8)
    cv2.putText(layer, text, (int(left), int(baseline)), font, scale, 255, stroke, cv2.LINE_AA)
    np.maximum(cell.ink, layer.astype(np.float32) / 255 * rng.uniform(0.6, 1.0), out=cell.ink)
    return cell


def _dark_band(cell: Cell, rng: np.random.Generator) -> Cell:
    """A dark band along one edge where the scan was cut, as dark as the pen or darker, 3-12 % of the cell wide."""
    height, width = cell.ink.shape
    side = int(rng.integers(4))
    across = width if side < 2 else height
    band = max(2, round(rng.uniform(0.03, 0.12) * across))
    room = band + 3
    if side == 0:
        cell.pad(left=max(0, room - cell.left))
        cell.ink[:, :band] = 1.0
    elif side == 1:
        cell.pad(right=max(0, room - (width - cell.right)))
        cell.ink[:, -band:] = 1.0
    elif side == 2:
        cell.pad(top=max(0, room - cell.top))
        cell.ink[:band] = 1.0
    else:
        cell.pad(bottom=max(0, room - (height - cell.bottom)))
        cell.ink[-band:] = 1.0
    return cell


Draw = Callable[[Cell, np.random.Generator], Cell]
ARTEFACTS: dict[str, tuple[Draw, bool]] = {  # what is drawn, and whether the digit is small in a large cell
    "none": (lambda cell, rng: cell, False),
    "line beside": (_beside, False),
    "line beside, tilted": (lambda cell, rng: _beside(cell, rng, tilted=True), False),
    "line through, vertical": (_through_vertical, False),
    "line through, across": (_through_horizontal, False),
    "line under": (_under, False),
    "table grid": (_grid, False),
    "table grid, tilted": (lambda cell, rng: _grid(cell, rng, tilted=True), False),
    "full stop or comma": (_trailing_mark, False),
    "printed text": (_printed_text, False),
    "small digit, large cell": (lambda cell, rng: cell, True),
    "small digit, grid": (_grid, True),
    "dark band": (_dark_band, False),
    "line alone": (_beside, False),
    "grid alone": (_grid, False),
}


if __name__ == "__main__":
    sys.exit(main())
