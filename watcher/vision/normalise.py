"""Clean a decoded scan into an ink map: polarity fixed, the paper's light and noise divided out, printed lines,
scanner edges and specks gone (watcher.vision.paper); `normalise` fits it like MNIST too (watcher.vision.fit)."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from watcher.vision.fit import fit_digit
from watcher.vision.paper import (
    background,
    is_border_line,
    median,
    paper_and_noise,
    percentile,
    without_printed_lines,
)
from watcher.vision.pieces import as_mask, boxed_components, components, ink_box, piece_count

WORK_SIDE = 512  # huge canvases are shrunk to this longer side first; a digit stays dozens of px tall
POLARITY_SIDE = 32  # polarity is judged on a copy at most this many pixels long...
POLARITY_RINGS = 3  # ...from the paper tone of its outermost ring, or of three rings where a line runs along it:
EDGE_RING_STEP = 0.05  # the outermost ring's median that far from the third ring's (a register cell's: 0.13)
MIN_CONTRAST = 0.06  # ink must differ from the paper by 6 % of full scale, or the page is blank
MIN_INK_SIDE = 0.04  # ink whose longer side is under 4 % of the page (or 3 px) is a speck
MIN_PIECE = 0.04  # pieces under 4 % of the largest piece's area are specks
UNDERLINE_FLATNESS = 0.15  # a line under the digit is at most 15 % as tall as it is wide...
UNDERLINE_WIDTH = 0.8  # ...and at least 80 % as wide as the ink above it
INNER_SHARE = 0.25  # pieces clear of the border set the ink's level when they hold this share of the ink at least
JOIN_LEVEL = 0.2  # faint ink at least 20 % of the ink's level that touches a stroke is part of it (a skip)
RAMP_FLOOR = 0.05  # contrast under 5 % of the ink's is paper texture, not the rim of a stroke
SMALL_CROP_PX = 48  # a crop with a shorter side than this is read drawn on outwards to this size
SURFACE_RIDGE = 1e-6 * np.eye(6)  # keeps the lighting fit solvable when the paper pixels leave it under-determined


def normalise(image: np.ndarray) -> np.ndarray | None:
    """28x28 float32 in [0, 1], ink bright on black like MNIST; None when the page holds no ink."""
    ink = ink_map(image)
    if not ink.any():
        return None
    return fit_digit(ink)


def ink_map(image: np.ndarray) -> np.ndarray:
    """Float32 HxW in [0, 1], ink bright on 0: polarity fixed, lighting, noise, specks, edges and printed lines gone."""
    grey = _working_grey(image)
    # A digit cut tight leaves too little paper to measure the paper's noise and light on: its strokes' own edges
    # pass for noise (USPS digits 28 px square, reaching their edges, came out blank two times in three). Such a
    # crop is read with its outermost pixels drawn on outwards, where pairs of pixels lie in paper or ink alone;
    # the paper's light carries on as it was at the edge (one flat tone made a false edge of uneven light).
    margin = -(-max(0, SMALL_CROP_PX - min(grey.shape)) // 2)
    if not margin:
        return _ink(grey)
    padded = cv2.copyMakeBorder(grey, margin, margin, margin, margin, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(_ink(padded)[margin:-margin, margin:-margin])


def _ink(grey: np.ndarray) -> np.ndarray:
    """`ink_map` of a working grey image."""
    raised = grey if _ink_is_light(grey) else 1.0 - grey
    # Lighting varies slowly and strokes are narrow, so an opening wider than a stroke sees only paper.
    contrast = raised - background(raised)
    np.maximum(contrast, 0.0, out=contrast)
    # Strokes are wider than the grain of scanner noise: a light blur lowers the noise far more than the ink,
    # so ink is detected on the blurred map, while its grey levels come from the sharp one.
    smooth = cv2.GaussianBlur(contrast, (0, 0), max(0.7, min(contrast.shape) / 200))
    paper, noise = paper_and_noise(smooth)
    candidates = smooth > max(paper + 5.0 * noise, MIN_CONTRAST)
    candidate_levels = smooth[candidates]
    if not candidate_levels.size:
        return np.zeros(contrast.shape, np.float32)
    runs_off = _touches_border(candidates)
    ink_level = _writing_level(smooth, candidates, candidate_levels, runs_off=runs_off)
    strokes = smooth > max(paper + 5.0 * noise, MIN_CONTRAST, 0.4 * ink_level)
    cleared = without_printed_lines(strokes, faint=candidates)
    # A ballpoint's skips leave a stroke faint in places, and a pen running dry a whole digit: the strong ink alone
    # is the stroke in pieces, or a few specks where the faint digit peaks. On a crop with no line erased and
    # nothing running off the edge (where a line's or band's rim would rejoin it), the faint ink touching any
    # strong ink is taken with it, before specks are judged, so a faint digit is judged whole.
    if np.array_equal(cleared, strokes) and not runs_off:
        cleared = _joined(candidates & (smooth > JOIN_LEVEL * ink_level), strokes)
    kept = _clean_components(cleared)
    left, top, width, height = cv2.boundingRect(as_mask(kept))
    if not width:
        return np.zeros(contrast.shape, np.float32)
    # Keep the anti-aliased rim of the kept strokes as grey levels, the way MNIST digits look; only the
    # region around the kept strokes, as far as the rim reaches (a pixel), is computed.
    floor = max(paper + 3.0 * noise, RAMP_FLOOR * ink_level)
    region = (slice(max(top - 1, 0), top + height + 1), slice(max(left - 1, 0), left + width + 1))
    rim = cv2.dilate(as_mask(kept[region]), np.ones((3, 3), np.uint8))
    ink = np.zeros(contrast.shape, np.float32)
    ramp = np.clip((contrast[region] - floor) / max(ink_level - floor, 1e-6), 0.0, 1.0, out=ink[region])
    ramp *= rim
    return ink


def _writing_level(smooth: np.ndarray, candidates: np.ndarray, levels: np.ndarray, *, runs_off: bool) -> float:
    """The ink's level, which strokes are held to: the 90th percentile of the candidates' `levels`, or of the pieces
    clear of the border, where pieces larger than specks hold a quarter of the candidates or more there and their
    level is the lower. What runs off the crop apart from the writing is print or scanner (a rule, a box's wall, a
    comb's ticks), often far darker than a thin pen: held to its level, a hairline's writing beside a heavy rule
    vanished. Where a line runs through the writing, the writing runs off the crop with it, and what is clear of
    the border is specks: held to their level, the paper's noise joined the strokes. `runs_off`: whether any
    candidate lies on the crop's border."""
    level = percentile(levels, 90)
    if not runs_off:
        return level
    _, labels, stats = components(as_mask(candidates))
    inner = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) >= _speck_side(candidates.shape)
    for border in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        inner[border] = False
    inner[0] = False
    writing = inner[labels]
    if np.count_nonzero(writing) < INNER_SHARE * levels.size:
        return level
    return min(level, percentile(smooth[writing], 90))


