"""Synthetic number fields as people write them, for training and measuring the sequence reader.

A field is one writer's number: real digits from several populations, drawn with that writer's pen, slant and
size, with separators, signs and trailing marks, touching or joined, on paper with ruled lines, boxes, nearby print
and scanner flaws. Its label keeps the marks (`MARK`), so the reader learns to read them and leave them out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from watcher.model.styles import STYLES, Writer, draw_digit, draw_writer
from watcher.model.synthetic import print_on_paper

MARK = "m"  # a separator, sign or trailing mark in a label: read as part of the writing, left out of the number
LENGTHS = np.arange(1, 9)
LENGTH_WEIGHTS = np.array([0.12, 0.17, 0.17, 0.16, 0.13, 0.11, 0.08, 0.06])
THOUSANDS = (".", ",", "'", " ")  # 1.000, 1,000, 1'000, 1 000
TRAILING = (".-", ",-", "=", "/-", ".", ",")  # 25,- as people close an amount
SIGNS = ("-", "+")
THOUSANDS_CHANCE = 0.35  # a number of four digits or more with its thousands marked
DECIMAL_CHANCE = 0.15  # an amount with two decimals after a comma or point
TRAILING_CHANCE = 0.15
SIGN_CHANCE = 0.05
STYLE_WEIGHTS = {"mixed": 0.4, **{style: 0.1 for style in STYLES if style != "mixed"}}
OVERLAP_CHANCE = 0.25  # digits pushed together until they touch or overlap
JOIN_CHANCE = 0.2  # a connecting stroke from one digit to the next, as joined writing has
CLUTTER = {  # how often a field shows each kind of clutter
    "ruled": 0.2,  # a ruled line under or through the writing
    "box": 0.15,  # a printed box around it
    "cells": 0.08,  # comb cell walls between the digits
    "column": 0.15,  # a table's column line beside it
    "print": 0.12,  # printed text at an edge
    "neighbour": 0.1,  # part of a neighbouring field's writing cut at the edge
}
LOW_RESOLUTION_CHANCE = 0.15  # scanned small and blown up again
JPEG_CHANCE = 0.3
SCAN_EFFECTS = {"lighting": 0.3, "noise": 0.3, "specks+edge": 0.1, "inverted": 0.1}  # watcher.model.synthetic's


@dataclass(frozen=True)
class DigitPool:
    """Real digits by population (MNIST, USPS, ARDIS), each as 28x28 uint8 ink bright on black, with labels."""

    images: tuple[np.ndarray, ...]
    labels: tuple[np.ndarray, ...]
    weights: tuple[float, ...]

    def draw(self, digits: list[int], rng: np.random.Generator) -> list[np.ndarray]:
        """One image per digit value, all from one population, as one writer's number comes from one hand."""
        source = int(rng.choice(len(self.images), p=np.asarray(self.weights) / sum(self.weights)))
        if not set(digits) <= set(self.labels[source].tolist()):
            source = 0  # a small population may lack a digit; the first (MNIST's) holds every one
        images, labels = self.images[source], self.labels[source]
        return [images[rng.choice(np.flatnonzero(labels == digit))] for digit in digits]


def draw_text(rng: np.random.Generator) -> str:
    """A number as written: its digits, and where the writer put them, separators, a sign and trailing marks."""
    length = int(rng.choice(LENGTHS, p=LENGTH_WEIGHTS))
    digits = "".join(str(d) for d in rng.integers(0, 10, length))
    if length > 1 and digits[0] == "0" and rng.random() < 0.8:
        digits = str(rng.integers(1, 10)) + digits[1:]
    text = digits
    if length >= 4 and rng.random() < THOUSANDS_CHANCE:
        separator = str(rng.choice(THOUSANDS))
        groups = [digits[max(0, end - 3) : end] for end in range(length, 0, -3)][::-1]
        text = separator.join(groups)
    elif length >= 3 and rng.random() < DECIMAL_CHANCE:
        text = digits[:-2] + str(rng.choice((",", "."))) + digits[-2:]
    if rng.random() < TRAILING_CHANCE:
        text += str(rng.choice(TRAILING))
    if rng.random() < SIGN_CHANCE:
        text = str(rng.choice(SIGNS)) + text
    return text


def label_of(text: str) -> str:
    """The reader's target: digits as written, each mark as MARK, spaces as nothing (a gap is no symbol)."""
    return "".join(char if char.isdigit() else MARK for char in text if char != " ")


def draw_field(pool: DigitPool, rng: np.random.Generator, *, style: str | None = None) -> tuple[np.ndarray, str]:
    """A scan of one written number with its clutter, as a cut-out field; and its text as written. The writer's
    style is drawn from STYLE_WEIGHTS unless given."""
    text = draw_text(rng)
    return write_field(text, pool, rng, style=style), text


