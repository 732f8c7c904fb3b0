from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FakeClassifier
from tests.native_hang.hang import hang_in_c
from watcher.intake.limits import LimitsConfig
from watcher.model.sequence import EVIDENCE, Judge, StringReading
from watcher.recognise import PageRun, Prepared, PreparedPage, Preparer, prepare, read
from watcher.vision.digits import Candidates
from watcher.vision.field import FIELD_HEIGHT, FIELD_WIDTH
from watcher.vision.options import Option, choose


def crash_on_a_bomb(path: Path, name: str, first_page: int) -> Prepared:
    """A task standing in for a decoder that dies on one file."""
    if name == "bomb.png":
        os._exit(11)
    return Prepared.one_page(Candidates.row(np.zeros((1, 28, 28), np.float32)), sha256=name)


def report_opencv_threads(path: Path, name: str, first_page: int) -> Prepared:
    """A task that tells how many threads OpenCV may use in the worker running it."""
    import cv2

    return Prepared(sha256=name, error=str(cv2.getNumThreads()))


def test_workers_run_opencv_on_one_thread_each(tmp_path: Path) -> None:
    preparer = Preparer(report_opencv_threads, workers=2)
    try:
        assert [p.error for p in preparer.submit([PageRun(tmp_path / "a.png", "a.png")] * 4)()] == ["1"] * 4
    finally:
        preparer.close()


@pytest.mark.slow
def test_a_file_that_kills_a_worker_is_an_error_and_the_rest_are_read(tmp_path: Path) -> None:
    preparer = Preparer(crash_on_a_bomb, workers=2)
    try:
        names = ["a.png", "bomb.png", "b.png"]
        prepared = preparer.submit([PageRun(tmp_path / n, n) for n in names])()
        assert [p.error for p in prepared] == ["", "the image crashed the decoder", ""]
        assert [p.sha256 for p in prepared] == ["a.png", "", "b.png"]
        again = preparer.submit([PageRun(tmp_path / "c.png", "c.png")])()
        assert again[0].sha256 == "c.png", "the pool is whole again"
    finally:
        preparer.close()


def hang_on_a_trap(path: Path, name: str, first_page: int) -> Prepared:
    """A task standing in for a decoder stuck in C on one file, before its first page."""
    if name == "trap.png":
        hang_in_c()
    return Prepared.one_page(Candidates.row(np.zeros((1, 28, 28), np.float32)), sha256=name)


@pytest.mark.slow
def test_a_worker_stuck_in_c_is_killed_and_its_file_is_an_error(tmp_path: Path) -> None:
    preparer = Preparer(hang_on_a_trap, workers=2, page_timeout_s=0.5)
    try:
        names = ["a.png", "trap.png", "b.png"]
        prepared = preparer.submit([PageRun(tmp_path / n, n) for n in names])()
        assert [p.error for p in prepared] == ["", "file took longer than 0.5 s to open (limits.page_timeout_s)", ""]
        again = preparer.submit([PageRun(tmp_path / "c.png", "c.png")] * 3)()
        assert [p.sha256 for p in again] == ["c.png"] * 3, "the pool is whole again"
    finally:
        preparer.close()


def test_a_batch_is_one_model_call_and_numbers_read_left_to_right() -> None:
    classifier = FakeClassifier(confidence=0.9)
    one, three = np.zeros((28, 28), np.float32), np.zeros((28, 28), np.float32)
    one[10, :] = 1
    three[10:13, :] = 1
    prepared = [
        Prepared.one_page(Candidates.row(np.stack([one]))),
        Prepared(sha256="b", error="empty file"),
        Prepared.one_page(Candidates.row(np.zeros((0, 28, 28), np.float32))),
        Prepared(
            sha256="d",
            pages=(PreparedPage(1, Candidates.row(np.stack([three, one]))), PreparedPage(2, error="damaged PDF page")),
            page_count=2,
        ),
    ]
    readings = [reading for file_readings in read(prepared, classifier, review_below=0.85) for reading in file_readings]
    assert classifier.calls == [3]
    assert [(r.status, r.page) for r in readings] == [
        ("ok", 1),
        ("error", 1),
        ("no_digit", 1),
        ("low_confidence", 1),
        ("error", 2),
    ]
    assert readings[0].prediction == "1" and readings[0].confidence == pytest.approx(0.9)
    assert readings[1].detail == "empty file"
    assert readings[3].prediction == "31" and readings[3].confidence == pytest.approx(0.81)
    assert len(readings[3].top3) == 2


