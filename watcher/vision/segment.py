"""Cut a written number's cleaned ink into candidate digits, left to right: each candidate's own ink and the page
columns it lies between, and the options that read the number's pieces with them. Fitting them is the next step's
(watcher.vision.fit), done once for each candidate, after the cutting."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from watcher.vision.options import (
    NARROWEST_PART,
    Option,
    as_number_or_digit,
    is_digit_wide,
    mark_options,
    may_merge,
    merge_option,
    run_option,
)
from watcher.vision.paper import is_edge_line
from watcher.vision.pieces import boxed_components, ink_box

SPECK_SIDE = 0.35  # a short piece whose longer side is under 35 % of the tallest digit's height is a dot or speck
NEAR_STROKE = 0.2  # a short stroke this close (in digit heights) beside a digit is a loose part of it
MERGE_OVERLAP = 0.5  # pieces sharing half the narrower one's columns are one digit (a broken 4 or 5)
DIGIT_ASPECT = 0.8  # digits that touch are mostly wide ones, about 0.8 times as wide as tall (MNIST median 0.75)
SPLIT_ASPECT = 1.25  # a piece wider than 1.25 times a digit's height holds touching digits (1 % of MNIST digits are)
CUT_WINDOW = 0.35  # a cut is sought within 35 % of a digit's width around its even-spacing position
TALL_GROUP = 0.5  # a group at least half as tall as the tallest is a digit; a shorter one may be a mark
CLEAR_GAP = 0.1  # auto: full-size groups at least a tenth of a height apart are separate digits
FULL_HEIGHT = 0.65  # auto: a group 65 % as tall as the tallest is full-size (a broken 4's loose corner is shorter)
FULL_INK = 0.2  # auto: a full-size group holds 20 % of the biggest's ink (a thin 1 holds 30 % of a 0's, a tick less)
PAIR_ASPECT = 1.05  # a piece wider than a digit's height may be two touching digits, when a junction shows
JUNCTION_RUN = 0.3  # a junction's column is crossed by one stroke shorter than 30 % of a height (not a 1's stem)
SIDE_HEIGHT = 0.75  # a junction has ink 75 % of a height tall on both sides (a 7's bar or a 2's tail is shorter)
SIDE_WIDTH = 0.15  # a junction has ink 15 % of a height wide on both sides (about a thin 1's width)
WIDE_ASPECT = 2.6  # ink this much wider than tall is several digits even with no gap (MNIST's widest is about 2.5)
LOW_PAIR_ASPECT = 0.7  # ink 70 % of a digit's height wide is also cut at a junction beside an upright 1
NARROW_SIDE_WIDTH = 0.06  # a junction beside an upright 1 has ink 6 % of a height wide on its narrow side
NARROW_PART = 0.35  # least-ink cuts are offered into parts at least 35 % of a digit's height wide each
COUNT_REACH = 2  # least-ink cuts into up to two digits more or fewer than the geometry reads are offered


class Spans(NamedTuple):
    """A number's ink cut into candidate digits, not yet fitted: each candidate's own ink (in the order the options
    name them) and the page columns it was cut between, and the options that read its pieces with them.

    A piece is a group of ink, or a part of one between two columns where it may be cut. A reading takes options
    that cover every piece once.
    """

    inks: tuple[np.ndarray, ...]
    columns: tuple[tuple[int, int], ...]
    options: tuple[Option, ...]
    pieces: int


@dataclass
class _Group:
    """Ink believed to be one digit (or, before splitting, touching digits): its labels and bounding box."""

    labels: list[int]
    area: int
    left: int
    top: int
    right: int
    bottom: int
    mark: bool = False  # short: maybe a small digit, maybe a dash or tick

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def absorb(self, label: int, box: tuple[int, int, int, int], *, area: int) -> None:
        self.labels.append(label)
        self.area += area
        self.left, self.top = min(self.left, box[0]), min(self.top, box[1])
        self.right, self.bottom = max(self.right, box[2]), max(self.bottom, box[3])


def cut_number(ink: np.ndarray, *, mode: str) -> Spans | None:
    """The candidate digits of a number's cleaned ink (mode "number" or "auto"), and the options that read its pieces
    with them; None when the ink is one digit, read whole.

    "number" reads the ink as a row of digits; "auto" as a number when it clearly lies in several digits side by
    side, and as one digit otherwise unless the model is much surer of it as a number. The geometry proposes its
    reading and, where it may be wrong, alternatives for the model to judge (see `Option`).
    """
    labels, stats = _page_components(ink)
    groups = _digit_groups(stats, page=ink.shape)
    digits = [group for group in groups if not group.mark]
    # auto: ink that is clearly several digits is a number; ink that may be (pieces side by side, one piece as
    # wide as two touching digits, or a narrower one that may be a 1 touching a digit) is one digit unless the
    # model is much surer of it as a number.
    maybe_number = bool(digits) and mode == "auto" and not _looks_like_number(digits)
    if not digits or (maybe_number and not _may_be_several(digits, ink=ink, labels=labels)):
        return None
    digit_height, digit_width = _digit_size(digits)
    parts = _Parts(ink, labels)
    # Each group is cut at every column where a digit may end, into pieces; an option reads a run of pieces.
    options: list[Option] = []
    first_piece = [0]
    for group in groups:
        if group.mark:
            whole = parts.image_of((group,), left=group.left, right=group.right)
            options += mark_options(first_piece[-1], whole)
            first_piece.append(first_piece[-1] + 1)
        else:
            own, pieces = _group_options(group, parts, first=first_piece[-1], size=(digit_height, digit_width))
            options += own
            first_piece.append(first_piece[-1] + pieces)
    options += _merge_options(groups, parts, first_piece=first_piece, digit_height=digit_height)
    if maybe_number:
        options = as_number_or_digit(options, pieces=first_piece[-1], whole=parts.whole_page())
    return Spans(tuple(parts.inks), tuple(parts.columns), tuple(options), first_piece[-1])


class _Parts:
    """The candidate digits of one page: each one's own ink and the page columns it was cut between, each once."""

    def __init__(self, ink: np.ndarray, labels: np.ndarray) -> None:
        self.ink, self.labels = ink, labels
        self.inks: list[np.ndarray] = []
        self.columns: list[tuple[int, int]] = []
        self._seen: dict[tuple[int, ...], int] = {}

    def image_of(self, members: tuple[_Group, ...], *, left: int, right: int) -> int:
        """The index of the candidate that is these groups' ink between two page columns."""
        key = (*(id(group) for group in members), left, right)
        if key not in self._seen:
            self._seen[key] = self._add(_own_ink(self.ink, self.labels, members, left=left, right=right), left, right)
        return self._seen[key]

    def whole_page(self) -> int:
        """The index of the candidate that is the whole page's ink, as one digit."""
        return self._add(self.ink, 0, self.ink.shape[1])

    def _add(self, ink: np.ndarray, left: int, right: int) -> int:
        self.inks.append(ink)
        self.columns.append((left, right))
        return len(self.inks) - 1


