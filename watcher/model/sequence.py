"""The sequence reader: a field's line of writing read whole as a digit string, without cutting it first.

A fully convolutional network looks at the cleaned ink (watcher.vision.field), FIELD_HEIGHT px tall, and says
for every slice of FRAME_PX columns which symbol it sees (a digit, a mark, or nothing); CTC decoding collapses the
slices into the string. A dropped or extra digit changes the best path, so the whole string's probability (the
confidence) drops with it.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np

from watcher.vision.field import FIELD_HEIGHT, FIELD_WIDTH
from watcher.vocabulary import DIGITS

FRAME_PX = 4  # columns per slice the network reads: a digit spans about four slices
FRAMES = FIELD_WIDTH // FRAME_PX
MARK_CLASS = DIGITS  # a separator, sign or trailing mark
BLANK_CLASS = DIGITS + 1  # CTC's "nothing new here"
SYMBOLS = DIGITS + 2


BLANK_PAPER = 0.1  # a slice whose brightest pixel is under this (ink is 1) holds no stroke

FLOOR = 1e-9  # the least probability whose log `evidence` takes
BEAM_WIDTH = 8  # strings kept at each slice while summing every path that spells them (`likeliest_strings`)
BEAM_LEAST = 1e-3  # a symbol less likely than this at a slice is not followed there
SECOND_OPINION = 0.5  # the digit model's say on each digit: a power on its probabilities (see `second_opinion`)


class StringReading(NamedTuple):
    """A field read whole: its digits (marks left out), the probability of the string, each digit's top three
    digits with their shares, and the field's columns each digit lies between (none for a cut-and-read string)."""

    digits: str
    confidence: float
    top3: tuple[tuple[tuple[int, float], ...], ...]
    columns: tuple[tuple[int, int], ...] = ()
    least_blank: float = 1.0  # the reader's least sure "nothing here" on its path: where a faint digit may be
    strings: tuple[tuple[str, float], ...] = ()  # the digit strings its slices could spell, likeliest first


def decode(frames: np.ndarray) -> StringReading:
    """The best path through one field's (FRAMES, SYMBOLS) probabilities: repeats collapsed, blanks and marks
    dropped. The confidence is the path's probability, so every slice's doubt counts, a missed digit's too."""
    best = frames.argmax(axis=1)
    confidence = float(np.prod(frames[np.arange(len(frames)), best]))
    digits: list[str] = []
    top3: list[tuple[tuple[int, float], ...]] = []
    runs: list[tuple[int, int]] = []
    previous = BLANK_CLASS
    for index, symbol in enumerate(best):
        if symbol != previous and symbol < DIGITS:
            # The digit's shares where it is surest: the slice at the peak of its run.
            end = index
            while end + 1 < len(best) and best[end + 1] == symbol:
                end += 1
            peak = index + int(frames[index : end + 1, symbol].argmax())
            shares = frames[peak, :DIGITS] / max(float(frames[peak, :DIGITS].sum()), 1e-12)
            order = np.argsort(-shares)[:3]
            digits.append(str(symbol))
            top3.append(tuple((int(d), float(shares[d])) for d in order))
            runs.append((index, end))
        previous = symbol
    # Each digit lies between the midpoints of the gaps to its neighbours' runs of slices.
    gaps = [(end + 1 + start) * FRAME_PX // 2 for (_, end), (start, _) in pairwise(runs)]
    columns = tuple(pairwise([0, *gaps, FIELD_WIDTH])) if runs else ()
    blanks = frames[best == BLANK_CLASS, BLANK_CLASS]
    least_blank = float(blanks.min()) if len(blanks) else 1.0
    # The other strings matter only to the judge of a reading with digits; a blank field's are not sought.
    strings = likeliest_strings(frames) if digits else ()
    return StringReading("".join(digits), confidence, tuple(top3), columns, least_blank, strings)


def likeliest_strings(frames: np.ndarray) -> tuple[tuple[str, float], ...]:
    """The digit strings one field's (FRAMES, SYMBOLS) probabilities spell, each with the probability of every path
    that spells it (CTC's prefix beam search, BEAM_WIDTH strings kept), marks left out; likeliest first.

    The best path alone cannot say how near the reader came to another string: a digit it nearly dropped, doubled
    or read otherwise spreads over many paths, which together may be nearly as likely as the string read.
    """
    rows = frames.tolist()
    followed = frames >= BEAM_LEAST
    followed[:, BLANK_CLASS] = False
    at: list[list[int]] = [[] for _ in rows]
    for index, symbol in zip(*(axis.tolist() for axis in np.nonzero(followed)), strict=True):
        at[index].append(symbol)
    # Each prefix of symbols: the probability of its paths ending in a blank, and of those ending in its last symbol.
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (1.0, 0.0)}
    for row, symbols in zip(rows, at, strict=True):
        blank = row[BLANK_CLASS]
        if not symbols:  # most slices: nothing new is written
            beams = {prefix: ((ended + going) * blank, 0.0) for prefix, (ended, going) in beams.items()}
            continue
        grown: dict[tuple[int, ...], tuple[float, float]] = {}
        for prefix, (ended, going) in beams.items():
            last = prefix[-1] if prefix else None
            stay_ended, stay_going = grown.get(prefix, (0.0, 0.0))
            stay_ended += (ended + going) * blank
            for symbol in symbols:
                longer = (*prefix, symbol)
                longer_ended, longer_going = grown.get(longer, (0.0, 0.0))
                if symbol == last:
                    # The same symbol again is the same one still, unless a blank came between.
                    stay_going += going * row[symbol]
                    grown[longer] = (longer_ended, longer_going + ended * row[symbol])
                else:
                    grown[longer] = (longer_ended, longer_going + (ended + going) * row[symbol])
            grown[prefix] = (stay_ended, stay_going)
        beams = grown if len(grown) <= BEAM_WIDTH else dict(sorted(grown.items(), key=_likelier)[:BEAM_WIDTH])
    strings: dict[str, float] = {}
    for prefix, (ended, going) in beams.items():
        text = "".join(str(symbol) for symbol in prefix if symbol != MARK_CLASS)
        strings[text] = strings.get(text, 0.0) + ended + going
    return tuple(sorted(strings.items(), key=lambda item: -item[1]))