def test_the_geometrys_reading_stands_unless_the_model_is_much_surer_of_an_alternative() -> None:
    images = np.zeros((4, 28, 28), np.float32)
    # Group 0 read whole (image 0) or cut in two (images 1, 2); group 1 a mark, read (image 3) or left out.
    found = Candidates(
        images=images,
        options=(Option(0, 1, (0,), 0.0), Option(0, 1, (1, 2), -0.7), Option(1, 2, (), -1.2), Option(1, 2, (3,), 0.0)),
        pieces=2,
    )

    def sure(*confidences: float) -> np.ndarray:
        probabilities = np.full((4, 10), 0.0, np.float32)
        probabilities[:, 0] = confidences
        return probabilities

    assert choose(sure(0.99, 0.99, 0.99, 0.9), found) == [0, 3], "both readings sure: the geometry's stands"
    assert choose(sure(0.3, 0.99, 0.99, 0.9), found) == [1, 2, 3], "the whole is doubtful, the halves are not"
    assert choose(sure(0.99, 0.99, 0.99, 0.2), found) == [0], "a mark the model cannot read is left out"


def test_a_batch_of_candidates_is_one_model_call() -> None:
    classifier = FakeClassifier(confidence=0.9)
    one = np.zeros((28, 28), np.float32)
    one[10, :] = 1
    options = (Option(0, 1, (0,), 0.0), Option(0, 1, (1, 2), -0.7))
    found = Candidates(images=np.stack([one, one, one]), options=options, pieces=1)
    prepared = [Prepared.one_page(found), Prepared.one_page(Candidates.row(np.stack([one])))]
    readings = read(prepared, classifier, review_below=None)
    assert classifier.calls == [4]
    assert [[r.prediction for r in file_readings] for file_readings in readings] == [["1"], ["1"]]


def test_a_part_of_a_digit_loses_while_a_chosen_digit_is_reported_among_the_ten() -> None:
    # Read whole (image 0) or cut in two (images 1, 2): the model is as sure which digit each half would be, but
    # holds the halves to be no digit at all.
    found = Candidates(
        images=np.zeros((3, 28, 28), np.float32),
        options=(Option(0, 1, (0,), 0.0), Option(0, 1, (1, 2), 0.0)),
        pieces=1,
    )
    probabilities = np.zeros((3, 10), np.float32)
    probabilities[0, [8, 3]] = 0.6, 0.2  # the rest, 0.2, is no digit
    probabilities[1:, 1] = 0.3
    assert choose(probabilities, found) == [0]

    class Unsure:
        version = "test/1"
        reader = None

        def probabilities(self, digits: np.ndarray) -> np.ndarray:
            return probabilities[: len(digits)]

    ((reading,),) = read([Prepared.one_page(found)], Unsure(), review_below=0.7)
    assert (reading.prediction, reading.status) == ("8", "ok") and reading.confidence == pytest.approx(0.75)
    assert [digit for digit, _ in reading.top3[0][:2]] == [8, 3] and reading.top3[0][1][1] == pytest.approx(0.25)


def test_a_page_that_takes_too_long_is_an_error_and_the_next_run_of_pages_starts_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.documents import scanned_pdf
    from watcher import recognise

    def slow_on_page_two(image: np.ndarray, *, mode: str, cut: bool, bilevel: bool) -> None:
        if image[200:250, 100:150].mean() < 128:  # the black square of page 2 (see tests.documents.scan)
            time.sleep(5)

    monkeypatch.setattr(recognise, "page_digits", slow_on_page_two)
    path = tmp_path / "three.pdf"
    path.write_bytes(scanned_pdf(3))
    limits = LimitsConfig(page_timeout_s=0.5)
    prepared = prepare(path, path.name, limits=limits, mode="auto", pdf_dpi=300, pictures=False)
    assert [(page.number, page.error) for page in prepared.pages] == [
        (1, ""),
        (2, "page took longer than 0.5 s to read (limits.page_timeout_s)"),
    ]
    rest = prepare(path, path.name, 3, limits=limits, mode="auto", pdf_dpi=300, pictures=False)
    assert [(page.number, page.error) for page in rest.pages] == [(3, "")] and rest.page_count == 3


