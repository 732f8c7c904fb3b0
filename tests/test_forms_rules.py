from __future__ import annotations

import pytest

from watcher.forms.rules import CellReading, FieldVerdict, judge, luhn_valid
from watcher.forms.template import Field
from watcher.vocabulary import Status

SURE = 0.99


def _cells(text: str) -> list[CellReading | None]:
    """A comb's readings from a picture of it: a digit per written cell, '_' for an empty one."""
    return [None if char == "_" else CellReading(char, SURE) for char in text]


ACCOUNT = Field("account", (0, 0, 80, 10), "comb", cells=8, check="luhn")
READING = Field("reading", (0, 0, 60, 10), "number", digits=(1, 6))
MONTH = Field("month", (0, 0, 20, 10), "number", range=(1, 12))
YEAR = Field("year", (0, 0, 40, 10), "number", digits=(4, 4))
CODE = Field("code", (0, 0, 40, 10), "comb", cells=4)


def test_a_comb_reads_its_written_cells_in_order_leading_zeros_kept() -> None:
    verdict = judge(CODE, _cells("0420"), review_below=None)
    assert verdict == FieldVerdict(Status.OK, "0420", pytest.approx(SURE**4), "")


def test_a_comb_written_short_of_its_cells_is_fine() -> None:
    assert judge(CODE, _cells("42__"), review_below=None).prediction == "42"
    assert judge(CODE, _cells("_42_"), review_below=None).status == Status.OK


def test_an_empty_cell_between_written_ones_needs_review() -> None:
    verdict = judge(CODE, _cells("4_2_"), review_below=None)
    assert verdict.status == Status.LOW_CONFIDENCE and verdict.prediction == "42"
    assert verdict.detail == "code: cell 2 empty between written cells"
    assert judge(CODE, _cells("4__2"), review_below=None).detail == "code: cells 2, 3 empty between written cells"


def test_an_empty_field_is_no_digit_and_its_rules_do_not_apply() -> None:
    assert judge(ACCOUNT, _cells("________"), review_below=0.9) == FieldVerdict(Status.NO_DIGIT)
    assert judge(MONTH, [None], review_below=0.9) == FieldVerdict(Status.NO_DIGIT)
    assert judge(MONTH, [CellReading("", 0.0)], review_below=0.9) == FieldVerdict(Status.NO_DIGIT)


@pytest.mark.parametrize(
    ("field", "written", "detail"),
    [
        (MONTH, "14", "month 14 outside 1–12"),
        (MONTH, "0", "month 0 outside 1–12"),
        (READING, "1234567", "reading has 7 digits, expected 1–6"),
        (YEAR, "202", "year has 3 digits, expected 4"),
        (ACCOUNT, "79927390", "account 79927390 fails the Luhn check"),
    ],
)
def test_a_broken_rule_needs_review_whatever_the_confidence(field: Field, written: str, detail: str) -> None:
    cells = _cells(written) if field.kind == "comb" else [CellReading(written, 1.0)]
    for review_below in (None, 0.5):
        verdict = judge(field, cells, review_below=review_below)
        assert verdict.status == Status.LOW_CONFIDENCE and verdict.detail == detail
        assert verdict.prediction == written


@pytest.mark.parametrize(
    ("field", "written"), [(MONTH, "12"), (MONTH, "01"), (READING, "123456"), (YEAR, "2026"), (ACCOUNT, "79927398")]
)
def test_a_kept_rule_leaves_the_field_ok(field: Field, written: str) -> None:
    cells = _cells(written) if field.kind == "comb" else [CellReading(written, SURE)]
    assert judge(field, cells, review_below=0.9) == FieldVerdict(
        Status.OK, written, pytest.approx(SURE ** len(cells)), ""
    )


def test_every_broken_rule_is_told() -> None:
    field = Field("total", (0, 0, 40, 10), "number", digits=(1, 2), range=(0, 50))
    assert judge(field, [CellReading("120", SURE)], review_below=None).detail == (
        "total has 3 digits, expected 1–2; total 120 outside 0–50"
    )


def test_a_field_the_model_is_unsure_of_goes_to_review_only_when_review_is_on() -> None:
    unsure = [CellReading("7", 0.95), CellReading("1", 0.9)]
    assert judge(Field("n", (0, 0, 20, 10), "comb", cells=2), unsure, review_below=0.9).status == Status.LOW_CONFIDENCE
    assert judge(Field("n", (0, 0, 20, 10), "comb", cells=2), unsure, review_below=None).status == Status.OK


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("79927398713", True),
        ("79927398710", False),
        ("0", True),
        ("18", True),
        ("4539578763621486", True),
        ("4539578763621487", False),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid
