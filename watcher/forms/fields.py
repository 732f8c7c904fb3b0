"""Cut a form page's fields out in reference coordinates, with the printed form taken away, ready for reading.

Only what differs from the blank form is handwriting: each field's region of the page is warped onto the
reference, nudged onto its print, and the page's ink under the reference's (dilated) ink is removed, except where a
pen stroke crosses a printed line. Ink that starts inside a box and runs over its edge still belongs to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

from watcher.forms.align import Alignment, Reference, Refusal, best_alignment, reference
from watcher.forms.features import features, grey
from watcher.forms.template import Field, Kind, Template
from watcher.vision.digits import Candidates, candidates
from watcher.vision.paper import darkness_on_paper, without_print

MARGIN = 0.6  # the region read around a box reaches this share of a cell's smaller side beyond it
READ_PX = 56  # a field is read with its cells at most this many px across (or at the page's own resolution)
INK = 0.3  # a pixel this much darker than its paper is ink (print and pen alike)
NUDGE_PX = 2  # the field is nudged onto the reference's print by up to the fit's residual and this many px more
LINE_SHARE = 0.5  # a printed line runs at least half a cell's smaller side (a box's sides are whole cells long)
SLACK_PX = 1  # the reference's print is widened by the fit's residual and this many px before it is removed
INSIDE_SHARE = 0.3  # a piece of ink belongs to the field when this share of it lies inside the box
OWN_CELL_SHARE = 0.85  # ...and wholly to one comb cell when this share of its ink inside lies in that cell
SPECK = 0.12  # a piece whose longer side is under 12 % of the cell's height is a speck
EMPTY = 0.25  # a cell whose writing is shorter than a quarter of its height is empty
PAD = 0.25  # the crop handed to the reader has this share of white around the cell
VIEW_PX = 900  # a field shown to a person is at most this wide


class FieldCrop(NamedTuple):
    """One field's writing, ready for `candidates`: one crop per comb cell, else one; None for an empty one.

    Crops are 8-bit grey, dark writing on white, the printed form already removed. Named tuples cross from
    worker processes cheaply.
    """

    name: str
    kind: Kind
    crops: tuple[np.ndarray | None, ...]

    @property
    def mode(self) -> str:
        """The recognition mode each crop is read in: a number field as a number, a digit or a comb cell as a digit."""
        return "number" if self.kind == "number" else "digit"


class FormPage(NamedTuple):
    """A page read as a form: the template it matched, how well it aligned, and its fields in template order."""

    template: str
    alignment: Alignment
    fields: tuple[FieldCrop, ...]


class FormRefused(NamedTuple):
    """A page that matches no template: the `detail` of its error row."""

    reason: str


def read_form(image: np.ndarray, templates: Sequence[Template]) -> FormPage | FormRefused:
    """Align a decoded page (as `decode` gives it) with the template it matches best and cut out its fields."""
    page = grey(image)
    fit = best_alignment(features(page), [reference(template) for template in templates])
    if isinstance(fit, Refusal):
        return FormRefused(f"matches no form template (closest: {fit.template}, {fit.reason})")
    matched, alignment = fit
    fields = tuple(
        FieldCrop(field.name, field.kind, field_crops(page, field, matched, alignment))
        for field in matched.template.fields
    )
    return FormPage(matched.template.name, alignment, fields)


def field_candidates(field: FieldCrop, *, cut: bool = True) -> tuple[Candidates | None, ...]:
    """The candidate digits of each of the field's crops (None for an empty one), as the model reads them (`cut`:
    as `candidates`)."""
    return tuple(None if crop is None else candidates(crop, mode=field.mode, cut=cut) for crop in field.crops)


def field_crops(
    page: np.ndarray, field: Field, matched: Reference, alignment: Alignment
) -> tuple[np.ndarray | None, ...]:
    """The field's writing from an aligned page (8-bit grey): one crop per cell (a digit or number is one cell)."""
    x, y, w, h = field.box
    cell_width = w / field.cells
    margin = math.ceil(MARGIN * min(cell_width, h))
    zoom = _zoom(alignment.homography, cell_side=min(cell_width, h))
    nudge = NUDGE_PX + math.ceil(alignment.residual_px * zoom)
    region = (x - margin, y - margin, w + 2 * margin, h + 2 * margin)
    printed = darkness_on_paper(_reference_window(matched.image, region, zoom)) > INK
    window = _nudged(_page_window(page, alignment.homography, region, zoom, border=nudge), printed, nudge)
    darkness = darkness_on_paper(window)
    slack = SLACK_PX + math.ceil(alignment.residual_px * zoom)
    line_length = max(3, round(LINE_SHARE * min(cell_width, h) * zoom))
    writing = without_print(darkness > INK, printed, slack=slack, line_length=line_length)
    inner = _scaled((margin, margin, w, h), zoom)
    cells = [_scaled((margin + cell * cell_width, margin, cell_width, h), zoom) for cell in range(field.cells)]
    owners = _owners(writing, inner, cells, speck=SPECK * h * zoom)
    return tuple(
        _cell_crop(darkness, owners == index + 1, cell, empty=EMPTY * h * zoom) for index, cell in enumerate(cells)
    )


def field_view(page: np.ndarray, field: Field, alignment: Alignment) -> np.ndarray:
    """The page around a field (as read, margin and all) for a person to see: upright whichever way the page was
    fed, at the page's own resolution up to VIEW_PX across."""
    x, y, w, h = field.box
    margin = math.ceil(MARGIN * min(w / field.cells, h))
    region = (x - margin, y - margin, w + 2 * margin, h + 2 * margin)
    zoom = min(_page_zoom(alignment.homography), VIEW_PX / region[2])
    return _page_window(page, alignment.homography, region, zoom, border=0)