def _likelier(beam: tuple[tuple[int, ...], tuple[float, float]]) -> float:
    """A beam's sort key, likeliest first: minus the probability of all its paths."""
    return -(beam[1][0] + beam[1][1])


def on_ink(frames: np.ndarray, field: np.ndarray) -> np.ndarray:
    """One field's (FRAMES, SYMBOLS) probabilities with no digit where that slice and both its neighbours are blank
    paper in `field` (FIELD_HEIGHT, FIELD_WIDTH). The reader sees far either side of a slice: in a wide gap between
    two 1s it can read a 0 that has no ink at all. A digit's own slice may miss a thin 1's stroke by a slice, so
    the neighbours count."""
    strokes = field.reshape(field.shape[0], -1, FRAME_PX).max(axis=(0, 2)) >= BLANK_PAPER
    near = np.convolve(strokes.astype(np.float32), np.ones(3, np.float32), mode="same") > 0
    kept = frames.copy()
    kept[~near, :DIGITS] = 0.0
    shares: np.ndarray = kept / np.maximum(kept.sum(axis=1, keepdims=True), FLOOR)
    return shares


EVIDENCE = (  # what a settled reading's confidence is judged on (`evidence`), in this order
    "log_path",  # the log of the reader's best path's probability: every slice's doubt, a missed digit's too
    "log_least_blank",  # the log of its least sure slice of nothing: a faint digit it may have dropped
    "log_least_share",  # the log of the reader's share for its least sure digit
    "log_least_second",  # the log of the digit model's share for the digit read where it is least sure
    "agreement",  # the share of the digits the digit model, on its own, reads as read
    "agreed",  # 1 when it reads every one of them so: two readers of different make agree on the string
    "digits",  # how many: each one more is another chance to be wrong
    "log_margin",  # how many times likelier the string is than the reader's likeliest other one, as a log
)


class Judge(NamedTuple):
    """How sure to be of a settled reading: a logistic model over its `evidence` (weights in EVIDENCE's order),
    fitted on validation fields when the reader is trained (watcher.model.train_reader), kept in its metadata. A
    judge fitted before a kind of evidence existed gives it no weight."""

    weights: tuple[float, ...]
    bias: float

    def confidence(self, evidence: np.ndarray) -> float:
        """The chance the reading is right."""
        return float(1.0 / (1.0 + np.exp(-(self.bias + float(np.dot(self.weights, evidence))))))


