"""Split a scan of a written number into its digits, left to right, each fitted like an MNIST digit."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from watcher.normalise import fit_digit, ink_map

MODES = ("digit", "number", "auto")
SPECK_SIDE = 0.35  # a short piece whose longer side is under 35 % of the tallest digit's height is a dot or speck
NEAR_STROKE = 0.2  # a short stroke this close (in digit heights) beside a digit is a loose part of it
MERGE_OVERLAP = 0.5  # pieces sharing half the narrower one's columns are one digit (a broken 4 or 5)
DIGIT_ASPECT = 0.8  # digits that touch are mostly wide ones, about 0.8 times as wide as tall (MNIST median 0.75)
SPLIT_ASPECT = 1.25  # a piece wider than 1.25 times a digit's height holds touching digits (1 % of MNIST digits are)
CUT_WINDOW = 0.35  # a cut is sought within 35 % of a digit's width around its even-spacing position
TALL_GROUP = 0.5  # a group at least half as tall as the tallest is a digit, not a mark
EDGE_ASPECT = 0.1  # a line this thin that runs off the page is a scanner edge or a ruled line, not a 1
OVERLAP_SLACK = 0.03  # auto: separate groups overlapping by at most 3 % of a height are digits when each is...
FULL_HEIGHT = 0.65  # ...as tall as 65 % of the tallest (a broken 4's loose corner is shorter)...
FULL_INK = 0.2  # ...and holds 20 % of the biggest group's ink (a thin 1 holds 30 % of a round 0's, a stray tick less)
PAIR_ASPECT = 1.05  # a piece wider than a digit's height may be two touching digits, when a junction shows...
JUNCTION_RUN = 0.3  # ...as a column crossed by one stroke shorter than 30 % of a height (not a 1's stem)...
SIDE_HEIGHT = 0.75  # ...with ink at least 75 % of a height tall on both sides (a 7's bar or a 2's tail is shorter)...
SIDE_WIDTH = 0.15  # ...and at least 15 % of a height wide (about a thin 1's width)
WIDE_ASPECT = 2.6  # ink this much wider than tall is several digits even with no gap (MNIST's widest is about 2.5)


@dataclass
class _Group:
    """Ink believed to be one digit (or, before splitting, touching digits): its labels and bounding box."""

    labels: list[int]
    area: int
    left: int
    top: int
    right: int
    bottom: int

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


def digit_images(image: np.ndarray, *, mode: str) -> np.ndarray:
    """(k, 28, 28) float32 digits of a decoded scan, left to right; k = 0 for a blank page.

    mode "digit" reads the whole page as one digit (exactly `normalise`), "number" as a row of digits, and
    "auto" as a number only when the ink clearly lies in several digits side by side.
    """
    if mode not in MODES:
        raise ValueError(f"unknown recognition mode {mode!r}; expected one of {', '.join(MODES)}")
    ink = ink_map(image)
    if not ink.any():
        return np.zeros((0, 28, 28), np.float32)
    if mode == "digit":
        return fit_digit(ink)[np.newaxis]
    _, labels, stats, _ = cv2.connectedComponentsWithStats((ink > 0).astype(np.uint8), connectivity=8)
    groups = _digit_groups(stats, page=ink.shape)
    if not groups or (mode == "auto" and not _looks_like_number(groups)):
        return fit_digit(ink)[np.newaxis]
    # Digits of one number share a size: a short wide digit (a flat 2) is judged against its neighbours, and
    # touching digits are counted in widths of the digits standing alone, when there are any.
    digit_height = float(np.median([group.height for group in _tall(groups)]))
    alone = [group.width for group in groups if group.width <= SPLIT_ASPECT * digit_height]
    digit_width = max(DIGIT_ASPECT * digit_height, float(np.median(alone)) if alone else 0.0)
    pieces = [
        piece
        for group in groups
        for piece in _split_touching(ink, labels, group, digit_height=digit_height, digit_width=digit_width)
    ]
    return np.stack([fit_digit(piece) for piece in pieces])


def _digit_groups(stats: np.ndarray, *, page: tuple[int, int]) -> list[_Group]:
    """Components gathered into digits, left to right: overlapping columns merge; specks and edges are dropped."""
    boxes = {
        label: (int(left), int(top), int(left + w), int(top + h))
        for label, (left, top, w, h, _) in enumerate(stats)
        if label and not _is_edge_line(int(left), int(top), int(w), int(h), page=page)
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
    # enough to be a stroke and close enough; anything else short is a dot, a dash or a speck.
    for loose in (group for group in groups if group not in digits):
        if max(loose.width, loose.height) < SPECK_SIDE * tallest:
            continue
        nearest = min(digits, key=lambda digit: _gap(digit, loose))
        if _gap(nearest, loose) <= NEAR_STROKE * tallest:
            for label in loose.labels:
                nearest.absorb(label, boxes[label], area=int(stats[label, cv2.CC_STAT_AREA]))
    groups = digits
    return sorted(groups, key=lambda group: group.left)


def _is_edge_line(left: int, top: int, w: int, h: int, *, page: tuple[int, int]) -> bool:
    """A thin line running off the page: what `ink_map` leaves of a scanner edge or a ruled line."""
    height, width = page
    off_page = left == 0 or top == 0 or left + w == width or top + h == height
    return off_page and min(w, h) < EDGE_ASPECT * max(w, h)


def _gap(digit: _Group, loose: _Group) -> int:
    """Columns between the two (0 when they overlap)."""
    return max(loose.left - digit.right, digit.left - loose.right, 0)


def _column_overlap(group: _Group, box: tuple[int, int, int, int]) -> float:
    """Shared columns as a share of the narrower of the two."""
    shared = min(group.right, box[2]) - max(group.left, box[0])
    return shared / max(1, min(group.width, box[2] - box[0]))


def _looks_like_number(groups: list[_Group]) -> bool:
    """Two full-size groups side by side, or ink far wider than any one digit.

    The strokes of one digit share columns and merge into one group, and a loose part of a broken digit is
    short or light, so a lone digit almost never shows two full-size groups (1 in 10,000 MNIST test digits).
    """
    tallest = max(group.height for group in groups)
    biggest = max(group.area for group in groups)
    full = [group for group in groups if group.height >= FULL_HEIGHT * tallest and group.area >= FULL_INK * biggest]
    width = max(group.right for group in groups) - min(group.left for group in groups)
    gaps = [after.left - before.right for before, after in zip(full, full[1:])]
    return width >= WIDE_ASPECT * tallest or any(gap >= -OVERLAP_SLACK * tallest for gap in gaps)


def _tall(groups: list[_Group]) -> list[_Group]:
    """The groups tall enough to be digits rather than marks."""
    tallest = max(group.height for group in groups)
    return [group for group in groups if group.height >= TALL_GROUP * tallest]


def _split_touching(
    ink: np.ndarray, labels: np.ndarray, group: _Group, *, digit_height: float, digit_width: float
) -> list[np.ndarray]:
    """The group's ink cropped to its box, cut into digits where it is wider than one digit.

    Far too wide, it is cut at the columns of least ink; a little wider than a digit is tall, in two at a junction.
    """
    rows, columns = slice(group.top, group.bottom), slice(group.left, group.right)
    own = np.isin(labels[rows, columns], group.labels)
    crop = np.where(own, ink[rows, columns], 0.0).astype(np.float32)
    if group.width <= SPLIT_ASPECT * max(group.height, digit_height):
        cut = _junction(crop, digit_height=digit_height) if group.width >= PAIR_ASPECT * digit_height else None
        return [crop] if cut is None else [crop[:, :cut], crop[:, cut:]]
    parts = max(2, round(group.width / digit_width))
    # Touching digits meet in a stroke or two, so the ink per column dips where one ends and the next begins.
    profile = cv2.blur(crop.sum(axis=0, dtype=np.float32)[np.newaxis], (3, 1))[0]
    step = group.width / parts
    reach = max(1, int(CUT_WINDOW * step))
    cuts = [0]
    for nominal in (round(step * part) for part in range(1, parts)):
        low, high = max(cuts[-1] + 1, nominal - reach), min(group.width - 1, nominal + reach)
        cuts.append(low + int(np.argmin(profile[low : high + 1])) if high >= low else nominal)
    cuts.append(group.width)
    return [crop[:, start:end] for start, end in zip(cuts, cuts[1:]) if (crop[:, start:end] > 0).any()]


def _junction(crop: np.ndarray, *, digit_height: float) -> int | None:
    """The column where two touching digits meet, or None when the ink looks like one digit.

    Two digits side by side touch in one short stroke, and each side holds ink nearly a digit tall; inside one
    digit a column crossed once either passes a long stroke (a 1's stem) or leaves a short part (a 7's bar).
    """
    filled = crop > 0
    width = crop.shape[1]
    margin = max(1, int(SIDE_WIDTH * digit_height))
    best, best_ink = None, np.inf
    for column in range(margin, width - margin):
        runs = np.flatnonzero(np.diff(np.concatenate(([0], filled[:, column].astype(np.int8), [0]))))
        if len(runs) > 2 or (len(runs) == 2 and runs[1] - runs[0] > JUNCTION_RUN * digit_height):
            continue
        if min(_ink_height(filled[:, :column]), _ink_height(filled[:, column:])) < SIDE_HEIGHT * digit_height:
            continue
        ink = float(crop[:, column].sum())
        if ink < best_ink:
            best, best_ink = column, ink
    return best


def _ink_height(filled: np.ndarray) -> int:
    """Rows from the first inked row to the last."""
    rows = np.flatnonzero(filled.any(axis=1))
    return int(rows[-1] - rows[0] + 1) if len(rows) else 0