def _zoom(homography: np.ndarray, *, cell_side: float) -> float:
    """Window pixels per reference pixel: the page's own resolution where it is coarser than the reference's;
    otherwise with a cell READ_PX across (the reader fits a digit into 20 px; finer only costs), but never coarser
    than the reference, whose thin lines a coarser warp would break up."""
    page_zoom = _page_zoom(homography)
    return max(min(page_zoom, READ_PX / cell_side), min(1.0, page_zoom))


def _page_zoom(homography: np.ndarray) -> float:
    """Page pixels per reference pixel, near the reference's origin."""
    linear = np.linalg.inv(homography)[:2, :2] / np.linalg.inv(homography)[2, 2]
    return math.sqrt(abs(np.linalg.det(linear)))


def _page_window(
    page: np.ndarray, homography: np.ndarray, region: tuple[int, int, int, int], zoom: float, *, border: int
) -> np.ndarray:
    """The page warped onto a region of the reference at `zoom`, `border` px wider on every side."""
    x, y, w, h = region
    onto = np.array([[zoom, 0, border - x * zoom], [0, zoom, border - y * zoom], [0, 0, 1]], np.float64) @ homography
    size = (round(w * zoom) + 2 * border, round(h * zoom) + 2 * border)
    return cv2.warpPerspective(page, onto, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _reference_window(image: np.ndarray, region: tuple[int, int, int, int], zoom: float) -> np.ndarray:
    x, y, w, h = region
    onto = np.array([[zoom, 0, -x * zoom], [0, zoom, -y * zoom]], np.float64)
    return cv2.warpAffine(image, onto, (round(w * zoom), round(h * zoom)), flags=cv2.INTER_LINEAR, borderValue=255)


def _nudged(window: np.ndarray, printed: np.ndarray, reach: int) -> np.ndarray:
    """The page window shifted by up to `reach` px so its print lies on the reference's (the fit is good to a
    pixel or two over the sheet; a field's own lines put it right locally)."""
    height, width = printed.shape
    if not printed.any():
        return window[reach : reach + height, reach : reach + width]
    # Plain correlation, not normalised: only page ink under the reference's print counts, wherever the pen is.
    score = cv2.matchTemplate(darkness_on_paper(window), printed.astype(np.float32), cv2.TM_CCORR)
    _, _, _, (dx, dy) = cv2.minMaxLoc(score)
    return window[dy : dy + height, dx : dx + width]


def _scaled(rect: tuple[float, float, float, float], zoom: float) -> tuple[int, int, int, int]:
    x, y, w, h = rect
    return round(x * zoom), round(y * zoom), round((x + w) * zoom), round((y + h) * zoom)


def _owners(
    writing: np.ndarray, inner: tuple[int, int, int, int], cells: list[tuple[int, int, int, int]], *, speck: float
) -> np.ndarray:
    """Each writing pixel's cell (1-based; 0 for none): a piece mostly in one cell is that cell's whole, even
    where it runs over a wall or the box's edge; a piece spread over cells (two digits touching across a wall)
    is cut at the walls; a piece mostly outside the box, or a speck, is nobody's."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(writing.view(np.uint8), connectivity=8)
    column_cell = np.zeros(writing.shape[1], np.int32)
    for index, (left, _, right, _) in enumerate(cells):
        column_cell[max(left, 0) : right] = index + 1
    left, top, right, bottom = inner
    within = labels[top:bottom, left:right]
    # Each piece's ink inside the box, cell by cell (column 0: inside the box, yet in no cell).
    per_cell = np.bincount(
        (within * (len(cells) + 1) + column_cell[left:right]).ravel(), minlength=count * (len(cells) + 1)
    ).reshape(count, len(cells) + 1)[:, 1:]
    inside = per_cell.sum(axis=1)
    main = per_cell.argmax(axis=1)
    belongs = (inside >= INSIDE_SHARE * stats[:, cv2.CC_STAT_AREA]) & (
        stats[:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]].max(axis=1) >= speck
    )
    belongs[0] = False  # the background
    whole = per_cell[np.arange(count), main] >= OWN_CELL_SHARE * inside
    # An owner per piece: its main cell's number, -1 for a piece cut at the walls, 0 for nobody.
    owner = np.where(belongs, np.where(whole, main + 1, -1), 0)
    owners: np.ndarray = owner[labels]
    cut = owners < 0
    owners[cut] = np.broadcast_to(column_cell, writing.shape)[cut]
    return owners


def _cell_crop(
    darkness: np.ndarray, own: np.ndarray, cell: tuple[int, int, int, int], *, empty: float
) -> np.ndarray | None:
    """The cell's writing as dark ink on white, cropped around it with a white pad; None when the cell is empty."""
    if not own.any():
        return None
    rows, columns = np.nonzero(own)
    if max(rows.max() - rows.min(), columns.max() - columns.min()) + 1 < empty:
        return None
    # The strokes' anti-aliased rims, a pixel wide, are kept as grey levels, as the reader expects them.
    kept = cv2.dilate(own.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    rows, columns = np.nonzero(kept)
    top, bottom, left, right = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
    ink = np.where(kept[top:bottom, left:right], darkness[top:bottom, left:right], 0.0)
    pad = math.ceil(PAD * (cell[3] - cell[1]))
    crop = np.pad(255 - np.round(255 * ink).astype(np.uint8), pad, constant_values=255)
    return np.ascontiguousarray(crop, np.uint8)