def write_field(text: str, pool: DigitPool, rng: np.random.Generator, *, style: str | None = None) -> np.ndarray:
    """A scan of `text` (digits, separators, marks) written by one writer of `style` (drawn when None), with
    clutter, as a cut-out field."""
    if style is None:
        style = str(rng.choice(list(STYLE_WEIGHTS), p=list(STYLE_WEIGHTS.values())))
    writer = draw_writer(style, rng)
    ink = _write(text, pool, writer, rng)
    ink = _with_clutter(ink, pool, writer, rng)
    effects = {effect for effect, chance in SCAN_EFFECTS.items() if rng.random() < chance}
    scan = print_on_paper(ink, rng, effects=effects)
    return _captured(scan, rng)


def _write(text: str, pool: DigitPool, writer: Writer, rng: np.random.Generator) -> np.ndarray:
    """Float32 ink coverage of the text in one hand, with margins of paper around it."""
    height = writer.height_px
    digits = pool.draw([int(char) for char in text if char.isdigit()], rng)
    pen = max(1, round(writer.pen_width * height))
    spacing = rng.uniform(-0.05, 0.4) * height
    if rng.random() < OVERLAP_CHANCE:
        spacing = rng.uniform(-0.25, 0.0) * height
    drift = rng.uniform(-0.06, 0.06) * height
    pieces: list[tuple[np.ndarray, str]] = []
    for char in text:
        if char.isdigit():
            own = replace(writer, height_px=max(8, round(height * rng.uniform(0.9, 1.1))))
            pieces.append((draw_digit(digits.pop(0), own, rng), char))
        else:
            pieces.append((_mark(char, height=height, pen=pen, rng=rng), char))
    reach = int(abs(drift) * len(pieces) + 0.2 * height) + pen + 2
    width = sum(piece.shape[1] for piece, _ in pieces) + int(height * 0.6 * len(pieces)) + 2 * height
    canvas = np.zeros((height + 2 * reach + height // 2, width), np.float32)
    x, previous = height // 2, None
    for index, (piece, char) in enumerate(pieces):
        baseline = reach + height - round(drift * index + rng.uniform(-0.04, 0.04) * height)
        top = _mark_top(char, piece, baseline=baseline, height=height)
        top = int(np.clip(top, 0, canvas.shape[0] - piece.shape[0]))
        spot = canvas[top : top + piece.shape[0], x : x + piece.shape[1]]
        np.maximum(spot, piece[:, : spot.shape[1]], out=spot)
        if previous is not None and char.isdigit() and rng.random() < JOIN_CHANCE:
            _join(canvas, previous, (x, top, piece), pen=pen)
        previous = (x, top, piece) if char.isdigit() else None
        gap = spacing + rng.uniform(-0.05, 0.05) * height
        if char == " ":
            gap += rng.uniform(0.3, 0.6) * height
        x = max(0, x + piece.shape[1] + round(gap))
    rows, cols = np.nonzero(canvas > 0.05)
    if not len(rows):
        return canvas
    tight = canvas[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    margin_y = max(2, int(rng.uniform(0.1, 0.8) * height))
    margin_x = max(2, int(rng.uniform(0.1, 1.0) * height))
    return np.pad(tight, ((margin_y, margin_y), (margin_x, margin_x)))


def _mark(char: str, *, height: int, pen: int, rng: np.random.Generator) -> np.ndarray:
    """A separator or mark drawn by the writer's pen: a dot, comma, apostrophe, dash, equals, slash or plus."""
    if char == " ":
        return np.zeros((1, 1), np.float32)
    side = max(3, height)
    canvas = np.zeros((side, side), np.uint8)
    h = side - 1
    jitter = rng.uniform(0.85, 1.15)

    def line(a: tuple[float, float], b: tuple[float, float]) -> None:
        cv2.line(canvas, (round(a[0] * h), round(a[1] * h)), (round(b[0] * h), round(b[1] * h)), 255, pen)

    if char == ".":
        cv2.circle(canvas, (h // 2, h // 2), max(1, round(pen * 0.7 * jitter)), 255, -1)
    elif char == ",":
        line((0.55, 0.3), (0.4, 0.3 + 0.35 * jitter))
    elif char == "'":
        line((0.55, 0.2), (0.45, 0.2 + 0.25 * jitter))
    elif char == "-":
        line((0.1, 0.5), (0.1 + 0.45 * jitter, 0.5 + rng.uniform(-0.05, 0.05)))
    elif char == "=":
        line((0.1, 0.4), (0.1 + 0.5 * jitter, 0.4))
        line((0.1, 0.62), (0.1 + 0.5 * jitter, 0.62))
    elif char == "/":
        line((0.55, 0.05), (0.15, 0.95))
    elif char == "+":
        line((0.1, 0.5), (0.7, 0.5))
        line((0.4, 0.2), (0.4, 0.8))
    rows, cols = np.nonzero(canvas)
    return canvas[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(np.float32) / 255.0


def _mark_top(char: str, piece: np.ndarray, *, baseline: int, height: int) -> int:
    """Where a piece's top sits: digits on the baseline, a full stop on it, a comma below, a dash in the middle."""
    tall = int(piece.shape[0])
    if char in ".,":
        return baseline - tall + (tall // 2 if char == "," else 0)
    if char == "'":
        return baseline - height
    if char in "-=+":
        return baseline - height // 2 - tall // 2
    return baseline - tall


Placed = tuple[int, int, np.ndarray]  # a digit's ink and where it lies on the canvas: (left, top, ink)


def _join(canvas: np.ndarray, previous: Placed, current: Placed, *, pen: int) -> None:
    """A connecting stroke from the bottom right of one digit's ink to the left of the next one's."""
    (x0, top0, ink0), (x1, top1, ink1) = previous, current
    rows0, cols0 = np.nonzero(ink0 > 0.5)
    rows1, cols1 = np.nonzero(ink1 > 0.5)
    if not len(rows0) or not len(rows1):
        return
    start = max(zip(rows0 + cols0, rows0, cols0, strict=True))[1:]  # the ink furthest down and right
    end = min(zip(cols1 - rows1 // 3, rows1, cols1, strict=True))[1:]  # the leftmost ink, lower preferred
    stroke = np.zeros(canvas.shape, np.uint8)
    cv2.line(stroke, (x0 + int(start[1]), top0 + int(start[0])), (x1 + int(end[1]), top1 + int(end[0])), 255, pen)
    np.maximum(canvas, stroke.astype(np.float32) / 255.0, out=canvas)


def _with_clutter(ink: np.ndarray, pool: DigitPool, writer: Writer, rng: np.random.Generator) -> np.ndarray:
    """The field with what surrounds real writing: ruled lines, boxes, cell walls, column lines, print, neighbours."""
    height, width = ink.shape
    page = ink.copy()
    printed = np.zeros(ink.shape, np.uint8)
    thickness = int(rng.integers(1, max(2, height // 25) + 1))
    if rng.random() < CLUTTER["ruled"]:
        y = int(rng.uniform(0.55, 0.95) * height)
        cv2.line(printed, (0, y), (width - 1, y + int(rng.integers(-2, 3))), 255, thickness)
    if rng.random() < CLUTTER["box"]:
        inset = int(rng.integers(0, 3))
        cv2.rectangle(printed, (inset, inset), (width - 1 - inset, height - 1 - inset), 255, thickness)
    if rng.random() < CLUTTER["cells"]:
        step = int(rng.uniform(0.7, 1.1) * writer.height_px)
        for x in range(int(rng.integers(0, step)), width, step):
            cv2.line(printed, (x, height - 1 - height // 4), (x, height - 1), 255, thickness)
    if rng.random() < CLUTTER["column"]:
        x = int(rng.choice((rng.integers(0, 3), width - 1 - rng.integers(0, 3))))
        cv2.line(printed, (x, 0), (x, height - 1), 255, thickness + 1)
    if rng.random() < CLUTTER["print"]:
        words = "".join(rng.choice(list("ABCDEFGHKLMNRSTabcdeghiklmnorstu  "), size=int(rng.integers(4, 14))))
        scale = max(0.25, height / 200)
        y = int(rng.choice((height - 3, int(12 * scale) + 2)))
        x = int(rng.integers(0, max(1, width // 3)))
        cv2.putText(printed, words, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 1)
    page = np.maximum(page, printed.astype(np.float32) / 255.0)
    if rng.random() < CLUTTER["neighbour"]:
        neighbour = draw_digit(pool.draw([int(rng.integers(0, 10))], rng)[0], writer, rng)
        cut = neighbour[:, : max(1, neighbour.shape[1] // 3)]
        cut = cut[:height, :width]  # a big writer's neighbour beside a field of one narrow digit
        if rng.random() < 0.5:
            page[: cut.shape[0], : cut.shape[1]] = np.maximum(page[: cut.shape[0], : cut.shape[1]], cut[:, ::-1])
        else:
            page[: cut.shape[0], width - cut.shape[1] :] = np.maximum(page[: cut.shape[0], width - cut.shape[1] :], cut)
    return np.asarray(page, np.float32)


def _captured(scan: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The scan as a scanner or phone saved it: sometimes at low resolution, sometimes as JPEG."""
    if scan.dtype != np.uint8:
        return scan
    if rng.random() < LOW_RESOLUTION_CHANCE:
        shrink = rng.uniform(0.4, 0.7)
        small = cv2.resize(scan, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        scan = cv2.resize(small, (scan.shape[1], scan.shape[0]), interpolation=cv2.INTER_LINEAR)
    if rng.random() < JPEG_CHANCE:
        encoded = cv2.imencode(".jpg", scan, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 90))])[1]
        scan = np.asarray(cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED))
    return scan
