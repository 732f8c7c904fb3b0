"""The one way through vision: a page's writing is found, cleaned, cut and fitted, each step once, in that order.

    find   watcher.vision.sheet      a whole sheet's handwriting, at its own size (a cut-out field: as it is)
    clean  watcher.vision.normalise  the ink map: paper, noise and printed lines gone (watcher.vision.paper)
    cut    watcher.vision.segment    a number's candidate digits, as spans of its ink (none for one digit)
    fit    watcher.vision.fit        each candidate like an MNIST digit, once
    view   watcher.vision.field      the writing whole, as the sequence reader reads it

Each step hands its result to the next here, and no step calls another: `candidates` is the list of steps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from watcher.vision.field import field_image
from watcher.vision.fit import fit_digit
from watcher.vision.normalise import ink_map
from watcher.vision.options import Option, row_options
from watcher.vision.paper import without_dark_margins
from watcher.vision.segment import Spans, cut_number
from watcher.vision.sheet import sheet_crops
from watcher.vocabulary import CANVAS_PX

MODES = ("digit", "number", "auto")


class Candidates(NamedTuple):
    """The page's candidate digit images and the options that read its pieces of ink, left to right, with them.

    A piece is a group of ink, or a part of one between two columns where it may be cut. A reading takes options
    that cover every piece once. Named tuples, not dataclasses: they cross from the worker processes, and a
    frozen dataclass unpickles ten times slower.
    """

    images: np.ndarray  # (m, 28, 28) float32
    options: tuple[Option, ...]
    pieces: int
    spans: tuple[tuple[int, int], ...] = ()  # the page columns each image was cut between (none for a row)
    # The writing whole, for the sequence reader (watcher.vision.field): in "number" and "auto" mode only.
    field: np.ndarray | None = None
    whole: bool = False  # "number" mode: the writing is a number, read whole when a reader can

    @classmethod
    def row(cls, images: np.ndarray) -> Candidates:
        """Each image one digit, all read: the page as a single digit, or an already segmented number."""
        return cls(images=images.astype(np.float32), options=row_options(len(images)), pieces=len(images))


def page_digits(image: np.ndarray, *, mode: str, cut: bool = True, bilevel: bool = False) -> Candidates | None:
    """A page's candidate digits: a whole sheet's handwriting, found at its own size, or a cut-out field as it is;
    None for a blank sheet. `bilevel`: the page is a black-and-white scan at its own resolution (`Page.bilevel`)."""
    crops = sheet_crops(image, bilevel=bilevel)
    if crops is None:
        return candidates(image, mode=mode, cut=cut)
    # One written number per sheet: its largest line of writing (none on a blank sheet).
    return candidates(crops[0], mode=mode, cut=cut) if crops else None


def candidates(crop: np.ndarray, *, mode: str, cut: bool = True) -> Candidates:
    """Candidate digits of a decoded crop (a page as it is, a sheet's writing, a form's cell), left to right; none
    for a blank crop.

    mode "digit" reads the whole crop as one digit (exactly `normalise`), "number" as a row of digits, and "auto"
    as a number when the ink clearly lies in several digits side by side, and as one digit otherwise unless the
    model is much surer of it as a number (watcher.vision.segment).

    In "number" and "auto" mode the writing whole comes too, for a sequence reader. Where one serves, `cut` is
    False: the number is not cut, and its one candidate is all its ink fitted as a digit, for the digit model's
    say on a lone digit.
    """
    if mode not in MODES:
        raise ValueError(f"unknown recognition mode {mode!r}; expected one of {', '.join(MODES)}")
    ink = _clean(crop, mode=mode)
    if not ink.any():
        return Candidates.row(np.zeros((0, CANVAS_PX, CANVAS_PX), np.float32))
    spans = cut_number(ink, mode=mode) if cut and mode != "digit" else None
    found = _fitted(ink, spans)
    return found if mode == "digit" else found._replace(field=field_image(ink), whole=mode == "number")


def _clean(crop: np.ndarray, *, mode: str) -> np.ndarray:
    """The crop's ink map. A number's scanner margin along an edge (a register cell cut from a page scan) would
    pass for the writing: it goes first."""
    return ink_map(crop if mode == "digit" else without_dark_margins(crop))


def _fitted(ink: np.ndarray, spans: Spans | None) -> Candidates:
    """Each candidate fitted like an MNIST digit: the spans' when the ink was cut, else all the ink as one digit."""
    if spans is None:
        return Candidates.row(fit_digit(ink)[np.newaxis])
    images = np.stack([fit_digit(part) for part in spans.inks])
    return Candidates(images=images, options=spans.options, pieces=spans.pieces, spans=spans.columns)
