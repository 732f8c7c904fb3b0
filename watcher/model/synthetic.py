"""Render MNIST digits, alone or as written numbers, as realistic scans (paper, pens, light, noise, file kinds)."""

from __future__ import annotations

import cv2
import numpy as np

VARIANTS = (
    "clean",
    "lighting",
    "noise",
    "blur",
    "thick",
    "thin",
    "rotated",
    "inverted",
    "16bit",
    "rgba",
    "colour",
    "palette",
    "specks+edge",
    "mixed",
)
SCAN_MIN_SIDE_PX = 40  # a rendered scan's smallest canvas side (render_scan's max_side sets the largest)

# Written numbers composed from MNIST digits:
NUMBER_LENGTHS = (2, 3, 4, 5, 6)  # a year, a ZIP code, a meter reading
GAP_PX = (-1, 10)  # space between digits at MNIST scale: slight overlaps and touching up to wide spacing
SIZE_JITTER = (0.85, 1.15)  # each digit's own size, relative to its neighbours
BASELINE_JITTER_PX = 2  # how far a digit wanders off the line, at MNIST scale
PIXELS_PER_MNIST_PX = (1.2, 4.0)  # the scan's resolution: digits of about 24 to 80 px
FORMATS = ("grey", "grey", "grey", "inverted", "colour", "rgba", "16bit")  # polarity both ways, every file kind
EFFECT_CHANCES = {"lighting": 0.3, "specks+edge": 0.2, "noise": 0.3}  # how often a scan shows each flaw
# A digit scaled as a picture to fill its box (a comb cell, a small form box): the pen widens with the digit.
CELL_ASPECT = (0.5, 1.4)  # the writing's width/height, whatever the digit's own
CELL_HEIGHT_PX = (28, 100)


def render_scan(
    digit: np.ndarray, rng: np.random.Generator, *, variant: str = "mixed", max_side: int = 600
) -> np.ndarray:
    """A decoded-scan-like array (as cv2.imdecode IMREAD_UNCHANGED gives) holding one MNIST digit."""
    if variant == "mixed":
        effects = {name for name in VARIANTS[1:-1] if rng.random() < 0.25}
        effects -= {"thin"} if "thick" in effects else set()
        effects -= {"rgba", "16bit", "palette"} - {rng.choice(["rgba", "16bit", "palette", "colour"])}
    else:
        effects = {variant}
    canvas_h = int(rng.integers(SCAN_MIN_SIDE_PX, max_side + 1))
    canvas_w = int(np.clip(canvas_h * rng.uniform(0.7, 1.4), SCAN_MIN_SIDE_PX, max_side))
    ink = _pen_strokes(digit, rng, canvas=(canvas_h, canvas_w), effects=effects)
    if "blur" in effects:
        sigma = rng.uniform(0.6, 1.5) * max(1.0, min(canvas_h, canvas_w) / 150)
        ink = cv2.GaussianBlur(ink, (0, 0), sigma)
    return print_on_paper(ink, rng, effects=effects)