def _joined(faint: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """`strong`, with every piece of `faint` that touches it (hysteresis: a faint piece alone stays out)."""
    count, labels = cv2.connectedComponents(as_mask(faint), connectivity=8)
    keep = np.zeros(count, bool)
    keep[labels[strong]] = True
    keep[0] = False
    joined: np.ndarray = keep[labels] | strong
    return joined


def _touches_border(mask: np.ndarray) -> bool:
    """Whether any of the mask lies on the image's outermost rows or columns."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def _working_grey(image: np.ndarray) -> np.ndarray:
    """Float32 grey in [0, 1] at most WORK_SIDE px long, from 8/16-bit grey, BGR or BGRA (onto white paper).

    Compositing and shrinking happen in the image's own integer type, so a huge canvas costs little.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16):  # anything else is brought to 16 bits, scaled to its maximum
        image = np.round(np.clip(image.astype(np.float32) / max(1.0, float(image.max())), 0, 1) * 65535)
        image = image.astype(np.uint16)
    full = 255.0 if image.dtype == np.uint8 else 65535.0
    # A huge canvas is first thinned by plain striding to twice the working size: free, and its pen strokes
    # are still several pixels wide at that scale.
    stride = max(1, max(image.shape[:2]) // (2 * WORK_SIDE))
    image = image[::stride, ::stride]
    if image.ndim == 3 and image.shape[2] == 4:
        colour = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGRA2BGR)
        alpha = cv2.cvtColor(np.ascontiguousarray(image[:, :, 3]), cv2.COLOR_GRAY2BGR)
        # Onto white: full - (full - colour) * alpha, so transparent pixels are paper whatever their colour.
        image = cv2.bitwise_not(cv2.multiply(cv2.bitwise_not(colour), alpha, scale=1.0 / full))
    longer = max(image.shape[:2])
    if longer > WORK_SIDE:
        scale = WORK_SIDE / longer
        image = cv2.resize(np.ascontiguousarray(image), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    grey = image.astype(np.float32)
    grey /= np.float32(full)
    return grey


def _ink_is_light(grey: np.ndarray) -> bool:
    """Ink is the minority that departs far from the paper tone; see on which side of the paper it lies."""
    # Judged on a small copy: averaging pixels damps noise, and ink still pulls one way.
    height, width = grey.shape
    shrink = min(1.0, POLARITY_SIDE / max(height, width))
    small = cv2.resize(
        grey, (max(1, round(width * shrink)), max(1, round(height * shrink))), interpolation=cv2.INTER_AREA
    )
    values = small.ravel()
    # The image's outermost pixels are paper even when a fat digit fills most of it: their median is the
    # first guess at the paper tone. When the outermost ring's tone is far from that of the rings inside it, a
    # table's grid may run along the crop's edges, all round: the three rings together outvote it. Uneven light
    # is then a smooth surface over the page, fitted to the pixels near that tone and taken away, so a shadowed
    # half of the page does not pass for ink.
    deep = min(POLARITY_RINGS, (min(small.shape) + 1) // 2)
    rings = [np.concatenate([small[k], small[-1 - k], small[:, k], small[:, -1 - k]]) for k in range(deep)]
    ring = rings[0]
    if abs(median(rings[0].copy()) - median(rings[-1].copy())) > EDGE_RING_STEP:
        ring = np.concatenate(rings)
    level = median(ring)
    spread = 1.4826 * median(np.abs(ring - level))
    residual = values - level
    paper = np.abs(residual) <= max(3.0 * spread, 0.05)
    surface, products = _surface_terms(*small.shape)
    for _ in range(2):
        if np.count_nonzero(paper) < 12:
            break
        # Least squares over the paper pixels: the normal equations, summed over them as 0/1 weights.
        weights = paper.astype(np.float64)
        normal = (weights @ products).reshape(6, 6) + SURFACE_RIDGE
        # OpenCV's solver, for a fraction of np.linalg.solve's overhead on a 6x6 system.
        _, coefficients = cv2.solve(normal, (surface @ (values * weights))[:, np.newaxis], flags=cv2.DECOMP_LU)
        residual = values - coefficients[:, 0] @ surface
        paper_residual = residual[paper]
        spread = 1.4826 * median(np.abs(paper_residual - median(paper_residual)))
        paper = np.abs(residual) <= max(3.0 * spread, 0.02)
    margin = max(2.0 * spread, 0.02)
    above = np.maximum(residual - margin, 0.0).sum()
    below = np.maximum(-residual - margin, 0.0).sum()
    return bool(above > below)


@functools.lru_cache(maxsize=128)  # polarity copies come in few shapes: the longer side is mostly POLARITY_SIDE
def _surface_terms(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The six terms of a quadratic surface (1, x, y, x², xy, y²) at every pixel (6 x pixels, x and y centred in
    [-0.5, 0.5]), and per pixel their 36 pairwise products, so the fit's normal equations over any set of pixels
    are one product."""
    ys, xs = np.mgrid[0:height, 0:width]
    ys, xs = (ys.ravel() + 0.5) / height - 0.5, (xs.ravel() + 0.5) / width - 0.5
    terms = np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys])
    products = (terms.T[:, :, np.newaxis] * terms.T[:, np.newaxis, :]).reshape(-1, 36)
    for shared in (terms, products):  # every later call of this shape reads them
        shared.setflags(write=False)
    return terms, products


def _clean_components(strokes: np.ndarray) -> np.ndarray:
    """Drop specks, scanner edges and box lines along the border, and a line drawn under the digit; keep the rest."""
    height, width = strokes.shape
    box = ink_box(as_mask(strokes))
    box_height, box_width = box[0].stop - box[0].start, box[1].stop - box[1].start
    if not box_width:  # erasing the border lines left nothing
        return np.zeros(strokes.shape, bool)
    min_side = _speck_side(strokes.shape)
    if piece_count(as_mask(strokes[box])) == 1:  # most pages: a lone piece is kept unless it is a speck
        return strokes if max(box_width, box_height) >= min_side else np.zeros(strokes.shape, bool)
    count, labels, stats = boxed_components(as_mask(strokes), box)  # page coordinates, for the border tests
    areas = stats[1:, cv2.CC_STAT_AREA]
    longer_sides = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
    pieces = 1 + np.flatnonzero((longer_sides >= min_side) & (areas >= MIN_PIECE * areas.max()))
    edges = [int(label) for label in pieces if is_border_line(*stats[label, :4].tolist(), height=height, width=width)]
    edges += _underlines(stats, pieces=[int(label) for label in pieces if label not in edges])
    keep = np.zeros(count, bool)
    keep[pieces] = True
    # A border-hugging component is only a scanner edge (and a line only an underline) when something else is left.
    if len(edges) < len(pieces):
        keep[edges] = False
    if keep[1:].all():
        return strokes
    kept = np.zeros(strokes.shape, bool)
    kept[box] = keep[labels]
    return kept


def _speck_side(shape: tuple[int, ...]) -> float:
    """The longer side, in px, under which a piece of ink in an image of `shape` is a speck (MIN_INK_SIDE)."""
    return max(3.0, MIN_INK_SIDE * max(shape))


def _underlines(stats: np.ndarray, *, pieces: list[int]) -> list[int]:
    """Pieces that are a line drawn under the rest: thin, flat, below every other piece, and about as wide as
    all of them together. A digit's own flat stroke (a 2's base) joins the digit; a stroke apart is short."""
    lines = []
    for label in pieces:
        _left, top, w, h = stats[label, :4].tolist()
        others = [other for other in pieces if other != label]
        if not others or h > UNDERLINE_FLATNESS * w:
            continue
        rest_left = min(stats[other, cv2.CC_STAT_LEFT] for other in others)
        rest_right = max(stats[other, cv2.CC_STAT_LEFT] + stats[other, cv2.CC_STAT_WIDTH] for other in others)
        rest_bottom = max(stats[other, cv2.CC_STAT_TOP] + stats[other, cv2.CC_STAT_HEIGHT] for other in others)
        if top >= rest_bottom and w >= UNDERLINE_WIDTH * (rest_right - rest_left):
            lines.append(label)
    return lines