def evidence(reading: StringReading, digits: str, probabilities: np.ndarray) -> np.ndarray:
    """The reading's EVIDENCE, once its `digits` are settled among the reader's own and the digit model's
    `probabilities` (one row per digit); the logs are floored at FLOOR so a zero stays a number."""
    shares = probabilities / np.maximum(probabilities.sum(axis=1, keepdims=True), 1e-12)
    read = np.array([int(digit) for digit in digits])
    second = shares[np.arange(len(read)), read]
    rival = max((share for string, share in reading.strings if string != digits), default=FLOOR)
    return np.array(
        [
            np.log(max(reading.confidence, FLOOR)),
            np.log(max(reading.least_blank, FLOOR)),
            np.log(max(min(top[0][1] for top in reading.top3), FLOOR)),
            np.log(max(float(second.min()), FLOOR)),
            float(np.mean(shares.argmax(axis=1) == read)),
            float(np.all(shares.argmax(axis=1) == read)),
            float(len(read)),
            np.log(max(dict(reading.strings).get(digits, FLOOR), FLOOR)) - np.log(max(rival, FLOOR)),
        ]
    )


def second_opinion(reading: StringReading, probabilities: np.ndarray, judge: Judge | None = None) -> StringReading:
    """The reading with each digit judged again among the reader's three likeliest, by the digit model's
    `probabilities` of that digit cut out at its columns ((n, 10), one row per digit), and its confidence judged
    by `judge` on the pair's evidence.

    The reader decides how many digits there are and where (what the digit model cannot); the digit model has seen
    far more single digits. Each digit is the likeliest by the reader's share times the digit model's to the power
    SECOND_OPINION (it sees the digit cut at the reader's guess of its edges, so it counts for less). Without a
    judge (versions before the judge), the confidence only drops: by how much less sure the pair is of the digit
    chosen than the reader was of its own.
    """
    digits, top3, confidence = [], [], reading.confidence
    for candidates, own in zip(reading.top3, probabilities, strict=True):
        chosen = np.array([digit for digit, _ in candidates])
        shares = np.array([share for _, share in candidates])
        joint = shares * (own[chosen] / max(float(own.sum()), 1e-12)) ** SECOND_OPINION
        joint = joint / joint.sum() if joint.sum() > 0 else shares
        order = np.argsort(-joint)
        digits.append(str(chosen[order[0]]))
        top3.append(tuple((int(chosen[i]), float(joint[i])) for i in order))
        confidence *= min(1.0, float(joint[order[0]]) / max(candidates[0][1], 1e-12))
    settled = "".join(digits)
    if judge is not None and settled:
        confidence = judge.confidence(evidence(reading, settled, probabilities))
    return reading._replace(digits=settled, confidence=confidence, top3=tuple(top3))


def build_reader() -> Any:  # a keras.Model; Keras ships no types
    """Convolutions down to a row of slices, then dilated convolutions along the row so each slice sees its
    neighbours (a digit's other half, a joined stroke), then a symbol per slice. About 0.56 M parameters."""
    import keras
    from keras import layers

    def conv(x: Any, filters: int, pool: tuple[int, int] | None) -> Any:
        # Convolutions without bias: BatchNorm supplies the shift and makes training fast and stable.
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        return x if pool is None else layers.MaxPooling2D(pool)(x)

    image = keras.Input(shape=(FIELD_HEIGHT, FIELD_WIDTH, 1))
    x = conv(image, 32, (2, 2))  # 16 x 96
    x = conv(x, 48, (2, 2))  # 8 x 48
    x = conv(x, 64, None)
    x = conv(x, 96, (2, 1))  # 4 x 48
    x = conv(x, 128, (2, 1))  # 2 x 48
    # Columns become time: (width, height * channels) per slice.
    x = layers.Permute((2, 1, 3))(x)
    x = layers.Reshape((FRAMES, 2 * 128))(x)
    x = layers.Dense(160, use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for dilation in (1, 2, 4, 1):
        step = layers.Conv1D(160, 3, padding="same", dilation_rate=dilation, use_bias=False)(x)
        step = layers.ReLU()(layers.BatchNormalization()(step))
        x = layers.Add()([x, step])
    x = layers.Dropout(0.2)(x)
    # Logits: CTC's loss takes them as they are; serving adds the softmax (`serving_reader`).
    return keras.Model(image, layers.Dense(SYMBOLS, name="symbols")(x), name="sequence_reader")


def serving_reader(reader: Any) -> Any:
    """The trained reader with its slices' probabilities as output, as LiteRT serves it."""
    import keras
    from keras import layers

    return keras.Model(reader.input, layers.Softmax()(reader.output), name="sequence_reader_serving")