class BlankReader:
    """A sequence reader that sees no number in any field, `sure` of it."""

    judge = None

    def __init__(self, sure: float) -> None:
        self.sure = sure

    def read(self, fields: np.ndarray) -> list[StringReading]:
        return [StringReading("", self.sure, ()) for _ in fields]


@pytest.mark.parametrize("sure", [0.95, 0.1])
def test_digits_the_reader_does_not_see_are_only_as_sure_as_its_doubt(sure: float) -> None:
    """The digit model finds a sure 1 where the reader, `sure` of it, reads nothing: the reading is the 1, but no
    surer than the reader's doubt that the field is blank (what a wall's fragment read as a 1 looks like)."""
    classifier = FakeClassifier(confidence=0.99)
    classifier.reader = BlankReader(sure)  # type: ignore[assignment]
    one = np.zeros((28, 28), np.float32)
    one[10, :] = 1
    found = Candidates.row(np.stack([one]))._replace(field=np.zeros((FIELD_HEIGHT, FIELD_WIDTH), np.float32))
    (reading,) = read([Prepared.one_page(found)], classifier, review_below=0.8)[0]
    assert reading.prediction == "1" and reading.confidence == pytest.approx(0.99 * (1 - sure))
    assert reading.status == ("low_confidence" if sure > 0.5 else "ok")


class OneDigitReader:
    """A sequence reader that reads every field as a lone 1, doubting it, judged by a judge who is 30 % sure."""

    judge = Judge(weights=(0.0,) * len(EVIDENCE), bias=float(np.log(0.3 / 0.7)))

    def read(self, fields: np.ndarray) -> list[StringReading]:
        top3 = (((1, 0.9), (7, 0.05), (4, 0.05)),)
        return [StringReading("1", 0.3, top3, ((0, FIELD_WIDTH),)) for _ in fields]


@pytest.mark.parametrize(("width", "judged"), [(16, False), (48, True)])
def test_a_lone_digit_in_auto_mode_is_the_digit_models_unless_its_writing_is_too_wide_for_one(
    width: int, judged: bool
) -> None:
    """Both models read one digit, the digit model surely: the reading is the digit model's, as sure as it is
    calibrated on single digits. Writing twice as wide as tall is a number whose other digits both dropped (a
    cheque's amount read as its first digit): then the judge, who weighs the reader's doubt, says how sure."""
    classifier = FakeClassifier(confidence=0.99)
    classifier.reader = OneDigitReader()  # type: ignore[assignment]
    one = np.zeros((28, 28), np.float32)
    one[10, :] = 1
    field = np.zeros((FIELD_HEIGHT, FIELD_WIDTH), np.float32)
    field[4:28, 10 : 10 + width] = 1.0
    found = Candidates.row(np.stack([one]))._replace(field=field)
    (reading,) = read([Prepared.one_page(found)], classifier, review_below=0.8)[0]
    assert len(reading.prediction) == 1
    assert reading.confidence == pytest.approx(0.3 if judged else 0.99)
    assert reading.status == ("low_confidence" if judged else "ok")


class DoubtfulOneReader:
    """A sequence reader that reads every field as a 1 it is 60 % sure of, a 7 its second guess, judged 30 % sure."""

    judge = Judge(weights=(0.0,) * len(EVIDENCE), bias=float(np.log(0.3 / 0.7)))

    def read(self, fields: np.ndarray) -> list[StringReading]:
        top3 = (((1, 0.6), (7, 0.3), (4, 0.1)),)
        return [StringReading("1", 0.6, top3, ((0, FIELD_WIDTH),)) for _ in fields]


def test_a_lone_digit_read_otherwise_by_each_model_takes_the_digit_models_reading_of_all_its_ink() -> None:
    """The reader's 1 and the digit model's 7, which it reads surely in all the ink at full size (the reader's
    column of the small field image shows it nothing): the 7, among the reader's three likeliest, wins; the judge
    says how sure."""
    classifier = FakeClassifier(confidence=0.99)
    classifier.reader = DoubtfulOneReader()  # type: ignore[assignment]
    seven = np.zeros((28, 28), np.float32)
    seven[4:11, :] = 1
    field = np.zeros((FIELD_HEIGHT, FIELD_WIDTH), np.float32)
    field[4:28, 10:26] = 1.0
    found = Candidates.row(np.stack([seven]))._replace(field=field)
    (reading,) = read([Prepared.one_page(found)], classifier, review_below=0.8)[0]
    assert reading.prediction == "7"
    assert reading.confidence == pytest.approx(0.3)
