"""A draft template from a blank form: its printed boxes and comb cells found, numbered in reading order.

A printed box is a ring of ink around an empty hole; a comb is a box whose walls divide it into a row of holes.
Labels, logos and filled marks have no empty rectangular hole of a field's size, so they are passed over.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import yaml

from watcher.forms.template import Kind

MIN_SIDE = 0.012  # a field's box is at least 1.2 % of the page's longer side tall and wide (3.5 mm on A4)
MAX_AREA = 0.25  # ...and covers at most a quarter of the page (a frame around the whole form is not a field)
RECTANGULAR = 0.85  # a box's outline and each of its holes fill 85 % of their bounding rectangles
HOLES_COVER = 0.6  # a box's holes cover at least 60 % of it (the rest is its lines)
NUMBER_ASPECT = 1.3  # a single box this much wider than tall holds a number, a squarer one a digit
SAME_ROW = 0.5  # boxes whose centres lie within half a box's height of each other are read in one row


class DraftField(NamedTuple):
    """A box found on the blank form: its outer edge (x, y, width, height), guessed kind and count of cells."""

    box: tuple[int, int, int, int]
    kind: Kind
    cells: int


def find_fields(grey: np.ndarray) -> list[DraftField]:
    """The printed boxes of a blank form (8-bit grey), in reading order: rows top to bottom, each left to right."""
    _, ink = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    contours, hierarchy = cv2.findContours(ink, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    links = hierarchy[0]  # per contour: next, previous, first child, parent
    page_side, page_area = max(grey.shape), grey.shape[0] * grey.shape[1]
    found = []
    for index, contour in enumerate(contours):
        x, y, w, h = cv2.boundingRect(contour)
        if min(w, h) < MIN_SIDE * page_side or w * h > MAX_AREA * page_area or _is_hole(links, index):
            continue
        if not _fills_its_rectangle(contour):
            continue
        holes = [
            cv2.boundingRect(contours[child])
            for child in _children(links, index)
            if _empty(links, child) and _fills_its_rectangle(contours[child])
        ]
        if not holes or sum(hw * hh for _, _, hw, hh in holes) < HOLES_COVER * w * h:
            continue
        cells = len(holes)
        kind: Kind = "comb" if cells > 1 else "number" if w >= NUMBER_ASPECT * h else "digit"
        found.append(DraftField((x, y, w, h), kind, cells))
    return _reading_order(found)


def draft_yaml(fields: list[DraftField], *, reference: str) -> str:
    """The draft template: fields field1, field2, ... with their boxes, kinds and cells, for the user to rename."""
    specs: dict[str, object] = {}
    for number, field in enumerate(fields, start=1):
        spec: dict[str, object] = {"box": list(field.box), "kind": field.kind}
        if field.kind == "comb":
            spec["cells"] = field.cells
        specs[f"field{number}"] = spec
    header = "# Drafted by `digit-watcher template`: rename the fields and add rules (digits, range, check).\n"
    return header + yaml.safe_dump({"reference": reference, "fields": specs}, sort_keys=False, default_flow_style=None)


def outlined(grey: np.ndarray, fields: list[DraftField]) -> np.ndarray:
    """The reference in colour with each found box outlined in red and numbered as its field is named."""
    picture = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    thickness = max(2, max(grey.shape) // 600)
    for number, field in enumerate(fields, start=1):
        x, y, w, h = field.box
        cv2.rectangle(picture, (x, y), (x + w - 1, y + h - 1), (0, 0, 230), thickness)
        for cell in range(1, field.cells):
            wall = x + round(cell * w / field.cells)
            cv2.line(picture, (wall, y), (wall, y + h - 1), (0, 160, 255), max(1, thickness // 2))
        scale = max(0.5, h / 40)
        origin = (x + w + thickness * 2, y + h // 2 + round(10 * scale))
        cv2.putText(picture, str(number), origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 230), thickness, cv2.LINE_AA)
    return picture


def write_draft(reference: Path, grey: np.ndarray, out: Path) -> tuple[list[DraftField], Path]:
    """Write the draft template to `out` and the outlined picture beside it; the fields and the picture's path."""
    fields = find_fields(grey)
    out.parent.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(reference.resolve(), out.resolve().parent)
    out.write_text(draft_yaml(fields, reference=Path(relative).as_posix()), encoding="utf-8")
    picture = out.with_name(f"{out.stem}-boxes.png")
    cv2.imwrite(os.fspath(picture), outlined(grey, fields))
    return fields, picture


def _children(links: np.ndarray, index: int) -> list[int]:
    children, child = [], links[index][2]
    while child >= 0:
        children.append(int(child))
        child = links[child][0]
    return children


def _is_hole(links: np.ndarray, index: int) -> bool:
    """Contours nest ink, hole, ink, ...: a contour at an odd depth is the inside of a ring of ink."""
    depth, parent = 0, links[index][3]
    while parent >= 0:
        depth, parent = depth + 1, links[parent][3]
    return depth % 2 == 1


def _empty(links: np.ndarray, hole: int) -> bool:
    """A hole with no ink inside it: a blank form's field is empty."""
    return bool(links[hole][2] < 0)


def _fills_its_rectangle(contour: np.ndarray) -> bool:
    """An upright rectangle (a box's outline or a cell), not a letter's or a logo's curve."""
    _, _, w, h = cv2.boundingRect(contour)
    return min(w, h) > 2 and cv2.contourArea(contour) >= RECTANGULAR * w * h


def _reading_order(fields: list[DraftField]) -> list[DraftField]:
    rows: list[list[DraftField]] = []
    for field in sorted(fields, key=lambda found: found.box[1] + found.box[3] / 2):
        centre = field.box[1] + field.box[3] / 2
        row = rows[-1] if rows else None
        if row and abs(centre - (row[0].box[1] + row[0].box[3] / 2)) <= SAME_ROW * row[0].box[3]:
            row.append(field)
        else:
            rows.append([field])
    return [field for row in rows for field in sorted(row, key=lambda found: found.box[0])]
