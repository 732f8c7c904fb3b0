"""One pipeline from a decoded scan to the model's 28x28 input: clean the ink, then fit it like MNIST."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from watcher.vision.lines import erase_lines
from watcher.vocabulary import CANVAS_PX, DIGIT_BOX_PX

WORK_SIDE = 512  # huge canvases are shrunk to this longer side first; a digit stays dozens of px tall
POLARITY_SIDE = 32  # polarity is judged on a copy at most this many pixels long...
POLARITY_RINGS = 3  # ...from the paper tone of its outermost ring, or of three rings where a line runs along it:
EDGE_RING_STEP = 0.15  # the outermost ring's median that far from the third ring's
BACKGROUND_WINDOW = 0.45  # the paper's brightness is judged over windows this share of the shorter side
NOISE_GAP = 3  # pixels this far apart carry nearly independent noise, even after the light blur
STATS_SAMPLES = 4096  # pixels sampled for background statistics, so cost does not grow with size
MIN_CONTRAST = 0.06  # ink must differ from the paper by 6 % of full scale, or the page is blank
MIN_INK_SIDE = 0.04  # ink whose longer side is under 4 % of the page (or 3 px) is a speck
MIN_PIECE = 0.04  # pieces under 4 % of the largest piece's area are specks
NEAR_PIECE = 0.35  # a piece further from the digit than 35 % of its size is a stray mark
BORDER_BAND = 0.08  # scanner edges and box lines lie within 8 % of the image border
EDGE_LINE_FILL = 0.6  # an edge row/column this full of ink is a scanner edge, not a stroke
FRAME_LINE = 0.6  # a box's side is a straight run of ink over 60 % of the page's width or height...
FRAME_SPAN = 0.5  # ...its opposite sides lie at least half the page apart...
FRAME_CORNER = 0.85  # ...each side runs at least 85 % of the way between the two sides it meets...
FRAME_THICKNESS = 0.06  # ...and is at most 6 % of the page thick (a pen stroke around a drawn 0 is thicker)
RULED_LENGTH = 0.9  # a ruled paper line runs across at least 90 % of the page
UNDERLINE_FLATNESS = 0.15  # a line under the digit is at most 15 % as tall as it is wide...
UNDERLINE_WIDTH = 0.8  # ...and at least 80 % as wide as the ink above it
SPECK_EXTENT = 0.25  # a piece shorter than 25 % of the digit's size is a speck, not a broken stroke
JOIN_LEVEL = 0.2  # faint ink at least 20 % of the ink's level that touches a stroke is part of it (a skip)
RAMP_FLOOR = 0.05  # contrast under 5 % of the ink's is paper texture, not the rim of a stroke
TARGET_STROKE = 0.11  # MNIST strokes are about 11 % of the digit's longer side
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
    raised = grey if _ink_is_light(grey) else 1.0 - grey
    # Lighting varies slowly and strokes are narrow, so an opening wider than a stroke sees only paper.
    contrast = raised - _background(raised)
    np.maximum(contrast, 0.0, out=contrast)
    # Strokes are wider than the grain of scanner noise: a light blur lowers the noise far more than the ink,
    # so ink is detected on the blurred map, while its grey levels come from the sharp one.
    smooth = cv2.GaussianBlur(contrast, (0, 0), max(0.7, min(contrast.shape) / 200))
    paper, noise = _paper_and_noise(smooth)
    candidates = smooth > max(paper + 5.0 * noise, MIN_CONTRAST)
    candidate_levels = smooth[candidates]
    if not candidate_levels.size:
        return np.zeros(contrast.shape, np.float32)
    ink_level = _percentile(candidate_levels, 90)
    strokes = smooth > max(paper + 5.0 * noise, MIN_CONTRAST, 0.4 * ink_level)
    # A box's and ruled paper's lines first, as before; then any other straight line far longer than the writing
    # (a table's grid or column line, tilted a little), traced on the faint ink where a light line stays whole.
    lined = erase_lines(_erase_ruled_lines(_erase_frame(strokes)), faint=candidates)
    kept = _clean_components(_erase_border_lines(lined, faint_ink=candidates))
    # A ballpoint's skips leave a stroke faint in places, and the strong ink alone is the stroke in pieces: on a
    # clean crop (nothing erased, nothing running off the edge, where a line's or band's rim would rejoin it), the
    # faint ink touching the strokes is taken with them.
    if np.array_equal(kept, strokes) and not _touches_border(candidates):
        kept = _joined(candidates & (smooth > JOIN_LEVEL * ink_level), strokes)
    left, top, width, height = cv2.boundingRect(_mask(kept))
    if not width:
        return np.zeros(contrast.shape, np.float32)
    # Keep the anti-aliased rim of the kept strokes as grey levels, the way MNIST digits look; only the
    # region around the kept strokes, as far as the rim reaches (a pixel), is computed.
    floor = max(paper + 3.0 * noise, RAMP_FLOOR * ink_level)
    region = (slice(max(top - 1, 0), top + height + 1), slice(max(left - 1, 0), left + width + 1))
    rim = cv2.dilate(_mask(kept[region]), np.ones((3, 3), np.uint8))
    ink = np.zeros(contrast.shape, np.float32)
    ramp = np.clip((contrast[region] - floor) / max(ink_level - floor, 1e-6), 0.0, 1.0, out=ink[region])
    ramp *= rim
    return ink


def _joined(faint: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """`strong`, with every piece of `faint` that touches it (hysteresis: a faint piece alone stays out)."""
    count, labels = cv2.connectedComponents(_mask(faint), connectivity=8)
    keep = np.zeros(count, bool)
    keep[labels[strong]] = True
    keep[0] = False
    joined: np.ndarray = keep[labels] | strong
    return joined


def _touches_border(mask: np.ndarray) -> bool:
    """Whether any of the mask lies on the image's outermost rows or columns."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def fit_digit(ink: np.ndarray) -> np.ndarray:
    """The MNIST recipe: crop to the ink, longer side to 20 px, centre of mass at the centre of 28x28."""
    cropped = _crop_to_ink(ink)
    if cropped.size == 0:  # no ink: labelling an empty image would crash OpenCV
        return np.zeros((CANVAS_PX, CANVAS_PX), np.float32)
    pieces = _digit_pieces(cropped)
    digit = cropped if pieces is cropped else _crop_to_ink(pieces)  # only dropped pieces can shrink the crop
    # Stroke width is judged at a fixed working size (4x the box), so its cost does not grow with the scan.
    digit = _thicken_thin_strokes(_resize_longer_side(digit, 4 * DIGIT_BOX_PX))
    small = _resize_longer_side(digit, DIGIT_BOX_PX)
    moments = cv2.moments(small)
    if moments["m00"] <= 0:
        return np.zeros((CANVAS_PX, CANVAS_PX), np.float32)
    centre_x = moments["m10"] / moments["m00"]
    centre_y = moments["m01"] / moments["m00"]
    # Shift so the centre of mass lands on (14, 14), with sub-pixel precision like the MNIST recipe.
    shift = np.array([[1, 0, CANVAS_PX / 2 - centre_x - 0.5], [0, 1, CANVAS_PX / 2 - centre_y - 0.5]], np.float32)
    canvas = cv2.warpAffine(small, shift, (CANVAS_PX, CANVAS_PX), flags=cv2.INTER_LINEAR, borderValue=0.0)
    centred: np.ndarray = np.clip(canvas, 0.0, 1.0, out=canvas).astype(np.float32, copy=False)
    return centred


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest rectangle holding all the ink (empty when there is none)."""
    left, top, width, height = cv2.boundingRect(_mask(ink > 0))
    return ink[top : top + height, left : left + width]


def _resize_longer_side(digit: np.ndarray, side: int) -> np.ndarray:
    """Resize keeping the aspect ratio, anti-aliased (INTER_AREA) when shrinking; peak scaled to 1."""
    height, width = digit.shape
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized: np.ndarray = cv2.resize(digit, size, interpolation=interpolation)
    # Shrinking a fine pen line averages it towards grey; MNIST strokes peak at full brightness. Ink is never
    # negative and neither interpolation overshoots, so this lands in [0, 1].
    resized /= max(float(resized.max()), 1e-6)
    return resized


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


def _mask(selected: np.ndarray) -> np.ndarray:
    """A boolean array as the 0/1 uint8 image OpenCV's mask functions take, without a copy."""
    return selected.view(np.uint8)