def _digit_size(digits: list[_Group]) -> tuple[float, float]:
    """The height and width of one digit of the number, by which its groups are cut and judged."""
    # Digits of one number share a size: a short wide digit (a flat 2) is judged against its neighbours, and
    # touching digits are counted in widths of the digits standing alone, when there are any.
    digit_height = float(np.median([group.height for group in digits]))
    alone = [group.width for group in digits if group.width <= SPLIT_ASPECT * digit_height]
    return digit_height, max(DIGIT_ASPECT * digit_height, float(np.median(alone)) if alone else 0.0)


def _group_options(group: _Group, parts: _Parts, *, first: int, size: tuple[float, float]) -> tuple[list[Option], int]:
    """The options reading a digit group's pieces, numbered from `first`, and how many pieces it was cut into."""
    digit_height, digit_width = size
    crop = _own_ink(parts.ink, parts.labels, (group,), left=group.left, right=group.right)
    geometry = _geometry_cuts(crop, group, digit_height=digit_height, digit_width=digit_width)
    bounds = [0, *_cut_columns(crop, geometry=geometry, digit_height=digit_height), group.width]
    own = set(itertools.pairwise([0, *geometry, group.width]))
    options = []
    # A run of pieces is a candidate digit when the geometry reads it so or it is about a digit's width.
    for a, b in itertools.combinations(range(len(bounds)), 2):
        start, end = bounds[a], bounds[b]
        geometrys = (start, end) in own
        if not geometrys and not is_digit_wide(end - start, digit_height=digit_height):
            continue
        inked = bool((crop[:, start:end] > 0).any())
        image = parts.image_of((group,), left=group.left + start, right=group.left + end) if inked else None
        options.append(run_option(first + a, first + b, image, geometrys=geometrys))
    return options, len(bounds) - 1


