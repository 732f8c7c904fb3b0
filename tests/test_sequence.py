"""The sequence reader's parts that need no trained model: decoding, the field's picture, the field generator."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from watcher.model.fields import MARK, DigitPool, draw_field, draw_text, label_of
from watcher.model.sequence import (
    BLANK_CLASS,
    EVIDENCE,
    MARK_CLASS,
    SYMBOLS,
    Judge,
    StringReading,
    decode,
    evidence,
    likeliest_strings,
    on_ink,
    second_opinion,
)
from watcher.vision.field import FIELD_HEIGHT, FIELD_WIDTH, field_image, writing_box

SAMPLE = Path(__file__).parent / "data" / "mnist_sample.npz"


def frames_of(symbols: list[int], *, sure: float = 0.98) -> np.ndarray:
    """Slices that say each symbol with `sure` probability, the rest spread over the others."""
    frames = np.full((len(symbols), SYMBOLS), (1 - sure) / (SYMBOLS - 1), np.float32)
    frames[np.arange(len(symbols)), symbols] = sure
    return frames


def test_decoding_collapses_repeats_and_drops_blanks_and_marks() -> None:
    b, m = BLANK_CLASS, MARK_CLASS
    reading = decode(frames_of([b, 2, 2, b, 5, m, m, b, 0, b, 0, 0, b, m, b]))
    assert reading.digits == "2500"  # 25.00 with a trailing mark: the marks are read, and left out
    assert len(reading.top3) == 4
    assert all(top[0][0] == int(digit) for top, digit in zip(reading.top3, reading.digits, strict=True))
    assert reading.top3[0][0][1] > 0.98  # shares among the digits alone: more than the slice's own 0.98


def test_a_doubtful_slice_lowers_the_whole_string() -> None:
    """A digit the reader is unsure was written at all (blank or 7 at one slice) makes the string unsure, as a
    dropped digit must: the confidence is the path's probability, not the digits' product."""
    b = BLANK_CLASS
    sure = decode(frames_of([b, 1, b, 7, b, 3, b]))
    frames = frames_of([b, 1, b, 7, b, 3, b])
    frames[3] = 0.0
    frames[3, 7], frames[3, b] = 0.45, 0.55  # the 7 may not be there
    doubtful = decode(frames)
    assert sure.digits == "173" and sure.confidence > 0.85
    assert doubtful.digits == "13" and doubtful.confidence < 0.6


def test_a_strings_probability_sums_every_path_that_spells_it_and_names_its_rival() -> None:
    """A 5 written over two slices, the second of them half blank, is a 5 on both paths: the string is sure where
    the best path is not. A 7 the reader may not have seen leaves two strings nearly as likely as each other."""
    b, sure = BLANK_CLASS, 0.98
    frames = frames_of([b, 5, 5, b])
    frames[2] = 0.0
    frames[2, 5], frames[2, b] = 0.5, 0.5
    strings = dict(likeliest_strings(frames))
    assert decode(frames).confidence == pytest.approx(sure**3 * 0.5)
    # Both halves' paths (and the faint ones through the blanks' own doubt), about twice the best path alone.
    assert sure**3 <= strings["5"] < 1 and max(strings, key=strings.__getitem__) == "5"

    frames = frames_of([b, 1, b, 7, b, 3, b])
    frames[3] = 0.0
    frames[3, 7], frames[3, b] = 0.45, 0.55
    reading = decode(frames)
    (first, dropped), (second, kept) = reading.strings[:2]
    assert (first, second) == ("13", "173") and kept / dropped == pytest.approx(0.45 / 0.55, rel=1e-2)
    margins = {}
    for digits in ("13", "173", "18"):
        facts = evidence(reading, digits, np.eye(10)[[int(d) for d in digits]])
        margins[digits] = dict(zip(EVIDENCE, facts, strict=True))["log_margin"]
    assert margins["13"] == pytest.approx(np.log(0.55 / 0.45), abs=0.01)
    assert margins["173"] == pytest.approx(np.log(0.45 / 0.55), abs=0.01)
    assert margins["18"] < np.log(1e-6), "a string the reader's slices cannot spell is far from sure"
    assert sum(kept for _, kept in decode(frames_of([b, 4, b, 2, b])).strings) == pytest.approx(1.0, abs=0.1)


def test_each_digit_is_placed_between_the_gaps_to_its_neighbours() -> None:
    b, m = BLANK_CLASS, MARK_CLASS
    reading = decode(frames_of([b, 2, 2, b, m, b, 5, b] + [b] * (FIELD_WIDTH // 4 - 8)))
    # Slices are 4 px: the 2 runs over slices 1-2, the 5 is at slice 6; the gap (slices 3-5) is split midway.
    assert reading.columns == ((0, 18), (18, FIELD_WIDTH))
    assert decode(frames_of([b] * (FIELD_WIDTH // 4))).columns == ()


def test_no_digit_is_read_on_blank_paper_but_a_digit_beside_its_stroke_stays() -> None:
    b = BLANK_CLASS
    slices = FIELD_WIDTH // 4
    # 1, a 0 read in a gap three slices wide with no ink at all, 1, then a 7 read one slice beside its thin stroke.
    frames = frames_of([b, 1, b, b, 0, b, b, 1, b, 7] + [b] * (slices - 10))
    frames[4] = 0.0
    frames[4, 0], frames[4, b] = 0.6, 0.4
    field = np.zeros((FIELD_HEIGHT, FIELD_WIDTH), np.float32)
    field[4:28, 4:7] = field[4:28, 28:31] = 1.0  # the 1s' strokes, in slices 1 and 7
    field[4:28, 33:34] = 0.6  # the 7's one-pixel stroke, in slice 8
    assert decode(frames).digits == "1017"

    kept = on_ink(frames, field)

    assert decode(kept).digits == "117"
    np.testing.assert_allclose(kept.sum(axis=1), 1.0, rtol=1e-6)
    assert kept[4, b] > 0.99 and np.isclose(kept[9, 7], frames[9, 7])  # the gap is blank paper; the 7's slice as it was


def test_the_digit_model_settles_a_digit_the_reader_doubts_and_never_raises_the_confidence() -> None:
    def read_as(one: float, seven: float) -> StringReading:
        b = BLANK_CLASS
        frames = frames_of([b, 1, b, 3, b])
        frames[1] = 0.0
        frames[1, 1], frames[1, 7], frames[1, 4] = one, seven, 1 - one - seven  # a 1, or a crossed 7?
        return decode(frames)

    seven, three = np.full((2, 10), 0.001, np.float32)
    seven[7] = three[3] = 0.99
    doubted = read_as(0.55, 0.4)
    settled = second_opinion(doubted, np.stack([seven, three]))
    assert (doubted.digits, settled.digits) == ("13", "73")
    assert [digit for digit, _ in settled.top3[0]] == [7, 1, 4]
    assert settled.confidence == doubted.confidence, "the pair is surer of the 7 than the reader was of its 1"
    sure = read_as(0.9, 0.08)
    overruled = second_opinion(sure, np.stack([seven, three]))
    assert overruled.digits == "73" and overruled.confidence < 0.9 * sure.confidence
    agreed = second_opinion(sure, np.stack([np.eye(10, dtype=np.float32)[1], three]))
    assert agreed.digits == "13" and agreed.confidence == sure.confidence


def test_the_judge_trusts_a_reading_the_digit_model_agrees_with_and_doubts_one_it_does_not() -> None:
    b = BLANK_CLASS
    reading = decode(frames_of([b, 1, b, 7, b, 3, b]))
    agree = np.eye(10, dtype=np.float32)[[1, 7, 3]] * 0.98 + 0.002
    disagree = agree[[0, 2, 2]]  # the digit model sees a 3 where the reader read its 7
    judge = Judge(weights=(1.0, 0.0, 1.0, 1.0, 2.0, 2.0, -0.2, 0.0), bias=0.0)
    trusted, doubted = second_opinion(reading, agree, judge), second_opinion(reading, disagree, judge)
    assert trusted.digits == doubted.digits == "173"  # the reader was sure of its 7: the digit model does not overrule
    assert trusted.confidence > 0.9 > 0.5 > doubted.confidence
    facts = dict(zip(EVIDENCE, evidence(reading, "173", disagree), strict=True))
    assert facts["digits"] == 3 and facts["agreement"] == pytest.approx(2 / 3) and facts["agreed"] == 0
    assert facts["log_least_second"] < np.log(0.01) and facts["log_path"] == pytest.approx(np.log(reading.confidence))


def test_a_field_is_cropped_to_its_writing_at_the_reader_height() -> None:
    ink = np.zeros((200, 600), np.float32)
    ink[50:150, 100:300] = 1.0
    image = field_image(ink)
    assert image is not None and image.shape == (FIELD_HEIGHT, FIELD_WIDTH)
    columns = np.flatnonzero(image.max(axis=0) > 0.5)
    assert columns[0] <= 3 and 50 <= columns[-1] <= 70  # twice as wide as tall, a margin around it, on the left
    assert field_image(np.zeros((50, 50), np.float32)) is None


def test_a_small_number_in_a_large_cell_is_framed_without_the_cells_walls_and_print() -> None:
    """A register's cell: the number small near the top, the cell's wall down one side, a rule across, printed
    words along the bottom and specks. The reader sees the number at its own height, not the cell shrunk."""
    with np.load(SAMPLE) as data:
        x, y = data["x"], data["y"]
    ink = np.zeros((240, 140), np.float32)
    four, two = x[list(y).index(4)], x[list(y).index(2)]
    ink[40:68, 40:68] = np.maximum(ink[40:68, 40:68], four / 255.0)
    ink[40:68, 62:90] = np.maximum(ink[40:68, 62:90], two / 255.0)
    ink[:, 130:133] = 1.0  # the wall
    ink[200:202, 5:125] = 1.0  # a rule
    for left in range(10, 110, 9):  # printed words: small letters along the bottom
        ink[215:222, left : left + 6] = 1.0
    ink[150, 20] = ink[100, 110] = 1.0  # specks
    box = writing_box(ink > 0.1)
    assert box is not None
    left, top, right, bottom = box
    assert 38 <= left <= 48 and 38 <= top <= 46 and 82 <= right <= 90 and 62 <= bottom <= 68
    lone_one = np.zeros((40, 30), np.float32)
    lone_one[2:38, 13:17] = 1.0  # a 1 as tall as its tight field is the writing, not a wall
    assert writing_box(lone_one > 0.1) == (13, 2, 17, 38)


def test_what_a_faint_scan_leaves_of_a_cells_walls_is_not_its_number() -> None:
    """A register cell scanned faint: its wall by the left side broken into sticks taller than the small number,
    and a slanting rule down the right side. The number is framed; a 1 by the side of a tight field is not a wall."""
    with np.load(SAMPLE) as data:
        x, y = data["x"], data["y"]
    ink = np.zeros((200, 90), np.float32)
    ink[80:100, 35:55] = cv2.resize(x[list(y).index(3)], (20, 20)) / 255.0
    ink[80:100, 52:72] = np.maximum(ink[80:100, 52:72], cv2.resize(x[list(y).index(6)], (20, 20)) / 255.0)
    ink[20:46, 2:6] = ink[140:170, 1:5] = 1.0  # what is left of the wall
    for row in range(200):  # the slanting rule
        ink[row, 84 - row // 40 : 86 - row // 40] = 1.0
    box = writing_box(ink > 0.1)
    assert box is not None and box[0] >= 33 and box[2] <= 74 and box[1] >= 78 and box[3] <= 102
    tight = np.zeros((40, 60), np.float32)
    tight[4:36, 1:4] = 1.0  # a 1 by the field's side...
    tight[6:36, 12:34] = cv2.resize(x[list(y).index(5)], (22, 30)) / 255.0  # ...and the rest of its number
    box = writing_box(tight > 0.1)
    assert box is not None and box[0] == 1


def test_digits_a_thin_pen_left_in_short_pieces_stay_in_their_number() -> None:
    """A hairline pen's skips leave each digit in strokes half its height, further apart than their own heights
    though as near as the digits': the number is framed whole, not its first digit alone."""
    ink = np.zeros((60, 200), np.float32)
    for left in (20, 80, 140):  # three digits, each an upper and a lower stroke 24 px tall, 40 px in all
        ink[10:34, left : left + 4] = 1.0
        ink[26:50, left + 10 : left + 14] = 1.0
    box = writing_box(ink > 0.1)
    assert box is not None and box[0] == 20 and box[2] == 154


