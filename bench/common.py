"""What the accuracy benches share: their data, model and seed options, and loading them."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from watcher.model.classify import Classifier, load_classifier  # noqa: E402
from watcher.model.dataset import load_mnist  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist.npz"  # where the project's checkout keeps MNIST


@dataclass(frozen=True)
class Setup:
    """The MNIST test split, the model under test and a seeded random source."""

    x_test: np.ndarray
    y_test: np.ndarray
    classifier: Classifier
    rng: np.random.Generator


def bench_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the options every accuracy bench takes: --seed, --data, --model."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"mnist.npz (default {DEFAULT_DATA})")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "mnist-cnn")
    return parser


def set_up(args: argparse.Namespace) -> Setup:
    """Load what `bench_parser`'s options name; only the test split is ever used."""
    _, _, x_test, y_test = load_mnist(args.data)
    return Setup(x_test=x_test, y_test=y_test, classifier=load_classifier(args.model), rng=np.random.default_rng(args.seed))
