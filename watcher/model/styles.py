"""Handwriting styles MNIST lacks, redrawn from MNIST digits: stretched, marker, hairline, ballpoint, coarse, slanted.

A digit is redrawn along its own centre line (its skeleton), so the pen, the shape (stretch, slant) and the capture
(a coarse grid) vary apart. A `Writer` is one person's style: the digits of one number share it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

STYLES = ("stretched", "marker", "hairline", "ballpoint", "coarse", "slant", "mixed")
PENS = ("plain", "marker", "hairline", "ballpoint")

WORK_HEIGHT_PX = 64  # digits are redrawn this tall, then sized for the scan: enough for a 1-px line at 1.5 %
HEIGHT_PX = (32, 80)  # a digit's height on the scan
ASPECT = (0.5, 2.0)  # stretched: width/height this many times MNIST's own (a wide 0, a tall narrow 4)
PEN_WIDTH = {  # stroke width as a share of the digit's height, per pen
    "plain": (0.10, 0.15),  # MNIST's own strokes are about 11-15 % of the height
    "marker": (0.25, 0.35),  # a thick felt marker
    "hairline": (0.015, 0.03),  # a fine technical pen: one pixel or two on the scan
    "ballpoint": (0.07, 0.11),
}
LOOP_KEPT = 0.5  # a pen too wide for a loop still leaves this share of its inner radius open, as writers keep it
SMALLEST_LOOP = 0.04  # a hole in the centre line narrower than this share of the height is a knot, not a loop
SKIPPED_INK = (0.12, 0.3)  # ballpoint: this share of the stroke's length is skipped (faint or missing)...
SKIP_DEPTH = (0.0, 0.35)  # ...keeping this much of its ink
SLANT_DEG = (-25.0, 30.0)  # positive leans forward (the top to the right)
GRIDS = ((16, 16), (15, 16))  # coarse capture: (width, height) cells, as old scanners, faxes and low-dpi forms
GREY_LEVELS = (2, 4, 7)  # coarse capture keeps this few grey levels (2: black and white)
MIXED_CHANCE = 0.5  # mixed: each of the other styles' traits is present with this chance
# Written in a row: the digits of one writer share pen, slant and size, with their own small wobbles.
SIZE_WOBBLE = (0.92, 1.08)
SLANT_WOBBLE_DEG = 3.0
SPACING = (-0.05, 0.5)  # gap between digits as a share of the height: touching (a slight overlap) to wide
SPACING_WOBBLE = 0.08
DRIFT = (-0.08, 0.08)  # baseline rise per digit, as a share of the height
BASELINE_WOBBLE = 0.04


@dataclass(frozen=True)
class Writer:
    """One writer's style: how every digit they write is shaped, drawn and captured."""

    height_px: int
    aspect: float = 1.0  # width/height relative to the MNIST digit's own
    slant_deg: float | None = None  # None: MNIST's own slant, else deslanted and set to this
    pen: str = "plain"
    pen_width: float = 0.12  # share of the height
    grid: tuple[int, int] | None = None  # coarse capture: the (width, height) grid, or None
    grey_levels: int = 256