def test_a_neighbours_writing_reaching_in_at_the_edge_is_not_the_cells_number() -> None:
    """The cell's own number lies wholly inside it; a taller stroke of the next column's writing is cut by the
    cell's edge. The number is framed, though it is not the tallest line."""
    with np.load(SAMPLE) as data:
        x, y = data["x"], data["y"]
    ink = np.zeros((160, 200), np.float32)
    ink[60:88, 20:48] = x[list(y).index(2)] / 255.0
    ink[60:88, 44:72] = np.maximum(ink[60:88, 44:72], x[list(y).index(5)] / 255.0)
    ink[40:90, 192:200] = x[list(y).index(6)][:, 10:18].repeat(2, axis=0)[:50] / 255.0  # cut by the right edge
    box = writing_box(ink > 0.1)
    assert box is not None and box[0] >= 18 and box[2] <= 74


def test_writing_wider_than_the_canvas_is_squeezed_to_fit() -> None:
    ink = np.zeros((40, 2000), np.float32)
    ink[5:35, 5:1995] = 1.0
    image = field_image(ink)
    assert image is not None and image[:, -1].max() > 0.5


def test_a_label_keeps_its_marks_and_drops_spaces() -> None:
    assert label_of("1.000,-") == f"1{MARK}000{MARK}{MARK}"
    assert label_of("3 500") == "3500"
    assert label_of("-25") == f"{MARK}25"