def fill_cell(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A scan of one MNIST digit scaled as a picture to a box's shape, pen and all: a 1 written to fill a comb cell
    is a broad slanted bar, a 0 a wide ring with heavy sides."""
    ink = _tight(digit).astype(np.float32) / 255.0
    height = int(rng.integers(CELL_HEIGHT_PX[0], CELL_HEIGHT_PX[1] + 1))
    width = max(2, round(height * np.exp(rng.uniform(*np.log(CELL_ASPECT)))))
    scaled = cv2.resize(ink, (width, height), interpolation=cv2.INTER_LINEAR)
    margin = max(4, height // 4)
    canvas = np.pad(scaled, margin)
    effects = {name for name, chance in EFFECT_CHANCES.items() if rng.random() < chance}
    return print_on_paper(canvas, rng, effects=effects)


def print_on_paper(ink: np.ndarray, rng: np.random.Generator, *, effects: set[str]) -> np.ndarray:
    """A decoded-scan-like array of an ink coverage map (1 = full ink): paper, pen, light, specks, noise, file kind.

    `effects` is a set of VARIANTS names; "lighting", "specks+edge", "noise", "rgba", "colour",
    "palette", "inverted" and "16bit" act here.
    """
    paper = rng.uniform(0.75, 1.0)
    pen = rng.uniform(0.0, 0.3)
    page = paper + (pen - paper) * ink
    if "lighting" in effects:
        page = page * _lighting(rng, page.shape)
    if "specks+edge" in effects:
        page = _add_specks_and_edge(page, rng, pen=pen)
    noise = rng.uniform(0.04, 0.1) if "noise" in effects else rng.uniform(0.0, 0.02)
    page = page + rng.normal(0, noise, page.shape).astype(np.float32)
    page = np.clip(page, 0.0, 1.0)
    if "rgba" in effects:
        return _rgba(ink, rng)
    if "colour" in effects or "palette" in effects:
        page = _coloured(page, ink, rng, palette="palette" in effects)
    if "inverted" in effects:
        page = 1.0 - page  # a negative scan: light ink on a dark ground
    if "16bit" in effects:
        return np.round(page * 65535).astype(np.uint16)
    return np.round(page * 255).astype(np.uint8)


def _pen_strokes(
    digit: np.ndarray, rng: np.random.Generator, *, canvas: tuple[int, int], effects: set[str]
) -> np.ndarray:
    """Float32 ink coverage on the canvas: the digit enlarged with sharp pen edges, placed off-centre."""
    canvas_h, canvas_w = canvas
    size = int(min(canvas_h, canvas_w) * rng.uniform(0.35, 0.9) * 28 / 20)
    size = max(size, 28)
    big = cv2.resize(digit.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_CUBIC)
    # MNIST is blurred by its own down-sampling; a pen on paper has crisp edges.
    coverage = np.clip((big - 0.3) * 4.0, 0.0, 1.0)
    pen_px = max(1, round(size / 28))
    if "thick" in effects:
        coverage = cv2.dilate(coverage, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pen_px + 1,) * 2))
    elif "thin" in effects:
        # A fine pen: the stroke worn down to about half its width, still unbroken.
        coverage = cv2.erode(coverage, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (pen_px + 1,) * 2))
    angle = rng.uniform(-12, 12) if "rotated" in effects else rng.uniform(-3, 3)
    turn = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    coverage = cv2.warpAffine(coverage, turn, (size, size), flags=cv2.INTER_LINEAR)
    rows, cols = np.nonzero(coverage > 0.05)
    coverage = coverage[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = coverage.shape
    fit = min(1.0, 0.95 * canvas_h / height, 0.95 * canvas_w / width)
    if fit < 1.0:
        coverage = cv2.resize(
            coverage, (max(1, int(width * fit)), max(1, int(height * fit))), interpolation=cv2.INTER_AREA
        )
        height, width = coverage.shape
    top = int(rng.integers(0, canvas_h - height + 1))
    left = int(rng.integers(0, canvas_w - width + 1))
    ink = np.zeros((canvas_h, canvas_w), np.float32)
    ink[top : top + height, left : left + width] = coverage
    return ink


def _lighting(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A multiplicative light falloff: a linear gradient plus a soft vignette."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * xs / width + np.sin(direction) * ys / height) + 0.5
    strength = rng.uniform(0.2, 0.45)
    vignette = ((xs / width - 0.5) ** 2 + (ys / height - 0.5) ** 2) * rng.uniform(0.0, 0.4)
    light: np.ndarray = np.clip(1.0 - strength * ramp - vignette, 0.3, 1.0).astype(np.float32)
    return light


def _add_specks_and_edge(page: np.ndarray, rng: np.random.Generator, *, pen: float) -> np.ndarray:
    """Dust specks scattered over the page and a dark scanner edge along one side."""
    height, width = page.shape
    page = page.copy()
    for _ in range(int(rng.integers(2, 8))):
        y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
        radius = max(1, int(rng.integers(1, 3) * max(1, min(height, width) // 200)))
        cv2.circle(page, (x, y), radius, pen, -1)
    band = max(1, int(rng.uniform(0.01, 0.04) * min(height, width)))
    side = int(rng.integers(0, 4))
    if side == 0:
        page[:, :band] = pen
    elif side == 1:
        page[:, -band:] = pen
    elif side == 2:
        page[:band, :] = pen
    else:
        page[-band:, :] = pen
    return page


def _rgba(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Transparent background, ink in a random dark colour with the coverage as alpha (BGRA)."""
    colour = rng.uniform(0, 90, size=3)
    bgra = np.zeros((*ink.shape, 4), np.uint8)
    bgra[:, :, :3] = colour.astype(np.uint8)
    bgra[:, :, 3] = np.round(np.clip(ink, 0, 1) * 255).astype(np.uint8)
    return bgra


def _coloured(page: np.ndarray, ink: np.ndarray, rng: np.random.Generator, *, palette: bool) -> np.ndarray:
    """Float BGR: tinted paper and a coloured pen (blue, red, green...); palette images get few levels."""
    paper_tint = rng.uniform(0.85, 1.0, size=3).astype(np.float32)
    pen_colour = np.float32(rng.permutation([rng.uniform(0.4, 0.8), rng.uniform(0.0, 0.2), rng.uniform(0.0, 0.3)]))
    bgr = page[:, :, None] * paper_tint
    bgr = bgr * (1.0 - ink[:, :, None]) + pen_colour * ink[:, :, None] * page[:, :, None]
    if palette:
        levels = int(rng.integers(4, 9))
        bgr = np.round(bgr * (levels - 1)) / (levels - 1)
    clipped: np.ndarray = np.clip(bgr, 0, 1)
    return clipped


def compose_number(
    digits: np.ndarray, rng: np.random.Generator, *, gaps: tuple[int, int] = GAP_PX
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ink (bright on black) at MNIST scale: the digits in a row, jittered in size, spacing and baseline;
    and (digits, width) float32: the ink each digit puts in each column."""
    height = 40
    canvas = np.zeros((height, 36 * len(digits)), np.uint8)
    columns = np.zeros((len(digits), canvas.shape[1]), np.float32)
    x = 4
    for index, digit in enumerate(digits):
        tight = _tight(digit)
        scale = rng.uniform(*SIZE_JITTER)
        tight = cv2.resize(tight, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        h, w = tight.shape
        top = int(
            np.clip(
                (height - 20) // 2 + rng.integers(-BASELINE_JITTER_PX, BASELINE_JITTER_PX + 1) + 20 - h, 0, height - h
            )
        )
        # Overlapping strokes keep the darker ink, as two pen lines crossing do.
        np.maximum(canvas[top : top + h, x : x + w], tight, out=canvas[top : top + h, x : x + w])
        columns[index, x : x + w] = tight.sum(axis=0)
        x = max(0, x + w + int(rng.integers(gaps[0], gaps[1] + 1)))
    return canvas[:, : x + 4], columns[:, : x + 4]


def render_number_scan(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A decoded-scan-like array of the composed ink: pen edges, margins, paper, light, noise, file kind."""
    scale = rng.uniform(*PIXELS_PER_MNIST_PX)
    big = cv2.resize(ink.astype(np.float32) / 255, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    # MNIST is blurred by its own down-sampling; a pen on paper has crisp edges (as in `_pen_strokes`).
    coverage = np.clip((big - 0.3) * 4.0, 0.0, 1.0)
    # Margins scale with the writing's height: a scan of a form field, not a whole page.
    margin_y, margin_x = (int(rng.uniform(0.1, 1.0) * coverage.shape[0]) for _ in range(2))
    coverage = cv2.copyMakeBorder(coverage, margin_y, margin_y, margin_x, margin_x, cv2.BORDER_CONSTANT, value=0.0)
    effects = {effect for effect, chance in EFFECT_CHANCES.items() if rng.random() < chance}
    effects.add(str(rng.choice(FORMATS)))
    return print_on_paper(coverage, rng, effects=effects)


def _tight(digit: np.ndarray) -> np.ndarray:
    """The MNIST digit cropped to its ink."""
    rows, cols = np.nonzero(digit)
    tight: np.ndarray = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return tight
