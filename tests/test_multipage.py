"""Files of several pages through the real daemon: PDFs and TIFFs, whole sheets, hostile PDFs, kill -9 mid-file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest

from tests.daemons import DaemonProcess, run_once, write_e2e_config
from tests.documents import (
    PAIRS_READ_OF_40_AT_100_DPI,
    a4_pdf,
    add_vector_page,
    encrypted_pdf,
    saved,
    tiff,
    written_sheet,
)
from tests.helpers import drop, result_rows, wait_for
from watcher.vocabulary import Event

PAGES_CONFIG = "watch:\n  extensions: [.png, .pdf, .tif]\n"


def inbox_of(folder: Path) -> Path:
    inbox = folder / "inbox"
    inbox.mkdir()
    return inbox


def by_page(rows: list[dict[str, str]], file: str) -> list[tuple[str, str, str]]:
    return sorted(
        ((row["page"], row["status"], row["prediction"]) for row in rows if row["file"] == file),
        key=lambda r: int(r[0]),
    )


@pytest.mark.slow
def test_every_page_of_a_pdf_and_a_tiff_gets_its_row_and_the_files_go_to_done(tmp_path: Path) -> None:
    inbox = inbox_of(tmp_path)
    config = write_e2e_config(tmp_path, extra=PAGES_CONFIG)
    sheets = [written_sheet(3 * n, 3, dpi=150, seed=n) for n in range(10)]
    blank = np.full_like(sheets[0][0], 240)
    # Ten pages: more than one run of a worker's pages, so some are kept before the file's rows are written.
    (inbox / "letters.pdf").write_bytes(
        a4_pdf([page for page, _ in sheets[:4]] + [blank] + [p for p, _ in sheets[4:9]], dpi=150)
    )
    (inbox / "stack.tif").write_bytes(tiff([sheets[9][0], blank]))
    fine, fine_number = written_sheet(0, 4, dpi=600, height_mm=8)
    (inbox / "fine.png").write_bytes(cv2.imencode(".png", fine)[1].tobytes())
    result = run_once(config)
    rows = result_rows(tmp_path / "results.csv")
    numbers = [number for _, number in sheets]
    expected = [(str(n + 1), "ok", number) for n, number in enumerate(numbers[:4])] + [("5", "no_digit", "")]
    expected += [(str(n + 6), "ok", number) for n, number in enumerate(numbers[4:9])]
    assert by_page(rows, "letters.pdf") == expected
    assert by_page(rows, "stack.tif") == [("1", "ok", numbers[9]), ("2", "no_digit", "")]
    assert by_page(rows, "fine.png") == [("1", "ok", fine_number)]
    assert {row["moved_to"] for row in rows} == {
        "inbox/done/letters.pdf",
        "inbox/done/stack.tif",
        "inbox/done/fine.png",
    }
    assert all(row["field"] == "" for row in rows)
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["fine.png", "letters.pdf", "stack.tif"]
    kept = [json.loads(line) for line in result.stdout.splitlines() if Event.PAGES_KEPT in line]
    assert kept[0]["pages"] == "1-8", "the first eight pages were kept, then the last ones shared by the workers"
    assert [int(line["pages"].split("-")[0]) for line in kept[1:]] == [
        int(line["pages"].split("-")[1]) + 1 for line in kept[:-1]
    ], "kept in page order, each page once"


@pytest.mark.slow
def test_an_unsure_page_goes_to_review_as_a_picture_of_that_page(tmp_path: Path) -> None:
    inbox = inbox_of(tmp_path)
    # Every reading is below 1: every written page needs review.
    config = write_e2e_config(
        tmp_path, extra=PAGES_CONFIG + "paths:\n  review: inbox/review\nreview:\n  threshold: 1.0\n"
    )
    written, number = written_sheet(0, 3, dpi=200)
    (inbox / "two.pdf").write_bytes(a4_pdf([np.full_like(written, 240), written], dpi=200))
    run_once(config)
    rows = result_rows(tmp_path / "results.csv")
    assert [(r["page"], r["status"], r["prediction"], r["moved_to"]) for r in rows] == [
        ("1", "no_digit", "", "inbox/done/two.pdf"),
        ("2", "low_confidence", number, "inbox/review/two.pdf.page-2.png"),
    ]
    picture = cv2.imread(str(inbox / "review" / "two.pdf.page-2.png"), cv2.IMREAD_UNCHANGED)
    assert picture is not None and max(picture.shape[:2]) == 2000, "the page, shrunk to be looked at"
    assert sorted(p.name for p in (inbox / "review").iterdir()) == ["two.pdf.page-2.png"]
    assert (inbox / "done" / "two.pdf").exists()


@pytest.mark.slow
def test_hostile_pdfs_get_a_reason_and_their_good_pages_are_still_read(tmp_path: Path) -> None:
    inbox = inbox_of(tmp_path)
    config = write_e2e_config(tmp_path, extra=PAGES_CONFIG + "limits:\n  max_pages: 3\n")
    written, number = written_sheet(0, 2, dpi=150)
    good = a4_pdf([written], dpi=150)
    (inbox / "locked.pdf").write_bytes(encrypted_pdf("secret"))
    (inbox / "cut.pdf").write_bytes(good[: len(good) // 3])
    (inbox / "long.pdf").write_bytes(a4_pdf([written] * 4, dpi=150))
    (inbox / "picture.pdf").write_bytes(cv2.imencode(".png", written)[1].tobytes())
    bomb = pdfium.PdfDocument(a4_pdf([written], dpi=150))
    add_vector_page(bomb, (200 * 72, 200 * 72), (72, 72, 72, 72))
    (inbox / "bomb.pdf").write_bytes(saved(bomb))
    run_once(config)
    rows = {(row["file"], row["page"]): row for row in result_rows(tmp_path / "results.csv")}
    assert {key: (row["status"], row["detail"]) for key, row in rows.items() if row["status"] == "error"} == {
        ("locked.pdf", "1"): ("error", "PDF is encrypted (a password is needed)"),
        ("cut.pdf", "1"): ("error", "damaged or truncated PDF (it cannot be parsed)"),
        ("long.pdf", "1"): ("error", "PDF has 4 pages; limits.max_pages is 3"),
        ("bomb.pdf", "2"): ("error", "page too large: 60000x60000 > 40 Mpx (200x200 in at 300 dpi)"),
    }
    assert rows[("picture.pdf", "1")]["prediction"] == number, "a PNG named .pdf is read by its bytes"
    assert rows[("bomb.pdf", "1")]["prediction"] == number, "a page's siblings are still read"
    assert sorted(p.name for p in (inbox / "error").iterdir()) == ["cut.pdf", "locked.pdf", "long.pdf"]
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["bomb.pdf", "picture.pdf"]


@pytest.mark.slow
def test_a_pdf_half_read_when_the_daemon_is_killed_is_finished_once_after_a_restart(tmp_path: Path) -> None:
    inbox = inbox_of(tmp_path)
    config = write_e2e_config(tmp_path, extra=PAGES_CONFIG)
    sheets = [written_sheet(n % 40, 2, dpi=100, seed=n) for n in range(40)]
    pdf = a4_pdf([page for page, _ in sheets], dpi=100)
    # What a daemon that is never killed reads of the same file: the restarted one must give exactly that.
    (tmp_path / "calm").mkdir()
    calm = write_e2e_config(tmp_path / "calm", extra=PAGES_CONFIG)
    (inbox_of(tmp_path / "calm") / "long.pdf").write_bytes(pdf)
    run_once(calm)
    uninterrupted = [(row["page"], row["prediction"]) for row in result_rows(tmp_path / "calm" / "results.csv")]
    right = sum(prediction == number for (_, prediction), (_, number) in zip(uninterrupted, sheets, strict=True))
    assert right >= PAIRS_READ_OF_40_AT_100_DPI
    daemon = DaemonProcess(config, name="first")
    try:
        daemon.wait_started()
        drop(inbox, "long.pdf", pdf)
        wait_for(lambda: any(e["event"] == Event.PAGES_KEPT for e in daemon.events()), timeout=120, what="pages kept")
        daemon.kill()
    finally:
        daemon.close()
    assert result_rows(tmp_path / "results.csv") == [], "killed before its last page: no row yet"
    restarted = DaemonProcess(config, name="restarted")
    try:
        restarted.wait_started()
        rows = wait_for(lambda: result_rows(tmp_path / "results.csv"), timeout=180, what="the file's rows")
        kept = [e["pages"] for e in restarted.events() if e["event"] == Event.PAGES_KEPT]
    finally:
        restarted.terminate()
        restarted.close()
    assert [row["page"] for row in rows] == [str(n) for n in range(1, 41)], "every page once, none twice"
    assert [(row["page"], row["prediction"]) for row in rows] == uninterrupted, "each page's own reading"
    assert kept and not kept[0].startswith("1-"), "the pages kept before the kill were not read again"
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["long.pdf"]