def draw_writer(style: str, rng: np.random.Generator) -> Writer:
    """A random writer of `style` (one of STYLES): that style's trait drawn from its range, the rest as MNIST's."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}: expected one of {', '.join(STYLES)}")
    traits = {name for name in STYLES[:-1] if rng.random() < MIXED_CHANCE} if style == "mixed" else {style}
    pen = next((name for name in ("marker", "hairline", "ballpoint") if name in traits), "plain")
    writer = Writer(height_px=int(rng.integers(HEIGHT_PX[0], HEIGHT_PX[1] + 1)), pen=pen)
    writer = replace(writer, pen_width=float(rng.uniform(*PEN_WIDTH[pen])))
    if "stretched" in traits:
        writer = replace(writer, aspect=float(np.exp(rng.uniform(np.log(ASPECT[0]), np.log(ASPECT[1])))))
    if "slant" in traits:
        writer = replace(writer, slant_deg=float(rng.uniform(*SLANT_DEG)))
    if "coarse" in traits:
        grid = GRIDS[int(rng.integers(len(GRIDS)))]
        writer = replace(writer, grid=grid, grey_levels=int(rng.choice(GREY_LEVELS)))
    return writer


def draw_digit(digit: np.ndarray, writer: Writer, rng: np.random.Generator) -> np.ndarray:
    """Float32 ink coverage (1 = full ink, 0 = paper), cropped to the ink: an MNIST digit as `writer` writes it."""
    shape = _shaped(digit, writer)
    centre_line = skeleton(shape > 0.5)
    # The pen adds its own width to the digit's height: a share s of the drawn height is s / (1 - s) of the line's.
    width_px = max(1, round(writer.pen_width / (1 - writer.pen_width) * WORK_HEIGHT_PX))
    # A chisel-tipped marker leaves blocky strokes, a round one round strokes.
    kernel_shape = cv2.MORPH_RECT if writer.pen == "marker" and rng.random() < 0.5 else cv2.MORPH_ELLIPSE
    pad = width_px + 1
    centre_line = np.pad(centre_line, pad).astype(np.uint8)
    if width_px > 1:
        ink = cv2.dilate(centre_line, cv2.getStructuringElement(kernel_shape, (width_px, width_px))).astype(np.float32)
    else:
        ink = centre_line.astype(np.float32)
    _open_loops(ink, centre_line, width_px)
    if writer.pen == "ballpoint":
        ink *= _skips(ink, rng)
    ink = _crop(ink)
    if writer.grid is not None:
        return _crop(_coarse_capture(ink, writer))
    height, width = ink.shape
    scale = writer.height_px / height
    # A line finer than a pixel on the scan stays as faint grey, as a scanner averages it.
    sized = cv2.resize(ink, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    return _crop(np.clip(sized, 0.0, 1.0))


def compose_styled_number(
    digits: np.ndarray, writer: Writer, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Float32 ink coverage of the digits written in a row by one writer, with spacing, drift and margins; and
    (digits, width) float32: the ink each digit puts in each column."""
    drawn = [
        draw_digit(
            digit,
            replace(
                writer,
                height_px=max(8, round(writer.height_px * rng.uniform(*SIZE_WOBBLE))),
                slant_deg=None
                if writer.slant_deg is None
                else writer.slant_deg + rng.uniform(-SLANT_WOBBLE_DEG, SLANT_WOBBLE_DEG),
            ),
            rng,
        )
        for digit in digits
    ]
    height = writer.height_px
    spacing = rng.uniform(*SPACING)
    drift = rng.uniform(*DRIFT)
    gaps = [round((spacing + rng.uniform(-SPACING_WOBBLE, SPACING_WOBBLE)) * height) for _ in drawn]
    tallest = max(ink.shape[0] for ink in drawn)
    # Room for the baseline to drift either way over the whole row.
    reach = round(abs(drift) * height * len(drawn) + BASELINE_WOBBLE * height) + 1
    canvas = np.zeros((tallest + 2 * reach, sum(ink.shape[1] for ink in drawn) + height * len(drawn)), np.float32)
    columns = np.zeros((len(drawn), canvas.shape[1]), np.float32)
    x = 0
    for index, ink in enumerate(drawn):
        baseline = reach + tallest - round(drift * height * index + rng.uniform(-1, 1) * BASELINE_WOBBLE * height)
        top = int(np.clip(baseline - ink.shape[0], 0, canvas.shape[0] - ink.shape[0]))
        spot = canvas[top : top + ink.shape[0], x : x + ink.shape[1]]
        # Overlapping strokes keep the darker ink, as two pen lines crossing do.
        np.maximum(spot, ink, out=spot)
        columns[index, x : x + ink.shape[1]] = ink.sum(axis=0)
        x = max(0, x + ink.shape[1] + gaps[index])
    rows, used = _ink_box(canvas)
    margin_y, margin_x = _margins(canvas[rows, used], rng)
    ink = np.pad(canvas[rows, used], ((margin_y, margin_y), (margin_x, margin_x)))
    return ink, np.pad(columns[:, used], ((0, 0), (margin_x, margin_x)))


