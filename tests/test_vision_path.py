"""One way through vision: a page goes find -> clean -> cut -> fit -> view, each room once, and no room calls another.

Every Python call into watcher.vision is watched (sys.setprofile) while pages and crops are read: the rooms are the
step modules, entered from the composer (watcher.vision.digits) alone; a helper module (paper, lines, pieces,
options) counts in the room that called it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import cv2
import numpy as np
import pytest

import watcher.vision
from watcher.vision.digits import candidates, page_digits
from watcher.vision.sheet import sheet_crops

ROOMS = ("sheet", "normalise", "segment", "fit", "field")  # find, clean, cut, fit, the reader's view: in this order
VISION = Path(watcher.vision.__file__).parent
SAMPLE = Path(__file__).parent / "data" / "mnist_sample.npz"


@contextmanager
def followed() -> Iterator[tuple[list[str], list[str]]]:
    """The rooms entered, in order (one entry per visit), and every call from one room straight into another."""
    visits: list[str] = []
    crossings: list[str] = []

    def room(frame: FrameType | None) -> str | None:
        if frame is None:
            return None
        path = Path(frame.f_code.co_filename)
        return path.stem if path.parent == VISION else None

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or (here := room(frame)) not in ROOMS:
            return
        caller = room(frame.f_back)
        if caller in ROOMS and caller != here:
            crossings.append(f"{caller} -> {here}.{frame.f_code.co_name}")
        if not visits or visits[-1] != here:
            visits.append(here)

    sys.setprofile(profile)
    try:
        yield visits, crossings
    finally:
        sys.setprofile(None)


def path_of(read: Callable[[], object]) -> list[str]:
    """The rooms `read` passes through, checked: each entered once, in the steps' order, none calling another."""
    with followed() as (visits, crossings):
        read()
    assert not crossings, crossings
    assert len(set(visits)) == len(visits), f"a room entered twice: {visits}"
    assert visits == sorted(visits, key=ROOMS.index), f"out of order: {visits}"
    return visits


@pytest.fixture(scope="module")
def number() -> np.ndarray:
    """A scan of three MNIST digits in a row: dark ink on white, about 60 px tall."""
    with np.load(SAMPLE) as data:
        digits = data["x"][:3]
    ink = np.concatenate([np.pad(digit, ((6, 6), (2, 2))) for digit in digits], axis=1)
    big = cv2.resize(ink, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(255 - big)


@pytest.mark.parametrize("cut", [True, False])
def test_a_number_goes_through_every_room_once(number: np.ndarray, cut: bool) -> None:
    found = page_digits(number, mode="number", cut=cut)
    expected = ["sheet", "normalise", "segment", "fit", "field"] if cut else ["sheet", "normalise", "fit", "field"]
    assert path_of(lambda: page_digits(number, mode="number", cut=cut)) == expected
    assert found is not None and (len(found.images) > 1) == cut


def test_a_digit_is_found_cleaned_and_fitted(number: np.ndarray) -> None:
    assert path_of(lambda: page_digits(number, mode="digit")) == ["sheet", "normalise", "fit"]


def test_a_number_on_a_whole_sheet_is_found_then_read_the_same_way(number: np.ndarray) -> None:
    sheet = np.full((3508, 2480), 255, np.uint8)  # A4 at 300 dpi
    sheet[2000 : 2000 + number.shape[0], 1000 : 1000 + number.shape[1]] = number
    assert sheet_crops(sheet)  # found as a sheet's writing, not read as the page it is
    assert path_of(lambda: page_digits(sheet, mode="auto")) == ["sheet", "normalise", "segment", "fit", "field"]


def test_a_crop_without_ink_stops_after_cleaning() -> None:
    assert path_of(lambda: candidates(np.full((80, 120), 255, np.uint8), mode="auto")) == ["normalise"]


def test_a_ruled_crop_is_cleaned_in_one_room(number: np.ndarray) -> None:
    ruled = number.copy()
    ruled[[10, ruled.shape[0] - 10]] = 0  # printed lines across, above and below the writing
    assert path_of(lambda: candidates(ruled, mode="auto")) == ["normalise", "segment", "fit", "field"]
