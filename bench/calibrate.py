"""Fit the served model's temperature on validation digits in every style plus plain validation digits, and show
calibration before and after; `--write` ships it as the next version (the same model, its metadata calibrated)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from common import bench_parser, inked, set_up

from watcher.model.calibration import (
    ECE_BINS,
    SURE,
    confident_error_share,
    expected_calibration_error,
    fit_temperature,
    temper,
    with_no_digit,
)
from watcher.model.classify import (
    TEMPERATURE_KEY,
    LiteRTClassifier,
    digit_shares,
    latest_version,
)
from watcher.model.styles import STYLES, styled_digits
from watcher.model.train import calibration, publish_version, staging_folder
from watcher.model.versions import METADATA_FILE, MODEL_FILE
from watcher.service.config import ReviewConfig
from watcher.vision.normalise import normalise
from watcher.vocabulary import DIGITS


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--per-style", type=int, default=1000, help="digits drawn in each style (default 1000)")
    parser.add_argument(
        "--temperature", type=float, help="measure this temperature instead of fitting one (on the test split)"
    )
    parser.add_argument("--write", action="store_true", help="write the fitted temperature as the next version")
    args = parser.parse_args()
    if args.write and (args.split != "validation" or args.temperature is not None):
        parser.error("--write ships a temperature fitted on the validation split: drop --split test and --temperature")

    setup = set_up(args)
    version = latest_version(args.model)
    # The model as trained, whatever temperature its metadata holds: the fit starts from its own probabilities.
    model = LiteRTClassifier(version / MODEL_FILE, version=setup.classifier.version)
    images, labels, styles = styled_digits(setup.x, setup.y, setup.rng, per_style=args.per_style)
    plain = np.stack([inked(normalise(digit)) for digit in setup.x])
    sets = {
        f"styles ({len(labels)} digits)": (with_no_digit(model.probabilities(images)), labels, styles),
        f"plain MNIST {setup.split} ({len(plain)})": (
            with_no_digit(model.probabilities(plain)),
            setup.y.astype(np.int64),
            np.full(len(plain), -1),
        ),
    }
    probabilities = np.concatenate([rows for rows, _, _ in sets.values()])
    truths = np.concatenate([truth for _, truth, _ in sets.values()])
    temperature = args.temperature or fit_temperature(probabilities, truths)
    source = "given" if args.temperature else f"fitted on the {setup.split} split's styles and plain digits"
    print(f"temperature {temperature} ({source})\n")
    print(f"{'set':<30} {'T':>6} {'accuracy':>9} {'ECE':>6} {'err≥0.99':>9} {'err≥0.9':>8} {'conf≥0.99 right':>16}")
    for name, (rows, truth, style_of) in sets.items():
        for applied in (1.0, temperature):
            _print_row(name, applied, rows, truth)
        if style_of.max() >= 0:
            for index, style in enumerate(STYLES):
                own = style_of == index
                _print_row(f"  {style}", temperature, rows[own], truth[own])
    print(f"\nECE over {ECE_BINS} bins; err≥p: share of the errors read at p or more")
    if args.write:
        command = f"python bench/calibrate.py --write --seed {args.seed} --per-style {args.per_style}"
        fitted = calibration(len(truths), per_style=args.per_style)
        print(f"wrote {_write_calibrated(version, temperature=temperature, fitted=fitted, command=command)}")
    return 0


def _print_row(name: str, temperature: float, rows: np.ndarray, truth: np.ndarray) -> None:
    shares = digit_shares(temper(rows, temperature)[:, :DIGITS])
    confidence, correct = shares.max(axis=1), shares.argmax(axis=1) == truth
    sure = confidence >= SURE
    ece = expected_calibration_error(confidence, correct)
    print(
        f"{name:<30} {temperature:>6.3g} {correct.mean():>9.2%} {ece:>6.2%} "
        f"{confident_error_share(confidence, correct, at_least=SURE):>9.1%} "
        f"{confident_error_share(confidence, correct, at_least=ReviewConfig().threshold):>8.1%} "
        f"{correct[sure].mean() if sure.any() else 1.0:>16.2%}"
    )


def _write_calibrated(version: Path, *, temperature: float, fitted: dict[str, object], command: str) -> Path:
    """The next version: `version`'s model files as they are, its metadata with the temperature and how it was
    fitted."""
    staging = staging_folder(version.parent)
    for entry in version.iterdir():
        if entry.name != METADATA_FILE:
            shutil.copy2(entry, staging / entry.name)
    metadata = json.loads((version / METADATA_FILE).read_text())
    metadata[TEMPERATURE_KEY] = temperature
    metadata["calibration"] = fitted
    metadata["calibrated_from"] = f"{version.parent.name}/{version.name}"
    metadata["calibration_command"] = command  # `command` still trains the model itself; this calibrates it
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return publish_version(staging, version.parent)


if __name__ == "__main__":
    sys.exit(main())