def styled_digits(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator, *, per_style: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`per_style` of the digits `x` in each of STYLES, each by its own writer, on paper and normalised as the
    daemon reads a single digit: (n, 28, 28) float32 images, their labels, and each one's index in STYLES."""
    from watcher.model.synthetic import print_on_paper
    from watcher.vision.normalise import normalise

    images, labels, styles = [], [], []
    for index, style in enumerate(STYLES):
        for digit in rng.choice(len(x), size=per_style, replace=len(x) < per_style):
            ink = with_margins(draw_digit(x[digit], draw_writer(style, rng), rng), rng)
            image = normalise(print_on_paper(ink, rng, effects=set()))
            if image is not None:
                images.append(image)
                labels.append(int(y[digit]))
                styles.append(index)
    return np.asarray(images, np.float32), np.asarray(labels, np.int64), np.asarray(styles, np.int64)


def with_margins(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ink with paper around it, as a cut-out field: margins of 10-100 % of its height."""
    margin_y, margin_x = _margins(ink, rng)
    padded: np.ndarray = np.pad(ink, ((margin_y, margin_y), (margin_x, margin_x)))
    return padded


def _margins(ink: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """Rows above and below, and columns either side, of paper around a cut-out field of this ink."""
    margin_y, margin_x = (max(2, int(rng.uniform(0.1, 1.0) * ink.shape[0])) for _ in range(2))
    return margin_y, margin_x


def skeleton(mask: np.ndarray) -> np.ndarray:
    """The one-pixel centre line of a boolean mask (Zhang-Suen thinning), as a boolean array of the same shape."""
    image = np.pad(mask.astype(bool), 1)
    while True:
        changed = False
        for step in (0, 1):
            # The 8 neighbours, clockwise from the one above (p2 .. p9 in Zhang and Suen's paper).
            p = [
                image[:-2, 1:-1],
                image[:-2, 2:],
                image[1:-1, 2:],
                image[2:, 2:],
                image[2:, 1:-1],
                image[2:, :-2],
                image[1:-1, :-2],
                image[:-2, :-2],
            ]
            neighbours = np.sum(p, axis=0)
            transitions = np.sum([~p[i] & p[(i + 1) % 8] for i in range(8)], axis=0)
            if step == 0:
                open_side = ~(p[0] & p[2] & p[4]) & ~(p[2] & p[4] & p[6])
            else:
                open_side = ~(p[0] & p[2] & p[6]) & ~(p[0] & p[4] & p[6])
            removed = image[1:-1, 1:-1] & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & open_side
            if removed.any():
                image[1:-1, 1:-1] &= ~removed
                changed = True
        if not changed:
            thinned: np.ndarray = image[1:-1, 1:-1]
            return thinned


def _shaped(digit: np.ndarray, writer: Writer) -> np.ndarray:
    """Float32 coverage of the digit at WORK_HEIGHT_PX, stretched and slanted as the writer writes."""
    tight = _crop(digit.astype(np.float32) / 255.0)
    height, width = tight.shape
    scale = WORK_HEIGHT_PX / height
    big = cv2.resize(
        tight, (max(1, round(width * scale * writer.aspect)), WORK_HEIGHT_PX), interpolation=cv2.INTER_CUBIC
    )
    # MNIST is blurred by its own down-sampling; its strokes' cores are where the pen went.
    coverage: np.ndarray = np.clip((big - 0.3) * 4.0, 0.0, 1.0)
    if writer.slant_deg is None:
        return coverage
    shear = -np.tan(np.deg2rad(writer.slant_deg)) - _own_shear(coverage)
    pad = round(abs(shear) * WORK_HEIGHT_PX / 2) + 2
    coverage = np.pad(coverage, ((0, 0), (pad, pad)))
    centre_y = WORK_HEIGHT_PX / 2
    # x' = x + shear * (y - centre): positive slant leans the top to the right (y grows downwards).
    matrix = np.array([[1, shear, -shear * centre_y], [0, 1, 0]], np.float32)
    sheared: np.ndarray = cv2.warpAffine(
        coverage, matrix, (coverage.shape[1], coverage.shape[0]), flags=cv2.INTER_LINEAR
    )
    return sheared


def _open_loops(ink: np.ndarray, centre_line: np.ndarray, width_px: int) -> None:
    """Clear the middle of each loop the pen would fill, in place: people keep a marker's 0, 6, 8 and 9 open."""
    paper = (centre_line == 0).astype(np.uint8)
    count, labels = cv2.connectedComponents(paper, connectivity=4)
    outside = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    distance = cv2.distanceTransform(paper, cv2.DIST_L2, 3)
    for label in np.setdiff1d(np.arange(1, count), outside):
        hole = labels == label
        radius = float(distance[hole].max())
        reach = (1 - LOOP_KEPT) * radius  # how far into the loop the pen's ink may come
        if radius >= SMALLEST_LOOP * WORK_HEIGHT_PX and reach < width_px / 2:
            ink[hole & (distance > reach)] = 0.0


def _own_shear(coverage: np.ndarray) -> float:
    """The horizontal shear of the digit's own slant (from its second moments), which deslanting undoes."""
    moments = cv2.moments(coverage)
    if moments["mu02"] < 1e-6:
        return 0.0
    return float(moments["mu11"] / moments["mu02"])


def _skips(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A multiplier for a ballpoint's ink: uneven pressure, and patches of the stroke where the ball skipped."""
    field = cv2.GaussianBlur(rng.standard_normal(ink.shape).astype(np.float32), (0, 0), 0.04 * WORK_HEIGHT_PX)
    cut = np.quantile(field[ink > 0.5], 1 - rng.uniform(*SKIPPED_INK))
    pressure = rng.uniform(0.75, 1.0, ink.shape).astype(np.float32)
    skips: np.ndarray = np.where(field > cut, np.float32(rng.uniform(*SKIP_DEPTH)), pressure)
    return skips


def _coarse_capture(ink: np.ndarray, writer: Writer) -> np.ndarray:
    """The ink captured on a coarse grid with few grey levels, then shown at scan size with blocky edges."""
    assert writer.grid is not None
    grid_w, grid_h = writer.grid
    height, width = ink.shape
    # The digit fills the grid's height (or width, for a wide one), keeping its shape, as such collections do.
    fit = min(grid_h / height, grid_w / width)
    cells = cv2.resize(ink, (max(1, round(width * fit)), max(1, round(height * fit))), interpolation=cv2.INTER_AREA)
    cells = np.clip(cells / max(float(cells.max()), 1e-6), 0.0, 1.0)
    levels = writer.grey_levels - 1
    cells = (cells >= 0.5).astype(np.float32) if levels == 1 else np.round(cells * levels) / levels
    block = max(2, round(writer.height_px / grid_h))
    blocky: np.ndarray = cv2.resize(cells.astype(np.float32), None, fx=block, fy=block, interpolation=cv2.INTER_NEAREST)
    return blocky


def _crop(ink: np.ndarray) -> np.ndarray:
    """The ink's bounding box (the whole array when it holds no ink)."""
    rows, cols = _ink_box(ink)
    cropped: np.ndarray = ink[rows, cols]
    return cropped


def _ink_box(ink: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns of the ink's bounding box (all of them when it holds no ink)."""
    rows, cols = np.nonzero(ink > 0.02)
    if not len(rows):
        return slice(None), slice(None)
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)
