"""The digit CNN and the training-time augmentation that makes MNIST look like varied handwriting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from watcher.vocabulary import CANVAS_PX, CLASSES


@dataclass(frozen=True)
class Augmentation:
    """What `augment` draws each distortion from: training writes it into a version's metadata as it is."""

    rotation_degrees: float = 15  # either way
    scale: tuple[float, float] = (0.8, 1.2)
    shear: float = 0.25  # either way
    shift_px: float = 2.5  # either way, on each axis
    thickened: float = 0.25  # the share dilated 2x2...
    thinned: float = 0.25  # ...and the share eroded 2x2, where there is ink enough to thin
    blurred: float = 0.2
    blur_sigma: tuple[float, float] = (0.3, 0.8)
    noised: float = 0.2  # Gaussian noise
    noise_sigma: tuple[float, float] = (0.02, 0.08)


AUGMENTATION = Augmentation()


def import_tensorflow() -> Any:  # TensorFlow ships no types
    """TensorFlow, imported without its start-up chatter on stderr."""
    from watcher.model.classify import silenced_native_logs

    with silenced_native_logs():
        import keras  # noqa: F401  (imported here so its own start-up lines are muted too)
        import tensorflow as tf
    return tf


def build_model() -> Any:  # a keras.Model; Keras ships no types
    """A small VGG-like CNN: about 186k parameters and 8 M multiply-adds per digit."""
    import keras
    from keras import layers

    def conv(filters: int, padding: str = "same") -> list[Any]:
        # Convolutions without bias: BatchNorm supplies the shift and makes training fast and stable.
        return [
            layers.Conv2D(filters, 3, padding=padding, use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
        ]

    return keras.Sequential(
        [
            keras.Input(shape=(CANVAS_PX, CANVAS_PX, 1)),
            *conv(24),
            layers.MaxPooling2D(),
            *conv(48),
            *conv(48),
            layers.MaxPooling2D(),
            *conv(96, "valid"),
            *conv(128, "valid"),
            layers.GlobalAveragePooling2D(),
            layers.Dropout(0.3),
            layers.Dense(CLASSES, activation="softmax"),
        ],
        name="mnist_cnn",
    )


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Randomly distorted copies of float32 (n, 28, 28) digits in [0, 1], as a pen and scanner would."""
    out = np.empty_like(images)
    centre = CANVAS_PX / 2
    for index, image in enumerate(images):
        angle = np.deg2rad(rng.uniform(-AUGMENTATION.rotation_degrees, AUGMENTATION.rotation_degrees))
        scale = rng.uniform(*AUGMENTATION.scale)
        shear = rng.uniform(-AUGMENTATION.shear, AUGMENTATION.shear)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        linear = scale * rotation @ np.array([[1.0, shear], [0.0, 1.0]])
        shift = rng.uniform(-AUGMENTATION.shift_px, AUGMENTATION.shift_px, size=2)
        offset = np.array([centre, centre]) + shift - linear @ np.array([centre, centre])
        matrix = np.hstack([linear, offset[:, None]]).astype(np.float32)
        warped = cv2.warpAffine(image, matrix, (CANVAS_PX, CANVAS_PX), flags=cv2.INTER_LINEAR, borderValue=0.0)
        pen = rng.random()
        if pen < AUGMENTATION.thickened:
            warped = cv2.dilate(warped, np.ones((2, 2), np.uint8))
        elif pen < AUGMENTATION.thickened + AUGMENTATION.thinned and (warped > 0.5).sum() > 60:
            warped = cv2.erode(warped, np.ones((2, 2), np.uint8))
        if rng.random() < AUGMENTATION.blurred:
            warped = cv2.GaussianBlur(warped, (3, 3), rng.uniform(*AUGMENTATION.blur_sigma))
        if rng.random() < AUGMENTATION.noised:
            warped = warped + np.asarray(
                rng.normal(0, rng.uniform(*AUGMENTATION.noise_sigma), warped.shape), np.float32
            )
        out[index] = np.clip(warped, 0.0, 1.0)
    return out
