"""A page stuck inside a C library call cannot hold the daemon: its worker is killed, the page is an error row,
and the other pages and files are read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from tests.daemons import ROOT, run_once, write_e2e_config
from tests.documents import a4_pdf, add_vector_page, saved, written_sheet
from tests.helpers import result_rows
from watcher.vocabulary import Event

HANG_POINTS = 333  # the size, in points, of the page that hangs PDFium (tests/native_hang/sitecustomize.py)
PAGE_TIMEOUT_S = 1


@pytest.mark.slow
def test_a_page_stuck_in_pdfium_is_an_error_row_and_the_rest_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hang is real native code: libc's sigsuspend with every signal blocked, reached from PDFium's render by
    the test's own sitecustomize shim (see its docstring), since no real file is known to hang PDFium."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "tests" / "native_hang"), str(ROOT)]))
    monkeypatch.setenv("DIGIT_WATCHER_HANG_POINTS", str(HANG_POINTS))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_e2e_config(
        tmp_path, extra=f"watch:\n  extensions: [.png, .pdf]\nlimits:\n  page_timeout_s: {PAGE_TIMEOUT_S}\n"
    )
    (first, first_number), (last, last_number) = written_sheet(0, 3, dpi=100), written_sheet(3, 2, dpi=100, seed=1)
    document = pdfium.PdfDocument(a4_pdf([first], dpi=100))
    add_vector_page(document, (HANG_POINTS, HANG_POINTS), (72, 72, 72, 72))
    document.import_pages(pdfium.PdfDocument(a4_pdf([last], dpi=100)))
    (inbox / "stuck.pdf").write_bytes(saved(document))
    other, other_number = written_sheet(6, 2, dpi=150, seed=2)
    (inbox / "other.pdf").write_bytes(a4_pdf([other], dpi=150))
    result = run_once(config)
    rows = {
        (row["file"], row["page"]): (row["status"], row["prediction"], row["detail"])
        for row in result_rows(tmp_path / "results.csv")
    }
    took = f"page took longer than {PAGE_TIMEOUT_S} s to read (limits.page_timeout_s)"
    assert rows == {
        ("stuck.pdf", "1"): ("ok", first_number, ""),
        ("stuck.pdf", "2"): ("error", "", took),
        ("stuck.pdf", "3"): ("ok", last_number, ""),
        ("other.pdf", "1"): ("ok", other_number, ""),
    }
    stuck = [json.loads(line) for line in result.stdout.splitlines() if Event.WORKER_STUCK in line]
    assert [(line["file"], line["page"]) for line in stuck] == [("stuck.pdf", 2)], "one worker killed, once"
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["other.pdf", "stuck.pdf"]
