"""Loading the MNIST data set from an .npz file (or the Keras download), its validation split, and fingerprinting it."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import cv2
import numpy as np

from watcher.vocabulary import CANVAS_PX

MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
MNIST_TRAINING_DIGITS = 60_000  # the validation digits are drawn from MNIST's training split, which holds this many
VALIDATION_DIGITS = 5_000  # enough that a bench's error rate on them moves by under a point from chance alone
VALIDATION_SEED = 20_260_101  # fixed for good: every tuning run and every training run holds out the same digits
REAL_COLLECTIONS = ("usps", "ardis")  # the real digits' collections (../shared/README.md), keys NAME_x and NAME_y
REAL_HELD_OUT_SHARE = 0.1  # of each real collection, kept for validation (MNIST has its own validation digits)
REAL_HELD_OUT_SEED = 20_261_206  # fixed for good, as VALIDATION_SEED


class DatasetError(Exception):
    """A data file that is missing or not an MNIST .npz; str() is one line naming the path."""


def load_mnist(path: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (x_train, y_train, x_test, y_test) as uint8 28x28 images and uint8 labels."""
    if path is None:
        # The Keras loader downloads (and caches) the same file; it needs internet once.
        from keras.datasets import mnist

        try:
            (x_train, y_train), (x_test, y_test) = mnist.load_data()
        except Exception as error:  # the download's failures come in many types (URL, SSL, HTTP, zip)
            raise DatasetError(f"cannot download MNIST ({type(error).__name__}); pass --data mnist.npz") from None
        return x_train, y_train, x_test, y_test
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: data file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in MNIST_KEYS if key not in data.files]
            if missing:
                raise DatasetError(f"{path}: not an MNIST .npz (missing {', '.join(missing)})")
            arrays = tuple(data[key] for key in MNIST_KEYS)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DatasetError(f"{path}: not a readable .npz file ({error})") from None
    x_train, y_train, x_test, y_test = arrays
    for name, images, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        if images.ndim != 3 or images.shape[1:] != (CANVAS_PX, CANVAS_PX) or len(images) != len(labels):
            raise DatasetError(f"{path}: {name} split is not N 28x28 images with N labels")
    return x_train, y_train.astype(np.uint8), x_test, y_test.astype(np.uint8)


def validation_indices(count: int) -> np.ndarray:
    """The indices, in ascending order, of the validation digits among the first `count` training digits.

    Drawn once from MNIST's 60,000 training digits, so a smaller set (a test's) holds out those that fall in it.
    """
    drawn = np.random.default_rng(VALIDATION_SEED).choice(MNIST_TRAINING_DIGITS, VALIDATION_DIGITS, replace=False)
    return np.sort(drawn[drawn < count])


def split_training(
    x_train: np.ndarray, y_train: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return ((x, y) to train on, (x, y) to tune on): the training split less the validation digits, and those."""
    held_out = np.zeros(len(x_train), bool)
    held_out[validation_indices(len(x_train))] = True
    return (x_train[~held_out], y_train[~held_out]), (x_train[held_out], y_train[held_out])


def load_real_digits(path: Path) -> dict[str, tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]]:
    """Each real collection's ((x, y) to train on, (x, y) held out for validation), the digits at MNIST's layout
    (`as_mnist`); DatasetError when the file is not the real-digits archive."""
    try:
        with np.load(path, allow_pickle=False) as data:
            collections = {name: (as_mnist(data[f"{name}_x"]), data[f"{name}_y"]) for name in REAL_COLLECTIONS}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise DatasetError(f"{path}: not the real-digits archive ({error})") from None
    split = {}
    for name, (x, y) in collections.items():
        held = real_held_out(len(x))
        split[name] = ((x[~held], y[~held]), (x[held], y[held]))
    return split


def real_held_out(count: int) -> np.ndarray:
    """Which of a real collection's `count` digits are held out for validation: a bool mask, the same every run."""
    held: np.ndarray = np.random.default_rng(REAL_HELD_OUT_SEED).random(count) < REAL_HELD_OUT_SHARE
    return held


def as_mnist(images: np.ndarray) -> np.ndarray:
    """Digits of another size (USPS's 16x16) at MNIST's layout: longer side 20 px on a 28x28 canvas."""
    if images.shape[1:] == (CANVAS_PX, CANVAS_PX):
        return images
    out = np.zeros((len(images), CANVAS_PX, CANVAS_PX), np.uint8)
    for index, image in enumerate(images):
        out[index, 4:24, 4:24] = cv2.resize(image, (20, 20), interpolation=cv2.INTER_LINEAR)
    return out


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, streamed so large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
