"""What the accuracy benches share: their data, split, model and seed options, and loading them."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from watcher.ledger.record import Reading  # noqa: E402
from watcher.model.classify import Classifier, load_classifier  # noqa: E402
from watcher.model.dataset import VALIDATION_DIGITS, load_mnist, split_training  # noqa: E402
from watcher.recognise import Prepared, read  # noqa: E402
from watcher.vision.digits import candidates  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist.npz"  # where the project's checkout keeps MNIST
SPLITS = ("validation", "test")  # tune on validation digits; test figures are for reporting only


@dataclass(frozen=True)
class Setup:
    """The chosen split's digits and labels, the model under bench and a seeded random source."""

    split: str
    x: np.ndarray
    y: np.ndarray
    classifier: Classifier
    rng: np.random.Generator


def bench_parser(description: str | None) -> argparse.ArgumentParser:
    """A parser with the options every accuracy bench takes: --seed, --data, --split, --model."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"mnist.npz (default {DEFAULT_DATA})")
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="validation",
        help=f"validation: the {VALIDATION_DIGITS:,} training digits models trained after v4 never see, for tuning "
        "(the default); test: MNIST's test split, for reporting only",
    )
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "mnist-cnn")
    return parser


def decoded(data: np.ndarray) -> np.ndarray:
    """An image OpenCV encoded a moment ago, decoded back as it is (bit depth, channels, palette)."""
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    assert image is not None, "OpenCV cannot decode what it encoded"
    return image


def read_pngs(encoded: list[np.ndarray], classifier: Classifier, *, mode: str) -> list[Reading]:
    """Each encoded image decoded, cleaned in `mode` and read as the daemon reads a batch (one model call); numbers
    cut into digits only where the model has no sequence reader, as the daemon does."""
    cut = classifier.reader is None
    prepared = [Prepared.one_page(candidates(decoded(data), mode=mode, cut=cut)) for data in encoded]
    return [reading for (reading,) in read(prepared, classifier, review_below=None)]


def inked(image: np.ndarray | None) -> np.ndarray:
    """A digit `normalise` found ink in (every MNIST digit has some)."""
    assert image is not None, "normalise found no ink"
    return image


def set_up(args: argparse.Namespace) -> Setup:
    """Load what `bench_parser`'s options name, and say which split and model the figures come from."""
    x_train, y_train, x_test, y_test = load_mnist(args.data)
    x, y = (x_test, y_test) if args.split == "test" else split_training(x_train, y_train)[1]
    classifier = load_classifier(args.model)
    print(f"model {classifier.version}, MNIST {args.split} split ({len(x):,} digits), seed {args.seed}")
    return Setup(split=args.split, x=x, y=y, classifier=classifier, rng=np.random.default_rng(args.seed))
