"""Confidence that means something: temperature scaling of the model's probabilities, and measuring calibration."""

from __future__ import annotations

import numpy as np

from watcher.vocabulary import DIGITS

SURE = 0.99  # a reading this sure should be right 99 times in 100: the errors above it are the ones to count
ECE_BINS = 15  # the usual count (Guo et al. 2017): bins of 6.7 points of confidence
TEMPERATURE_RANGE = (0.25, 20.0)  # searched for the best fit; 1 leaves the model as trained
FIT_STEPS = 60  # golden-section steps on log T: far finer than the fit's own sampling error
LOGISTIC_RIDGE = 1e-2  # keeps a column that separates the fitted readings perfectly from an infinite weight
LOGISTIC_STEPS = 30  # Newton steps: the log loss is convex, and a handful reach its minimum


def temper(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Rows of a softmax's probabilities at `temperature`: p ∝ exp(log p / T), every class's column included.

    The same as dividing the logits by T, so the ranking of the classes never changes; T > 1 makes the model
    less sure, T < 1 surer.
    """
    if temperature == 1.0:
        return probabilities
    # A class the model rounds to 0 has a log of minus infinity, and stays 0 at any temperature.
    with np.errstate(divide="ignore"):
        logs = np.log(np.asarray(probabilities, np.float64)) / temperature
    logs -= logs.max(axis=1, keepdims=True)
    scaled = np.exp(logs)
    tempered: np.ndarray = (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)
    return tempered


def with_no_digit(digit_probabilities: np.ndarray) -> np.ndarray:
    """The model's full rows from a classifier's ten digit columns: the eleventh, no digit, is what they lack of 1.

    Exact enough for the digits' shares, which do not depend on it; a no-digit chance under float32's rounding
    (about 1e-7) comes back as that rounding.
    """
    rest = np.clip(1.0 - digit_probabilities.sum(axis=1, keepdims=True), 0.0, 1.0)
    full: np.ndarray = np.hstack([digit_probabilities, rest]).astype(np.float32)
    return full


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of the labels' digit shares.

    `probabilities` are the model's full rows (see `with_no_digit`), as it was trained: untempered. The shares
    among the digits do not depend on the no-digit column; the number reader's choices do.
    """

    def loss(log_temperature: float) -> float:
        tempered = temper(probabilities, float(np.exp(log_temperature)))[:, :DIGITS].astype(np.float64)
        shares = tempered[np.arange(len(labels)), labels] / np.maximum(tempered.sum(axis=1), 1e-300)
        return float(-np.mean(np.log(np.maximum(shares, 1e-300))))

    # The loss is convex in 1/T (a log-sum-exp of logits times 1/T), so one minimum: a golden-section search finds it.
    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(FIT_STEPS):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if loss(left) < loss(right):
            high = right
        else:
            low = left
    return round(float(np.exp((low + high) / 2)), 4)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, *, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the mean gap between confidence and accuracy over equal-width confidence bins,
    weighted by each bin's share of the readings."""
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, bool)
    if not len(confidence):
        return 0.0
    # Bin b holds confidences in (b / bins, (b + 1) / bins]; a confidence of 0 joins the first.
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return gap / len(confidence)


def confident_error_share(confidence: np.ndarray, correct: np.ndarray, *, at_least: float) -> float:
    """The share of the wrong readings that were read at `at_least` or more: errors no review threshold below it
    would catch. 0 when nothing was wrong."""
    wrong = ~np.asarray(correct, bool)
    if not wrong.any():
        return 0.0
    return float((np.asarray(confidence)[wrong] >= at_least).mean())


def fit_logistic(evidence: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, float]:
    """The weights and bias of the logistic model that best predicts `right` (bool, n) from `evidence` (n, k):
    the chance a reading is right, by Newton's method on the log loss.

    Fitted on standardised columns, so the small ridge (LOGISTIC_RIDGE) weighs every column alike, and returned for
    the columns as given.
    """
    x = np.asarray(evidence, np.float64)
    y = np.asarray(right, np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    ridge = LOGISTIC_RIDGE * np.eye(len(w))
    for _ in range(LOGISTIC_STEPS):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        gradient = z.T @ (p - y) + ridge @ w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + ridge
        w -= np.linalg.solve(hessian, gradient)
    weights = w[:-1] / scale
    return weights, float(w[-1] - weights @ mean)
