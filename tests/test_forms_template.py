from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.daemons import ROOT, write_e2e_config
from tests.forms import write_template
from watcher.forms import specimen
from watcher.forms.template import TemplateError, load_template, load_templates
from watcher.service import config as configuration

VALID_FIELD = "  account:\n    box: [20, 40, 300, 40]\n    kind: comb\n    cells: 8\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_template(tmp_path, specimen.METER)
    return tmp_path


def _template(folder: Path, text: str) -> Path:
    path = folder / "card.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_specimen_template_loads_with_its_fields_in_order(folder: Path) -> None:
    template = load_template(folder / "meter.yaml")
    assert template.name == "meter" and template.reference == folder / "meter.png"
    assert [field.name for field in template.fields] == ["account", "reading", "month", "meter", "code"]
    account, reading, month = template.fields[:3]
    assert (account.kind, account.cells, account.check) == ("comb", 8, "luhn")
    assert reading.digits == (1, 6) and month.range == (1, 12) and month.cells == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reference: missing.png\nfields:\n" + VALID_FIELD, "card.yaml: reference: cannot read"),
        (
            "reference: meter.png\nfields:\n  a:\n    box: [700, 40, 300, 40]\n    kind: digit\n",
            "fields.a.box: [700, 40, 300, 40] reaches outside the reference (827x583 px)",
        ),
        (
            "reference: meter.png\nfields:\n  a:\n    box: [20, 40, 0, 40]\n    kind: digit\n",
            "fields.a.box: width and height must be above 0",
        ),
        (
            "reference: meter.png\nfields:\n  a:\n    box: [20, 40]\n    kind: digit\n",
            "fields.a.box: expected [x, y, width, height]",
        ),
        (
            "reference: meter.png\nfields:\n  a:\n    box: [20, 40, 30, 40]\n    kind: letters\n",
            "fields.a.kind: must be one of digit, number, comb, got 'letters'",
        ),
        (
            "reference: meter.png\nfields:\n  a:\n    box: [20, 40, 300, 40]\n    kind: comb\n",
            "fields.a.cells: a comb needs its count of cells",
        ),
        (
            "reference: meter.png\nfields:\n  a:\n    box: [20, 40, 30, 40]\n    kind: digit\n    cells: 3\n",
            "fields.a.cells: only a comb has cells",
        ),
        ("reference: meter.png\nfields:\n" + VALID_FIELD + VALID_FIELD, "card.yaml: account: given twice (line 7)"),
        (
            "reference: meter.png\nreference: meter.png\nfields:\n" + VALID_FIELD,
            "card.yaml: reference: given twice (line 2)",
        ),
        (
            "reference: meter.png\nfields:\n  Status:\n    box: [20, 40, 30, 40]\n    kind: digit\n",
            "fields.Status: the name is taken by a forms CSV column",
        ),
        (
            "reference: meter.png\nfields:\n  file:\n    box: [20, 40, 30, 40]\n    kind: digit\n",
            "fields.file: the name is taken by a forms CSV column",
        ),
        (
            "reference: meter.png\nfields:\n  a:\n    box: [20, 40, 30, 40]\n    kind: number\n    digits: [3, 1]\n",
            "fields.a.digits: expected 0 <= min <= max",
        ),
        (
            "reference: meter.png\nfields:\n  a:\n    box: [20, 40, 30, 40]\n    kind: number\n    range: 12\n",
            "fields.a.range: expected [min, max] in whole numbers",
        ),
        (
            "reference: meter.png\nfields:\n  a:\n    box: [20, 40, 30, 40]\n    kind: number\n    check: crc\n",
            "fields.a.check: must be luhn, got 'crc'",
        ),
        (
            "reference: meter.png\nfields:\n  a:\n    box: [20, 40, 30, 40]\n    kind: digit\n    colour: red\n",
            "fields.a.colour: unknown key",
        ),
        ("reference: meter.png\nfields: {}\n", "fields: expected a mapping of field names"),
        ("reference: meter.png\nlayout: x\nfields:\n" + VALID_FIELD, "card.yaml: layout: unknown key"),
        ("reference: meter.png\nfields:\n  a: [\n", "card.yaml: not valid YAML (line"),
    ],
)
def test_each_mistake_is_named_in_one_line(folder: Path, text: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        load_template(_template(folder, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value) and str(folder / "card.yaml") in str(caught.value)


def test_a_reference_too_plain_to_align_to_is_refused(folder: Path) -> None:
    plain = np.full((600, 800), 250, np.uint8)
    cv2.rectangle(plain, (100, 100), (400, 160), 60, 2)
    cv2.imwrite(str(folder / "plain.png"), plain)
    with pytest.raises(TemplateError, match=r"reference: plain.png has too few features to align pages to \(\d+, need"):
        load_template(
            _template(folder, "reference: plain.png\nfields:\n  a:\n    box: [100, 100, 300, 60]\n    kind: number\n")
        )


def test_a_reference_that_is_not_an_image_is_refused(folder: Path) -> None:
    (folder / "notes.png").write_text("not an image")
    with pytest.raises(TemplateError, match=r"reference: notes\.png: not a PNG image"):
        load_template(_template(folder, "reference: notes.png\nfields:\n" + VALID_FIELD))


def test_a_folder_without_templates_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"forms\.templates: no \.yaml templates in"):
        load_templates(tmp_path)
    with pytest.raises(TemplateError, match="is not a folder"):
        load_templates(tmp_path / "nowhere")


def test_the_config_names_a_templates_folder_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("forms:\n  templates: forms\n")
    assert configuration.load(tmp_path / "config.yaml").forms.templates == tmp_path / "forms"
    (tmp_path / "config.yaml").write_text("")
    assert configuration.load(tmp_path / "config.yaml").forms.templates is None
    (tmp_path / "config.yaml").write_text("forms:\n  template: forms\n")
    with pytest.raises(configuration.ConfigError, match=r"forms\.template: unknown key"):
        configuration.load(tmp_path / "config.yaml")


def _check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", "check", "--config", str(config)], cwd=ROOT, capture_output=True, text=True
    )


@pytest.mark.slow
def test_check_validates_every_template(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    write_template(templates, specimen.METER)
    config = write_e2e_config(tmp_path, extra="forms:\n  templates: templates\n")
    passed = _check(config)
    assert passed.returncode == 0 and "form templates meter" in passed.stdout, passed.stderr
    (templates / "broken.yaml").write_text(
        "reference: meter.png\nfields:\n  a:\n    box: [1, 1, 5, 5]\n    kind: tick\n"
    )
    failed = _check(config)
    assert failed.returncode == 78
    assert failed.stderr.strip().endswith("broken.yaml: fields.a.kind: must be one of digit, number, comb, got 'tick'")
    assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr
