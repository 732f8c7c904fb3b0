"""The ways a number's pieces of ink may be read (options), what each costs before the model's say, and the choice.

The geometry's own reading scores 0; an alternative is taken only when the model is surer of it than of the
geometry's reading by a factor, the log of which is its prior. The priors were measured with bench/numberset.py
(see bench/tune.py): the model still reads some parts of digits as digits, so looser priors split sound digits.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

SPLIT_PRIOR = -0.05  # a digit the geometry did not cut wins when the model is about 5 % surer of it: a near tie
MERGE_PRIOR = -1.2  # two neighbouring groups read as one broken digit only when the model is e^1.2 = 3.3 times surer
MERGE_GAP = 0.2  # groups this close (in digit heights) may be one broken digit; farther apart they are two digits
MERGE_WIDTH = 1.25  # groups together this wide (in digit heights) may be one digit: as wide as a lone digit gets
MARK_PRIOR = -1.2  # a short group is left out as a mark when the model gives its likeliest digit under e^-1.2 = 30 %
NUMBER_PRIOR = -1.5  # auto: ink that may be one digit is a number only when the model is e^1.5 = 4.5 times surer
NARROWEST_PART = 0.15  # a run of pieces narrower than this (in digit heights) is thinner than an upright 1
WIDEST_PART = 2.2  # a run of pieces wider than this (in digit heights) is wider than any one digit, stretched ones too
FLOOR = 1e-12  # the least probability scored, so a candidate the model rules out costs a lot but not infinity


class Option(NamedTuple):
    """One way to read pieces `first` to `end` - 1: as these candidate images (none: a mark left out), and the
    log-score its geometry adds (0 for the geometry's own reading, negative for an alternative)."""

    first: int
    end: int
    images: tuple[int, ...]
    prior: float


class Cut(Protocol):
    """What `choose` reads of a cut (watcher.vision.digits' `Candidates`): its options, and the pieces they cover."""

    @property
    def options(self) -> tuple[Option, ...]: ...
    @property
    def pieces(self) -> int: ...


def row_options(count: int) -> tuple[Option, ...]:
    """Each of `count` images one digit, all read."""
    return tuple(Option(index, index + 1, (index,), 0.0) for index in range(count))


def mark_options(piece: int, image: int) -> list[Option]:
    """A short group: left out as a mark, or read as a small digit."""
    return [Option(piece, piece + 1, (), MARK_PRIOR), Option(piece, piece + 1, (image,), 0.0)]


def is_digit_wide(width: float, *, digit_height: float) -> bool:
    """A run of pieces this wide may be one digit, though the geometry did not read it so."""
    return NARROWEST_PART <= width / digit_height <= WIDEST_PART


def run_option(first: int, end: int, image: int | None, *, geometrys: bool) -> Option:
    """Pieces `first` to `end` - 1 read as one digit (`image`), or, holding no ink (None), as nothing."""
    if image is None:
        return Option(first, end, (), 0.0)
    return Option(first, end, (image,), 0.0 if geometrys else SPLIT_PRIOR)


def may_merge(*, gap: int, width: int, digit_height: float) -> bool:
    """Two neighbouring groups this far apart and together this wide may be one digit broken apart."""
    return gap <= MERGE_GAP * digit_height and width <= MERGE_WIDTH * digit_height


def merge_option(first: int, end: int, image: int) -> Option:
    """Two neighbouring groups' pieces read as one digit."""
    return Option(first, end, (image,), MERGE_PRIOR)


def as_number_or_digit(options: list[Option], *, pieces: int, whole: int) -> list[Option]:
    """Auto mode's options for ink that may be one digit: the number's, paying NUMBER_PRIOR once, or `whole`."""
    # Every reading as a number starts with an option at the first piece: the prior is paid there.
    number = [option._replace(prior=option.prior + NUMBER_PRIOR) if option.first == 0 else option for option in options]
    return [*number, Option(0, pieces, (whole,), 0.0)]


def choose(probabilities: np.ndarray, digits: Cut) -> list[int]:
    """The candidate images, left to right, of the options that read every piece once with the best score.

    An option scores its prior plus the log of the model's probability for each of its digits' best class; a part
    of a digit, or two digits read as one, scores low, as the model holds it to be no digit.
    Dynamic programming over the pieces of ink, so the cost grows with the options, not with their combinations.
    """
    scores = np.log(np.maximum(probabilities.max(axis=1), FLOOR))
    best = np.full(digits.pieces + 1, -np.inf)
    best[0] = 0.0
    taken: list[Option | None] = [None] * (digits.pieces + 1)
    for option in sorted(digits.options, key=lambda option: option.end):
        score = best[option.first] + option.prior + float(scores[list(option.images)].sum())
        if score > best[option.end]:
            best[option.end], taken[option.end] = score, option
    chosen: list[int] = []
    end = digits.pieces
    while end > 0 and (last := taken[end]) is not None:
        chosen[:0] = last.images
        end = last.first
    return chosen