def _median(scratch: np.ndarray) -> float:
    """np.median of an array it may reorder, without the overhead that dominates np.median on the few thousand
    values used here: one partition in place, and for an even count the other middle value is the lower half's max."""
    values = scratch.ravel()
    middle = values.size // 2
    values.partition(middle)
    if values.size % 2:
        return float(values[middle])
    return float((values[:middle].max() + values[middle]) / 2)


def _percentile(scratch: np.ndarray, percent: float) -> float:
    """np.percentile (linear interpolation, the same rounding) of an array it may reorder, from one partition in
    place instead of np.percentile's many steps."""
    values = scratch.ravel()
    position = (values.size - 1) * (percent / 100)
    below = int(position)
    weight = position - below
    values.partition(below)
    low = values[below]
    high = values[below + 1 :].min() if below + 1 < values.size else low
    step = high - low
    # numpy interpolates from the nearer end, which keeps the result inside [low, high].
    return float(high - step * (1 - weight) if weight >= 0.5 else low + step * weight)


def _sample(pixels: np.ndarray) -> np.ndarray:
    """An evenly strided sample of at most STATS_SAMPLES pixels."""
    flat = pixels.reshape(-1)
    step = max(1, flat.size // STATS_SAMPLES)
    return flat[::step]


def _paper_and_noise(smooth: np.ndarray) -> tuple[float, float]:
    """The paper's level and its noise, measured so that even a fat digit covering most of the page does not
    count: the level below Otsu's ink/paper split, the noise from differences between nearby pixels."""
    sample = _sample(smooth)
    # The blurred contrast is never negative, so its share of the peak lies in [0, 1]: 0-255, rounded half to even.
    scaled = cv2.convertScaleAbs(sample / max(float(sample.max()), 1e-6), alpha=255).reshape(-1)
    split, _ = cv2.threshold(scaled.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    paper = _median(sample[scaled <= split])
    rows = smooth[:: max(1, smooth.shape[0] // 64)]  # 64 rows hold plenty of pixel pairs
    gap = min(NOISE_GAP, smooth.shape[1] - 1)
    differences = cv2.absdiff(rows[:, gap:], rows[:, :-gap]) if gap > 0 else np.zeros(1, np.float32)
    # Half the pixel pairs lie inside paper or inside a stroke, where the difference is noise alone.
    return paper, 1.4826 * _median(differences) / np.sqrt(2.0)


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
    if abs(_median(rings[0].copy()) - _median(rings[-1].copy())) > EDGE_RING_STEP:
        ring = np.concatenate(rings)
    level = _median(ring)
    spread = 1.4826 * _median(np.abs(ring - level))
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
        spread = 1.4826 * _median(np.abs(paper_residual - _median(paper_residual)))
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


def _background(raised: np.ndarray) -> np.ndarray:
    """The paper's brightness everywhere: a grey opening wider than any stroke, done on a small copy."""
    height, width = raised.shape
    shrink = min(1.0, 32.0 / min(height, width))
    small = cv2.resize(
        raised, (max(1, round(width * shrink)), max(1, round(height * shrink))), interpolation=cv2.INTER_AREA
    )
    # A window this share of the shorter side is wider than even a marker's stroke across a tightly
    # cropped digit, yet still follows a lighting gradient.
    side = max(3, int(BACKGROUND_WINDOW * min(small.shape)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))
    # Beyond the edges the light is extrapolated (odd reflection), not held flat, or an opening would cut the
    # bright end of a gradient short and leave a false stroke along that edge; dips stop at the darkest paper.
    padded = np.maximum(_pad_odd_reflection(small, side), small.min())
    paper = cv2.morphologyEx(padded, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE)
    paper = cv2.blur(paper, (side, side), borderType=cv2.BORDER_REPLICATE)[side:-side, side:-side]
    return cv2.resize(paper, (width, height), interpolation=cv2.INTER_LINEAR)


def _pad_odd_reflection(image: np.ndarray, side: int) -> np.ndarray:
    """np.pad(image, side, mode="reflect", reflect_type="odd"): rows first, then columns, each mirrored value
    turned about its edge (2 * edge - mirror); OpenCV's borders make it a few calls instead of numpy's dozens."""
    if side >= min(image.shape):  # numpy then reflects repeatedly, out of the mirrored pixels themselves
        return np.pad(image, side, mode="reflect", reflect_type="odd")
    rows = 2 * cv2.copyMakeBorder(image, side, side, 0, 0, cv2.BORDER_REPLICATE) - cv2.copyMakeBorder(
        image, side, side, 0, 0, cv2.BORDER_REFLECT_101
    )
    return 2 * cv2.copyMakeBorder(rows, 0, 0, side, side, cv2.BORDER_REPLICATE) - cv2.copyMakeBorder(
        rows, 0, 0, side, side, cv2.BORDER_REFLECT_101
    )


def components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Label count, labels and stats of the 8-connected pieces of a 0/1 uint8 mask, as
    cv2.connectedComponentsWithStats gives them: BBDT labels exactly like its default algorithm, but gathers the
    statistics several times faster (OpenCV 5)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_BBDT)
    return count, labels, stats


def ink_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns of a 0/1 uint8 mask's bounding box (empty slices when it holds no ink)."""
    left, top, width, height = cv2.boundingRect(mask)
    return slice(top, top + height), slice(left, left + width)


def boxed_components(mask: np.ndarray, box: tuple[slice, slice]) -> tuple[int, np.ndarray, np.ndarray]:
    """`components` of the mask's `box` alone, with the stats in the whole mask's coordinates.

    Labelling costs by the pixel, and the ink's box is a small part of most pages.
    """
    count, labels, stats = components(mask[box])
    stats[:, cv2.CC_STAT_LEFT] += box[1].start
    stats[:, cv2.CC_STAT_TOP] += box[0].start
    return count, labels, stats


def _piece_count(mask: np.ndarray) -> int:
    """How many 8-connected pieces a 0/1 uint8 mask holds: labelling alone costs a fraction of `components`."""
    return cv2.connectedComponentsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_BBDT)[0] - 1


def _clean_components(strokes: np.ndarray) -> np.ndarray:
    """Drop specks, scanner edges and box lines along the border, and a line drawn under the digit; keep the rest."""
    height, width = strokes.shape
    box = ink_box(_mask(strokes))
    box_height, box_width = box[0].stop - box[0].start, box[1].stop - box[1].start
    if not box_width:  # erasing the border lines left nothing
        return np.zeros(strokes.shape, bool)
    min_side = max(3.0, MIN_INK_SIDE * max(height, width))
    if _piece_count(_mask(strokes[box])) == 1:  # most pages: a lone piece is kept unless it is a speck
        return strokes if max(box_width, box_height) >= min_side else np.zeros(strokes.shape, bool)
    count, labels, stats = boxed_components(_mask(strokes), box)  # page coordinates, for the border tests
    areas = stats[1:, cv2.CC_STAT_AREA]
    longer_sides = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
    pieces = 1 + np.flatnonzero((longer_sides >= min_side) & (areas >= MIN_PIECE * areas.max()))
    edges = [int(label) for label in pieces if _is_border_line(*stats[label, :4].tolist(), height=height, width=width)]
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


def _erase_border_lines(strokes: np.ndarray, *, faint_ink: np.ndarray) -> np.ndarray:
    """Clear rows and columns at the image edge that are ink nearly end to end: a scanner's shadow or a ruled edge.

    Done per pixel row, not per component, because a digit touching such a line would join it. Fullness is
    judged on the faint ink too, since uneven light dims one end of a long line.
    """
    rows, columns = _edge_lines(faint_ink), _edge_lines(faint_ink.T)
    if not rows and not columns:
        return strokes
    strokes = strokes.copy()
    strokes[rows] = False
    strokes[:, columns] = False
    return strokes


def _erase_frame(strokes: np.ndarray) -> np.ndarray:
    """Clear a box drawn around the digit (a form's field): straight lines near all four sides enclosing ink.

    A digit never has both: two long straight rows far apart and two long straight columns far apart. The lines
    are found per pixel row and column (an opening with a long thin kernel), so a digit touching the box keeps
    its strokes.
    """
    height, width = strokes.shape
    mask = _mask(strokes)
    # Cheap first: a box needs rows and columns holding that much ink at all, far apart; most pages have none.
    full_rows, full_columns = _full_lines(mask, share=FRAME_LINE, axis=1), _full_lines(mask, share=FRAME_LINE, axis=0)
    if not len(full_rows) or not len(full_columns):
        return strokes
    if np.ptp(full_rows) < FRAME_SPAN * height or np.ptp(full_columns) < FRAME_SPAN * width:
        return strokes
    across, down = _straight_runs(mask, share=FRAME_LINE, axis=1), _straight_runs(mask, share=FRAME_LINE, axis=0)
    rows, columns = np.flatnonzero(across.any(axis=1)), np.flatnonzero(down.any(axis=0))
    if not len(rows) or not len(columns) or np.ptp(rows) < FRAME_SPAN * height or np.ptp(columns) < FRAME_SPAN * width:
        return strokes
    # A box's sides are thin, and they meet at the corners: the outermost lines run from one opposite side to
    # the other. A thick 0's flat top and bottom are neither.
    row_lines, column_lines = _consecutive(rows), _consecutive(columns)
    (top, bottom), (left, right) = (row_lines[0], row_lines[-1]), (column_lines[0], column_lines[-1])
    if max(len(top), len(bottom)) > FRAME_THICKNESS * height or max(len(left), len(right)) > FRAME_THICKNESS * width:
        return strokes
    sides = (across[rows[0]], across[rows[-1]], down[:, columns[0]], down[:, columns[-1]])
    spans = (columns[-1] - columns[0], columns[-1] - columns[0], rows[-1] - rows[0], rows[-1] - rows[0])
    if any(np.ptp(np.flatnonzero(side)) < FRAME_CORNER * span for side, span in zip(sides, spans, strict=True)):
        return strokes
    # Only the four sides go: a long straight bar of the digit inside the box stays.
    lines = np.zeros(strokes.shape, bool)
    for band in (top, bottom):
        lines[band] = across[band]
    for band in (left, right):
        lines[:, band] |= down[:, band]
    enclosed = (slice(top[-1] + 1, bottom[0]), slice(left[-1] + 1, right[0]))
    if not strokes[enclosed].any():
        return strokes  # an empty box: the page is read as it is
    return strokes & ~lines


def _erase_ruled_lines(strokes: np.ndarray) -> np.ndarray:
    """Clear the lines of ruled paper: thin straight rows of ink across the whole page, at least two of them.

    Where a stroke of the digit crosses a line (ink right above and below it), the line's pixels stay.
    """
    height = strokes.shape[0]
    mask = _mask(strokes)
    if len(_full_lines(mask, share=RULED_LENGTH, axis=1)) < 2:
        return strokes
    across = _straight_runs(mask, share=RULED_LENGTH, axis=1)
    # Each line must be thin, or it is a stroke (a tightly cropped 7's bar is thick).
    lines = [line for line in _consecutive(np.flatnonzero(across.any(axis=1))) if len(line) <= FRAME_THICKNESS * height]
    if len(lines) < 2:
        return strokes
    strokes = strokes.copy()
    for line in lines:
        above, below = max(line[0] - 1, 0), min(line[-1] + 1, height - 1)
        crossed = strokes[above] & strokes[below]
        strokes[line] &= crossed | ~across[line]
    return strokes


def _full_lines(mask: np.ndarray, *, share: float, axis: int) -> np.ndarray:
    """The rows (axis 1) or columns (axis 0) of a 0/1 mask with ink over at least `share` of their length."""
    length = mask.shape[axis]
    return np.flatnonzero(cv2.reduce(mask, axis, cv2.REDUCE_SUM, dtype=cv2.CV_32S) >= share * length)


def _straight_runs(mask: np.ndarray, *, share: float, axis: int) -> np.ndarray:
    """The mask's pixels on straight runs of ink at least `share` of the page long, across (axis 1) or down (0)."""
    length = max(3, int(share * mask.shape[axis]))
    kernel = np.ones((1, length) if axis == 1 else (length, 1), np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel).astype(bool)


def _consecutive(indices: np.ndarray) -> list[np.ndarray]:
    """Sorted indices split into runs of consecutive ones (the rows of one line); none for none."""
    return np.split(indices, np.flatnonzero(np.diff(indices) > 1) + 1) if len(indices) else []


def _edge_lines(faint_ink: np.ndarray) -> list[int]:
    """The rows of `faint_ink` that `_erase_border_lines` clears, from its top and its bottom edge."""
    count, length = faint_ink.shape
    band = max(1, int(BORDER_BAND * count))
    cleared = []
    for edge in (range(band), range(count - 1, count - 1 - band, -1)):
        run, needed = [], EDGE_LINE_FILL
        for index in edge:
            if np.count_nonzero(faint_ink[index]) / length < needed:
                break  # only lines contiguous with the edge itself
            run.append(index)
            needed = EDGE_LINE_FILL / 2  # the line's own blurred rim is less full
        # A run filling the whole band is something thicker, like the bar of a tightly cropped 7.
        if len(run) < band:
            cleared += run
    return cleared


def _is_border_line(left: int, top: int, w: int, h: int, *, height: int, width: int) -> bool:
    """A long thin component lying along an image edge (scanner shadow, a form's box line)."""
    band_x, band_y = BORDER_BAND * width, BORDER_BAND * height
    along_left_or_right = (left == 0 or left + w == width) and w <= band_x and h >= 0.5 * height
    along_top_or_bottom = (top == 0 or top + h == height) and h <= band_y and w >= 0.5 * width
    frame = w == width and h == height and (left, top) == (0, 0) and height > 40 and width > 40
    return along_left_or_right or along_top_or_bottom or frame


def _digit_pieces(ink: np.ndarray) -> np.ndarray:
    """The largest piece and the pieces near it (broken strokes); far-away stray marks are dropped."""
    mask = _mask(ink > 0)
    if _piece_count(mask) <= 1:  # most digits are one piece
        return ink
    count, labels, stats = components(mask)
    order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])
    left, top, w, h = stats[order[0], :4]
    box = [left, top, left + w, top + h]
    keep = np.zeros(count, bool)
    keep[order[0]] = True
    reach = NEAR_PIECE * max(w, h)
    # Grow the digit's box piece by piece, biggest first, so a chain of fragments stays together.
    for label in order[1:]:
        x0, y0, pw, ph = stats[label, :4]
        if max(pw, ph) < SPECK_EXTENT * max(w, h):
            continue
        gap_x = max(box[0] - (x0 + pw), x0 - box[2], 0)
        gap_y = max(box[1] - (y0 + ph), y0 - box[3], 0)
        if max(gap_x, gap_y) <= reach:
            keep[label] = True
            box = [min(box[0], x0), min(box[1], y0), max(box[2], x0 + pw), max(box[3], y0 + ph)]
    return np.where(keep[labels], ink, 0.0).astype(np.float32, copy=False)


def _thicken_thin_strokes(digit: np.ndarray) -> np.ndarray:
    """Dilate a fine-pen digit until its strokes are as thick, relative to its size, as MNIST's."""
    mask = _mask(digit > 0.5)
    area = np.count_nonzero(mask)
    if area == 0:
        return digit
    inside = cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    rim = int(area - np.count_nonzero(inside))
    # A stroke of width w and length L has area w*L and about 2*L rim pixels.
    stroke = 2.0 * int(area) / max(rim, 1)
    wanted = TARGET_STROKE * max(digit.shape[0], digit.shape[1])
    grow = round((wanted - stroke) / 2)
    if grow < 1 or stroke >= 0.7 * wanted:
        return digit
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    padded = cv2.copyMakeBorder(digit, grow, grow, grow, grow, cv2.BORDER_CONSTANT, value=0.0)
    return cv2.dilate(padded, kernel)