def test_written_numbers_have_their_digits_and_only_separators_between_groups() -> None:
    rng = np.random.default_rng(0)
    texts = [draw_text(rng) for _ in range(2000)]
    digits = ["".join(c for c in text if c.isdigit()) for text in texts]
    assert {len(d) for d in digits} == set(range(1, 9))
    assert any(" " in text for text in texts) and any(text.endswith(",-") for text in texts)
    assert all(text.count(".") + text.count(",") <= 1 + len(d) // 3 + 2 for text, d in zip(texts, digits, strict=True))


@pytest.mark.parametrize("style", ["marker", "ballpoint", "mixed"])
def test_a_drawn_field_is_a_scan_of_its_text(style: str) -> None:
    sample = np.load(SAMPLE)
    pool = DigitPool((sample["x"],), (sample["y"],), (1.0,))
    first = draw_field(pool, np.random.default_rng(3), style=style)
    again = draw_field(pool, np.random.default_rng(3), style=style)
    scan, text = first
    assert np.array_equal(scan, again[0]) and text == again[1]  # a seed gives the same field: data can be cached
    assert scan.ndim in (2, 3) and min(scan.shape[:2]) >= 16
    assert any(c.isdigit() for c in text)


def test_a_neighbours_writing_wider_than_a_narrow_field_is_cut_to_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """A third of a big writer's neighbouring digit may be wider than a field of one narrow 1: cut to the field, it
    no longer stops rendering (seed 2's 1,335th field of bench/fieldset.py)."""
    from watcher.model import fields
    from watcher.model.styles import Writer

    sample = np.load(SAMPLE)
    pool = DigitPool((sample["x"],), (sample["y"],), (1.0,))
    monkeypatch.setitem(fields.CLUTTER, "neighbour", 1.0)
    ink = np.zeros((40, 12), np.float32)
    for seed in range(20):
        cluttered = fields._with_clutter(ink, pool, Writer(height_px=120), np.random.default_rng(seed))
        assert cluttered.shape == ink.shape
