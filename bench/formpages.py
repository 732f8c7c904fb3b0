"""Forms end to end: filled forms generated, printed and scanned, aligned to their templates and read field by field.

Two layouts (an A5 meter card, an A4 score sheet with 10 fields) are filled with MNIST digits of the split (some
fields left empty, some digits touching or crossing a cell's wall, some stretched to fill their cell), then
scanned at 150-600 dpi, tilted up to ±10°, shifted, with mild perspective on some, 5 % fed upside down and 5 %
sideways, with noise, a share saved as JPEG and a share as a PDF. Prints alignment failures, field accuracy by
kind, page accuracy, empty fields read as no_digit, and CPU per page (one core, alignment and reading included).

    python bench/formpages.py --split test --pages 500
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import cast

import cv2
import numpy as np
from common import bench_parser, set_up

from tests.forms import form_verdicts
from watcher.forms import specimen
from watcher.forms.fields import FormPage, read_form
from watcher.forms.template import Template, load_template
from watcher.intake.decode import decode
from watcher.intake.pages import open_pages
from watcher.vocabulary import Status

PRINT_DPI = 300  # forms are filled at this resolution, then scanned at the page's own
REFERENCE_DPI = 150
DPIS = (150, 200, 300, 400, 600)
EMPTY_FIELD = 0.08  # a field left blank
SHORT_COMB = 0.2  # a comb written in its first cells only (an ID shorter than its boxes)
UPSIDE_DOWN, SIDEWAYS = 0.05, 0.05
PERSPECTIVE = 0.3  # pages photographed rather than scanned: corners pulled by up to 2 %
JPEG, PDF = 0.3, 0.1  # pages saved as JPEG (quality 60-90), and as a one-page PDF of the scan


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--pages", type=int, default=500, help="filled forms to generate and read (default 500)")
    args = parser.parse_args()
    setup = set_up(args)
    cv2.setNumThreads(1)  # a worker process reads on one core
    rng = setup.rng
    by_digit = [setup.x[setup.y == digit] for digit in range(10)]
    folder = Path(tempfile.mkdtemp())
    layouts = list(specimen.LAYOUTS.values())
    templates = [_template(folder, layout) for layout in layouts]
    printed = {layout.name: specimen.draw(layout, PRINT_DPI) for layout in layouts}
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    cpu: dict[str, list[float]] = defaultdict(list)
    failures = []
    for number in range(args.pages):
        layout = layouts[number % len(layouts)]
        writing, truth = _writing(layout, by_digit, rng)
        dpi = int(rng.choice(DPIS))
        turns = _quarter_turns(rng)
        scanned = specimen.scan(
            specimen.fill(printed[layout.name], layout, PRINT_DPI, writing, rng),
            rng,
            scale=dpi / PRINT_DPI,
            angle=float(rng.uniform(-10, 10)),
            quarter_turns=turns,
            perspective=0.02 if rng.random() < PERSPECTIVE else 0.0,
            noise=float(rng.uniform(1, 5)),
        ).image
        image, saved_as = _saved(scanned, dpi, rng)
        started = time.process_time()
        form = read_form(image, templates)
        if not isinstance(form, FormPage):
            failures.append(f"page {number} ({layout.name}, {dpi} dpi, {turns} turns, {saved_as}): {form.reason}")
            tally["aligned"][1] += 1
            continue
        template = next(template for template in templates if template.name == form.template)
        verdicts = form_verdicts(form, template, setup.classifier, review_below=None)
        cpu[f"{layout.name} {dpi} dpi"].append(time.process_time() - started)
        tally["aligned"][0] += form.template == layout.name
        tally["aligned"][1] += 1
        page_right = form.template == layout.name
        for box in layout.boxes:
            verdict = verdicts.get(box.name)
            if not truth[box.name]:
                right = verdict is not None and verdict.status == Status.NO_DIGIT
                key = "empty -> no_digit"
            else:
                right = verdict is not None and verdict.prediction == truth[box.name]
                key = f"{box.kind} fields"
            tally[key][0] += right
            tally[key][1] += 1
            if box.kind == "comb" and truth[box.name]:  # cell by cell, where the field's length was read right
                said = verdict.prediction if verdict is not None else ""
                same_length = len(said) == len(truth[box.name])
                tally["comb cells"][0] += sum(a == b for a, b in zip(said, truth[box.name], strict=False)) * same_length
                tally["comb cells"][1] += len(truth[box.name])
            page_right &= right
        tally["pages, every field right"][0] += page_right
        tally["pages, every field right"][1] += 1
    print(f"{args.pages} pages, {len(layouts)} layouts, {setup.split} digits")
    for key in (
        "aligned",
        "comb fields",
        "comb cells",
        "digit fields",
        "number fields",
        "empty -> no_digit",
        "pages, every field right",
    ):
        got, total = tally[key]
        print(f"{key:<26} {got:>6} / {total:<6} {got / max(total, 1):>8.2%}")
    print("CPU per page (ms, one core, alignment and reading with the model):")
    for key in sorted(cpu, key=lambda key: (key.split()[0], int(key.split()[1]))):
        times = np.array(cpu[key]) * 1000
        print(f"  {key:<16} median {np.median(times):>6.0f}  mean {times.mean():>6.0f}  ({len(times)} pages)")
    for failure in failures:
        print("not aligned:", failure)
    return 0


def _template(folder: Path, layout: specimen.Layout) -> Template:
    cv2.imwrite(str(folder / f"{layout.name}.png"), specimen.draw(layout, REFERENCE_DPI))
    path = folder / f"{layout.name}.yaml"
    path.write_text(specimen.template_yaml(layout, REFERENCE_DPI, reference=f"{layout.name}.png"), encoding="utf-8")
    return load_template(path)


def _writing(
    layout: specimen.Layout, by_digit: list[np.ndarray], rng: np.random.Generator
) -> tuple[dict[str, list[np.ndarray | None]], dict[str, str]]:
    """What is written in each field (digit images, None for an empty comb cell) and the digits it says."""
    writing: dict[str, list[np.ndarray | None]] = {}
    truth = {}
    for box in layout.boxes:
        if rng.random() < EMPTY_FIELD:
            count = 0
        elif box.kind == "comb":
            count = int(rng.integers(1, box.cells + 1)) if rng.random() < SHORT_COMB else box.cells
        elif box.kind == "number":
            count = _number_length(box, rng)
        else:
            count = 1
        written = "".join(map(str, rng.integers(0, 10, size=count)))
        if count and "range" in box.rules:  # people write a month as a month: a value within its range
            low, high = cast("list[int]", box.rules["range"])
            written = str(int(rng.integers(low, high + 1)))
        writing[box.name] = [by_digit[int(char)][rng.integers(len(by_digit[int(char)]))] for char in written]
        truth[box.name] = written
    return writing, truth


def _number_length(box: specimen.Box, rng: np.random.Generator) -> int:
    """How many digits a number field gets: as its `digits` rule allows, else one to four."""
    allowed = cast("int | list[int]", box.rules.get("digits", [1, 4]))
    low, high = (allowed, allowed) if isinstance(allowed, int) else allowed
    return int(rng.integers(low, high + 1))


def _quarter_turns(rng: np.random.Generator) -> int:
    draw = rng.random()
    if draw < UPSIDE_DOWN:
        return 2
    if draw < UPSIDE_DOWN + SIDEWAYS:
        return int(rng.choice([1, 3]))
    return 0


def _saved(scanned: np.ndarray, dpi: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The scan as the daemon would decode it from a PNG, a JPEG or a one-page PDF."""
    draw = rng.random()
    if draw < JPEG:
        quality = int(rng.integers(60, 91))
        data = cv2.imencode(".jpg", scanned, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        return decode(data, name="scan.jpg", max_pixels=10**9), f"JPEG {quality}"
    if draw < JPEG + PDF:
        (page,) = open_pages(specimen.pdf(scanned, dpi), name="scan.pdf", max_pixels=10**9, max_pages=1).pages
        assert page.image is not None, page.error
        return page.image, "PDF"
    return scanned, "PNG"


if __name__ == "__main__":
    sys.exit(main())
