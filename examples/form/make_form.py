"""Draw the example form and fill it in: the printable PDF, the reference PNG, its template, two filled scans.

    python examples/form/make_form.py [--data ../shared/data/mnist.npz]

The form is the specimen meter-reading card (watcher/forms/specimen.py), printed at 300 dpi into a one-page PDF
of its own size (A5 landscape). The reference is the same card at 150 dpi, and the template's boxes are in its
pixels. The scans are filled with MNIST *training* digits (never the validation or test ones), as a scanner
would give them back: one tilted, one fed upside down and at another resolution. `filled.csv` is what was written.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from watcher.forms import specimen  # noqa: E402
from watcher.forms.rules import luhn_valid  # noqa: E402
from watcher.model.dataset import load_mnist, split_training  # noqa: E402

LAYOUT = specimen.METER
PRINT_DPI = 300
REFERENCE_DPI = 150
# Each scan: what is written per field, and how the scanner takes the sheet.
SCANS = {
    "filled-1.png": (
        {"account": "40218372", "reading": "4071", "month": "11", "meter": "3", "code": "0612"},
        {"scale": 2 / 3, "angle": 4.0, "noise": 0.0},  # 200 dpi, tilted
    ),
    "filled-2.png": (
        {"account": "75310623", "reading": "258", "month": "4", "meter": "9", "code": ""},
        {"scale": 0.5, "angle": -2.0, "quarter_turns": 2, "perspective": 0.01, "noise": 0.0},  # 150 dpi, upside down
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE.parents[2] / "shared" / "data" / "mnist.npz")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    printed = specimen.draw(LAYOUT, PRINT_DPI)
    (HERE / "form.pdf").write_bytes(specimen.pdf(printed, PRINT_DPI))
    cv2.imwrite(str(HERE / "form.png"), specimen.draw(LAYOUT, REFERENCE_DPI))
    (HERE / "form.yaml").write_text(
        "# The example meter-reading card: its boxes are in form.png's pixels (150 dpi).\n"
        + specimen.template_yaml(LAYOUT, REFERENCE_DPI, reference="form.png"),
        encoding="utf-8",
    )
    x_train, y_train, _, _ = load_mnist(args.data)
    (x_kept, y_kept), _ = split_training(x_train, y_train)
    by_digit = {digit: x_kept[y_kept == digit] for digit in range(10)}
    rows = []
    for name, (written, transform) in SCANS.items():
        assert luhn_valid(written["account"]), "the example's account numbers carry their check digit"
        writing = {
            field: [by_digit[int(char)][rng.integers(len(by_digit[int(char)]))] for char in text]
            for field, text in written.items()
        }
        filled = specimen.fill(printed, LAYOUT, PRINT_DPI, writing, rng)
        scanned = specimen.scan(filled, rng, **transform).image
        cv2.imwrite(str(HERE / name), scanned, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        rows.append({"file": name, **written})
    with open(HERE / "filled.csv", "w", newline="", encoding="utf-8") as file:
        table = csv.DictWriter(file, fieldnames=["file", *(box.name for box in LAYOUT.boxes)])
        table.writeheader()
        table.writerows(rows)
    print(f"wrote form.pdf, form.png, form.yaml, {', '.join(SCANS)} and filled.csv in {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
