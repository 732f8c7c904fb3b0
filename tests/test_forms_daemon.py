"""Forms through the real daemon: the example's filled scans, a row per field and a forms/NAME.csv row per page."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import cv2
import pytest

from tests.daemons import ROOT, run_once, write_e2e_config
from tests.documents import written_sheet
from tests.helpers import result_rows
from watcher.report import summary as report

EXAMPLE = ROOT / "examples" / "form"


@pytest.mark.slow
def test_filled_forms_are_read_field_by_field_and_each_page_gets_its_forms_row(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    shutil.copy(EXAMPLE / "form.yaml", templates / "meter.yaml")
    shutil.copy(EXAMPLE / "form.png", templates / "form.png")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("filled-1.png", "filled-2.png"):
        shutil.copy(EXAMPLE / name, inbox / name)
    sheet, _ = written_sheet(0, 3, dpi=100)
    (inbox / "not-a-form.png").write_bytes(cv2.imencode(".png", sheet)[1].tobytes())
    config = write_e2e_config(tmp_path, extra="forms:\n  templates: templates\n")
    run_once(config)
    with open(EXAMPLE / "filled.csv", newline="", encoding="utf-8") as file:
        written = list(csv.DictReader(file))
    rows = result_rows(tmp_path / "results.csv")
    (refused,) = [row for row in rows if row["file"] == "not-a-form.png"]
    assert refused["status"] == "error" and refused["detail"].startswith("matches no form template (closest: meter")
    rows.remove(refused)
    fields = ["account", "reading", "month", "meter", "code"]
    for page in written:
        own = [row for row in rows if row["file"] == page["file"]]
        assert [row["field"] for row in own] == fields
        assert [row["prediction"] for row in own] == [page[name] for name in fields]
        assert [row["status"] for row in own] == ["ok" if page[name] else "no_digit" for name in fields]
        assert {row["page"] for row in own} == {"1"}
    with open(tmp_path / "forms" / "meter.csv", newline="", encoding="utf-8") as file:
        forms = list(csv.DictReader(file))
    assert [{name: row[name] for name in ["file", *fields]} for row in sorted(forms, key=lambda r: r["file"])] == [
        {name: page[name] for name in ["file", *fields]} for page in written
    ]
    assert all(int(row["inliers"]) > 0 and row["page"] == "1" for row in forms)
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["filled-1.png", "filled-2.png"]
    assert sorted(p.name for p in (inbox / "error").iterdir()) == ["not-a-form.png"]
    # The report tells the template's pages, fields, review share and refusals from the same two files.
    report.run(results=tmp_path / "results.csv", out=tmp_path / "report.html", root=tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    section = html[html.index('<section id="forms">') :]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", section[: section.index("</tbody>")])
    empty = sum(not page[name] for page in written for name in fields)
    assert cells[:7] == ["meter", "2", "10", "0 (0.0 %)", str(empty), "1", "2"]
