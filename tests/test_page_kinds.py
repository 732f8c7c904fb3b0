"""Every page kind an office scanner writes, through the real daemon: black-and-white (1-bit) scans in TIFF and PDF."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemons import run_once, write_e2e_config
from tests.documents import bilevel_pdf, bilevel_tiff, written_sheet
from tests.helpers import result_rows

PAGES_CONFIG = "watch:\n  extensions: [.png, .pdf, .tif]\n"


@pytest.mark.slow
def test_bilevel_tiffs_and_pdf_pages_read_as_the_grey_pages_they_were(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_e2e_config(tmp_path, extra=PAGES_CONFIG)
    # 200 and 300 dpi, as office scanners write black and white; at 200 dpi a pen's stroke is 2-3 px wide.
    sheets = [written_sheet(3 * n, 3, dpi=dpi, seed=n) for n, dpi in enumerate((300, 200, 200, 200))]
    (inbox / "g4.tif").write_bytes(bilevel_tiff(sheets[0][0], dpi=300, compression="group4"))
    (inbox / "g3.tif").write_bytes(bilevel_tiff(sheets[1][0], dpi=200, compression="group3"))
    (inbox / "scan.pdf").write_bytes(bilevel_pdf([sheets[2][0], sheets[3][0]], dpi=200, encodings=["g4", "flate"]))
    run_once(config)
    rows = {
        (row["file"], row["page"]): (row["status"], row["prediction"]) for row in result_rows(tmp_path / "results.csv")
    }
    numbers = [number for _, number in sheets]
    assert rows == {
        ("g4.tif", "1"): ("ok", numbers[0]),
        ("g3.tif", "1"): ("ok", numbers[1]),
        ("scan.pdf", "1"): ("ok", numbers[2]),
        ("scan.pdf", "2"): ("ok", numbers[3]),
    }
