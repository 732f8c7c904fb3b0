from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.daemons import ROOT
from watcher.forms import specimen
from watcher.forms.draft import find_fields
from watcher.forms.template import load_template


@pytest.mark.parametrize("layout", [specimen.METER, specimen.EXAM], ids=lambda layout: layout.name)
def test_the_boxes_of_a_blank_form_are_found_in_reading_order_with_kinds_and_cells(layout: specimen.Layout) -> None:
    found = find_fields(specimen.draw(layout, 150))
    printed = sorted(layout.boxes, key=lambda box: (box.y, box.x))  # the specimens' rows share their tops
    assert [(field.kind, field.cells) for field in found] == [(box.kind, box.cells) for box in printed]
    for field, box in zip(found, printed, strict=True):
        assert np.abs(np.subtract(field.box, specimen.box_pixels(box, 150))).max() <= 1


def test_a_scanned_blank_form_gives_the_same_boxes() -> None:
    scanned = specimen.scan(specimen.draw(specimen.EXAM, 200), np.random.default_rng(0), angle=0.3, noise=4.0)
    assert [(field.kind, field.cells) for field in find_fields(scanned.image)] == [
        ("comb", 6),
        ("comb", 2),
        *[("digit", 1)] * 5,
        *[("number", 1)] * 3,
    ]


def test_labels_marks_and_a_plain_page_give_no_boxes() -> None:
    page = np.full((1200, 900), 250, np.uint8)
    cv2.putText(page, "Name O D B 0 8", (50, 200), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 40, 4)
    cv2.rectangle(page, (50, 400), (120, 470), 40, -1)  # a filled mark has no hole
    assert find_fields(page) == []


def _template_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", "template", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_the_template_command_writes_a_draft_that_passes_check_and_a_picture(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "card.png"), specimen.draw(specimen.METER, 150))
    written = _template_command(str(tmp_path / "card.png"), "--out", str(tmp_path / "drafts" / "meter.yaml"))
    assert written.returncode == 0, written.stderr
    assert "5 fields (field1 comb of 8 cells, field2 comb of 4 cells, field3 number" in written.stdout
    template = load_template(tmp_path / "drafts" / "meter.yaml")
    assert template.reference.resolve() == (tmp_path / "card.png").resolve()
    assert [field.name for field in template.fields] == [f"field{n}" for n in range(1, 6)]
    picture = cv2.imread(str(tmp_path / "drafts" / "meter-boxes.png"))
    assert (
        picture.shape[:2] == specimen.draw(specimen.METER, 150).shape
        and (picture[:, :, 2] > picture[:, :, 1] + 100).any()
    )
    again = _template_command(str(tmp_path / "card.png"), "--out", str(tmp_path / "drafts" / "meter.yaml"))
    assert again.returncode == 78 and "already exists" in again.stderr and len(again.stderr.splitlines()) == 1


def test_the_template_command_says_when_it_finds_no_boxes(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((800, 600), 250, np.uint8))
    refused = _template_command(str(tmp_path / "blank.png"))
    assert refused.returncode == 78 and "no printed boxes found" in refused.stderr
    assert not (tmp_path / "blank.yaml").exists()
