"""A field's verdict from what was read in its cells: the digits in order, its rules checked (SPEC "Form templates")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from watcher.forms.template import Field
from watcher.vocabulary import Status


class CellReading(NamedTuple):
    """What the model read in one crop of a field: its digits (one for a cell, several for a number) and how sure."""

    prediction: str
    confidence: float


class FieldVerdict(NamedTuple):
    """A field's results row, in numbers: status, the digits as written, the product of confidences, the rule broken."""

    status: Status
    prediction: str = ""
    confidence: float | None = None
    detail: str = ""


def judge(field: Field, readings: Sequence[CellReading | None], *, review_below: float | None) -> FieldVerdict:
    """The field's verdict from its crops' readings in order (None for an empty crop).

    An empty field is no_digit. A broken rule makes it low_confidence with the rule in `detail`, whatever the
    model's confidence and whether review is on; otherwise it is low_confidence below `review_below` (None: no
    review).
    """
    written = {index: reading for index, reading in enumerate(readings) if reading is not None and reading.prediction}
    if not written:
        return FieldVerdict(Status.NO_DIGIT)
    prediction = "".join(reading.prediction for reading in written.values())
    confidence = math.prod(reading.confidence for reading in written.values())
    broken = [rule for rule in (_gap(field, list(written)), *broken_rules(field, prediction)) if rule]
    unsure = review_below is not None and confidence < review_below
    status = Status.LOW_CONFIDENCE if broken or unsure else Status.OK
    return FieldVerdict(status, prediction, confidence, "; ".join(broken))


def broken_rules(field: Field, prediction: str) -> list[str]:
    """The field's rules that the digits written break, each in words naming the field (none: all kept)."""
    broken = []
    if field.digits is not None and not field.digits[0] <= len(prediction) <= field.digits[1]:
        broken.append(f"{field.name} has {len(prediction)} digits, expected {_span(field.digits)}")
    if field.range is not None and not field.range[0] <= int(prediction) <= field.range[1]:
        broken.append(f"{field.name} {prediction} outside {_span(field.range)}")
    if field.check == "luhn" and not luhn_valid(prediction):
        broken.append(f"{field.name} {prediction} fails the Luhn check")
    return broken


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check that card, account and IMEI numbers carry in their last digit."""
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _gap(field: Field, written: list[int]) -> str:
    """An empty comb cell between written ones, which may be a digit missed (or one the writer skipped)."""
    gaps = [index + 1 for index in range(written[0], written[-1]) if index not in written]
    if not gaps:
        return ""
    cells = ", ".join(map(str, gaps))
    return f"{field.name}: cell{'s' if len(gaps) > 1 else ''} {cells} empty between written cells"


def _span(bounds: tuple[int, int]) -> str:
    low, high = bounds
    return str(low) if low == high else f"{low}–{high}"