def _merge_options(groups: list[_Group], parts: _Parts, *, first_piece: list[int], digit_height: float) -> list[Option]:
    """Options reading two neighbouring digit groups as one digit broken apart, where they may be."""
    options = []
    for index, (group, following) in enumerate(itertools.pairwise(groups)):
        if group.mark or following.mark:
            continue
        width = max(group.right, following.right) - group.left
        if may_merge(gap=following.left - group.right, width=width, digit_height=digit_height):
            pair = parts.image_of((group, following), left=group.left, right=max(group.right, following.right))
            options.append(merge_option(first_piece[index], first_piece[index + 2], pair))
    return options


def _page_components(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and stats of the ink's 8-connected pieces, in page coordinates, labelled on the ink's box alone."""
    mask = (ink > 0).astype(np.uint8)
    box = ink_box(mask)
    _, box_labels, stats = boxed_components(mask, box)
    labels = np.zeros(ink.shape, np.int32)
    labels[box] = box_labels
    return labels, stats


def _digit_groups(stats: np.ndarray, *, page: tuple[int, int]) -> list[_Group]:
    """Components gathered into digits, left to right: overlapping columns merge; specks and edges are dropped.

    Groups too short to be sure digits come back flagged as marks.
    """
    boxes = {
        label: (int(left), int(top), int(left + w), int(top + h))
        for label, (left, top, w, h, _) in enumerate(stats)
        if label and not is_edge_line(int(left), int(top), int(w), int(h), page=page)
    }
    if not boxes:
        return []
    groups: list[_Group] = []
    # Left to right, each piece joins the group whose columns it mostly shares: strokes of one digit stack
    # vertically, while neighbouring digits share at most a sliver of columns.
    for label in sorted(boxes, key=lambda label: boxes[label][0]):
        box, area = boxes[label], int(stats[label, cv2.CC_STAT_AREA])
        joined = next((group for group in groups if _column_overlap(group, box) >= MERGE_OVERLAP), None)
        if joined:
            joined.absorb(label, box, area=area)
        else:
            groups.append(_Group([label], area, *box))
    digits = _tall(groups)
    tallest = max(group.height for group in digits)
    # A short group beside a digit is a loose stroke of it (the bar of a 5 drawn apart), when it is long
    # enough to be a stroke and close enough; anything else short is a small digit or a mark, for the model
    # to tell, unless it is so small that it can only be a dot or a speck.
    marks = []
    for loose in (group for group in groups if group not in digits):
        if max(loose.width, loose.height) < SPECK_SIDE * tallest:
            continue
        nearest = min(digits, key=lambda digit: _gap(digit, loose))
        if _gap(nearest, loose) <= NEAR_STROKE * tallest:
            for label in loose.labels:
                nearest.absorb(label, boxes[label], area=int(stats[label, cv2.CC_STAT_AREA]))
        else:
            loose.mark = True
            marks.append(loose)
    return sorted(digits + marks, key=lambda group: group.left)


def _gap(digit: _Group, loose: _Group) -> int:
    """Columns between the two (0 when they overlap)."""
    return max(loose.left - digit.right, digit.left - loose.right, 0)


def _column_overlap(group: _Group, box: tuple[int, int, int, int]) -> float:
    """Shared columns as a share of the narrower of the two."""
    shared = min(group.right, box[2]) - max(group.left, box[0])
    return shared / max(1, min(group.width, box[2] - box[0]))


def _looks_like_number(groups: list[_Group]) -> bool:
    """Two full-size groups clearly apart, or ink far wider than any one digit.

    The strokes of one digit share columns and merge into one group, and a loose part of a broken digit is
    short or light, so a lone digit almost never shows two full-size groups (1 in 10,000 MNIST test digits);
    when it does, they nearly touch (a 4 whose stem stands apart), and the model is asked.
    """
    tallest = max(group.height for group in groups)
    biggest = max(group.area for group in groups)
    full = [group for group in groups if group.height >= FULL_HEIGHT * tallest and group.area >= FULL_INK * biggest]
    width = max(group.right for group in groups) - min(group.left for group in groups)
    gaps = [after.left - before.right for before, after in itertools.pairwise(full)]
    return width >= WIDE_ASPECT * tallest or any(gap >= CLEAR_GAP * tallest for gap in gaps)


def _may_be_several(digits: list[_Group], *, ink: np.ndarray, labels: np.ndarray) -> bool:
    """Pieces side by side, one piece wider than tall, or one as wide as a 1 touching another digit where a
    junction shows: touching digits, or a wide digit (the model tells)."""
    if len(digits) > 1 or digits[0].width >= PAIR_ASPECT * digits[0].height:
        return True
    group = digits[0]
    if group.width < LOW_PAIR_ASPECT * group.height:
        return False
    crop = _own_ink(ink, labels, (group,), left=group.left, right=group.right)
    return _junction(crop, digit_height=group.height, side_width=NARROW_SIDE_WIDTH) is not None


def _tall(groups: list[_Group]) -> list[_Group]:
    """The groups tall enough to be digits rather than marks."""
    tallest = max(group.height for group in groups)
    return [group for group in groups if group.height >= TALL_GROUP * tallest]


def _geometry_cuts(crop: np.ndarray, group: _Group, *, digit_height: float, digit_width: float) -> list[int]:
    """The geometry's own cuts: far too wide, at the columns of least ink; a little wider than a digit is tall,
    in two at a junction; otherwise none."""
    if group.width > SPLIT_ASPECT * max(group.height, digit_height):
        return _even_cuts(crop, parts=max(2, round(group.width / digit_width)))
    if group.width >= PAIR_ASPECT * digit_height:
        junction = _junction(crop, digit_height=digit_height, side_width=SIDE_WIDTH)
        return [] if junction is None else [junction]
    return []


def _cut_columns(crop: np.ndarray, *, geometry: list[int], digit_height: float) -> list[int]:
    """Every column where one digit may end and the next begin, left to right: the geometry's cuts, a junction
    beside an upright 1, the least-ink cuts into a few more or fewer digits, and each column of locally least ink."""
    width = crop.shape[1]
    columns = set(geometry)
    if width >= LOW_PAIR_ASPECT * digit_height:
        narrow = _junction(crop, digit_height=digit_height, side_width=NARROW_SIDE_WIDTH)
        columns.update([] if narrow is None else [narrow])
    count = len(geometry) + 1
    most = min(count + COUNT_REACH, int(width / (NARROW_PART * digit_height)))
    for parts in range(max(2, count - COUNT_REACH), most + 1):
        columns.update(_even_cuts(crop, parts=parts))
    profile = _column_ink(crop)
    margin = max(1, int(NARROWEST_PART * digit_height))
    columns.update(
        column
        for column in range(margin, width - margin)
        if profile[column] <= profile[column - 1] and profile[column] < profile[column + 1]
    )
    return sorted(columns)


def _even_cuts(crop: np.ndarray, *, parts: int) -> list[int]:
    """Columns cutting the crop into `parts` digits, each at the least ink near its even-spacing position.

    Touching digits meet in a stroke or two, so the ink per column dips where one ends and the next begins.
    """
    width = crop.shape[1]
    profile = _column_ink(crop)
    step = width / parts
    reach = max(1, int(CUT_WINDOW * step))
    cuts = [0]
    for nominal in (round(step * part) for part in range(1, parts)):
        low, high = max(cuts[-1] + 1, nominal - reach), min(width - 1, nominal + reach)
        cuts.append(low + int(np.argmin(profile[low : high + 1])) if high >= low else nominal)
    return cuts[1:]


def _column_ink(crop: np.ndarray) -> np.ndarray:
    """Ink per column, smoothed over three columns."""
    return np.asarray(cv2.blur(crop.sum(axis=0, dtype=np.float32)[np.newaxis], (3, 1))[0], np.float32)


def _own_ink(ink: np.ndarray, labels: np.ndarray, groups: tuple[_Group, ...], *, left: int, right: int) -> np.ndarray:
    """The groups' ink between two page columns, cropped to their rows (a neighbour reaching in is left out).

    The groups' labels are looked up in a table, its last entry (no member) standing for every label past theirs:
    np.isin's checks and comparisons cost ten times as much on these small crops (2 ms a sheet's number)."""
    top, bottom = min(group.top for group in groups), max(group.bottom for group in groups)
    region = (slice(top, bottom), slice(left, right))
    members = [label for group in groups for label in group.labels]
    chosen = np.zeros(max(members, default=0) + 2, bool)
    chosen[members] = True
    own = np.take(chosen, labels[region], mode="clip")
    return np.where(own, ink[region], np.float32(0.0))  # float32, as the ink is


def _junction(crop: np.ndarray, *, digit_height: float, side_width: float) -> int | None:
    """The column where two touching digits meet, or None when the ink looks like one digit.

    Two digits side by side touch in one short stroke, and each side holds ink nearly a digit tall; inside one
    digit a column crossed once either passes a long stroke (a 1's stem) or leaves a short part (a 7's bar).
    """
    filled = crop > 0
    width = crop.shape[1]
    margin = max(1, int(side_width * digit_height))
    if width <= 2 * margin:
        return None
    # Crossed by at most one stroke, and a short one: a single run of ink is as long as the column's ink.
    strokes = np.diff(filled.astype(np.int8), axis=0, prepend=0) == 1
    crossed_once = (strokes.sum(axis=0) <= 1) & (filled.sum(axis=0) <= JUNCTION_RUN * digit_height)
    # Ink height left of each column (its columns before it) and right of it (from it on).
    left = _ink_heights(np.logical_or.accumulate(filled, axis=1))
    right = _ink_heights(np.logical_or.accumulate(filled[:, ::-1], axis=1))[::-1]
    tall_sides = np.minimum(np.concatenate(([0], left[:-1])), right) >= SIDE_HEIGHT * digit_height
    columns = margin + np.flatnonzero((crossed_once & tall_sides)[margin : width - margin])
    if not len(columns):
        return None
    return int(columns[np.argmin(crop[:, columns].sum(axis=0))])


def _ink_heights(filled: np.ndarray) -> np.ndarray:
    """For each column, the rows from its first inked row to its last (0 for a column without ink)."""
    inked = filled.any(axis=0)
    first = np.argmax(filled, axis=0)
    last = filled.shape[0] - 1 - np.argmax(filled[::-1], axis=0)
    return np.where(inked, last - first + 1, 0)
