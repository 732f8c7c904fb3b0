"""The pages of one file read by all the workers at once: its rows still once each and in page order, and a page
stuck in a native call still an error row while the pages before and after it are read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest

from tests.conftest import FakeClassifier
from tests.daemons import ROOT, run_once, write_e2e_config
from tests.documents import PAIRS_READ_OF_40_AT_100_DPI, a4_pdf, add_vector_page, saved, written_sheet
from tests.helpers import result_rows
from watcher.ledger import progress
from watcher.ledger.claim import Claim
from watcher.ledger.record import Reading
from watcher.recognise import PAGES_PER_TASK, Prepared, PreparedPage
from watcher.service.config import Config
from watcher.service.daemon import Daemon, Task, batch_parts, page_runs
from watcher.service.metrics import Metrics
from watcher.service.notify import Notifier
from watcher.vocabulary import Event, Status

PAGES_CONFIG = "watch:\n  extensions: [.pdf]\n"
HANG_POINTS = 333  # the size, in points, of the page that hangs PDFium (tests/native_hang/sitecustomize.py)
PAGE_TIMEOUT_S = 1


def test_runs_share_a_files_pages_evenly_among_the_workers() -> None:
    assert page_runs(2, 40, workers=2, most=8) == [(2, 7), (9, 7), (16, 7), (23, 6), (29, 6), (35, 6)]
    assert page_runs(9, 10, workers=2, most=8) == [(9, 1), (10, 1)]
    assert page_runs(9, 9, workers=4, most=8) == [(9, 1)], "never a run of no pages"
    assert page_runs(2, 17, workers=2, most=8) == [(2, 8), (10, 8)], "runs of PAGES_PER_TASK at most"


def test_more_pages_than_the_runs_allowed_are_handed_out_a_window_at_a_time() -> None:
    runs = page_runs(2, 2000, workers=2, most=8)
    assert runs == [(2 + n * PAGES_PER_TASK, PAGES_PER_TASK) for n in range(8)]
    assert page_runs(2, 20, workers=2, most=3) == [(2, 8), (10, 8), (18, 3)]
    assert page_runs(2, 20, workers=2, most=0) == []
    assert page_runs(21, 20, workers=2, most=8) == [], "nothing left"


def test_a_lone_files_runs_are_classified_as_they_are_read_and_a_backlog_in_full_parts(config: Config) -> None:
    claim = Claim("long.pdf", config.paths.inbox / "long.pdf", 0.0)
    runs = [Task(claim, first, 7) for first in (2, 9, 16, 23)]
    assert batch_parts(runs, pages=8) == [[run] for run in runs]
    files = [Task(Claim(f"{n}.png", config.paths.inbox / f"{n}.png", 0.0), 1, PAGES_PER_TASK) for n in range(10)]
    assert batch_parts(files, pages=8) == [files[:8], files[8:]], "a file's first run counted as one page"


class TwoWorkers:
    """Stands in for the daemon's Preparer where only its count of workers is asked."""

    workers = 2


def read_run(first: int, last: int, *, page_count: int, stuck: int | None = None) -> tuple[Prepared, list[Reading]]:
    """What a run of pages gave, as the daemon has it after the model: page `stuck` an error, the run ending there."""
    numbers = range(first, (last if stuck is None else stuck) + 1)
    prepared = Prepared("sha", tuple(PreparedPage(n, error="took too long" if n == stuck else "") for n in numbers))
    readings = [
        Reading(status=Status.ERROR if n == stuck else Status.OK, prediction="" if n == stuck else "7", page=n)
        for n in numbers
    ]
    return prepared._replace(page_count=page_count), readings


def test_runs_handed_out_after_one_cut_short_are_dropped_and_its_pages_read_again_in_order(config: Config) -> None:
    """The daemon's bookkeeping alone, with runs' results made up: no worker, no timing."""
    daemon = Daemon(config, FakeClassifier(), notifier=Notifier.from_environ({}), metrics=Metrics())
    daemon.preparer = TwoWorkers()  # type: ignore[assignment]
    daemon._open_ledger()
    try:
        (config.paths.inbox / "long.pdf").write_bytes(b"%PDF-")
        claimed = daemon.ledger.claim("long.pdf", ready_at=0.0)
        assert claimed is not None

        def back(task: Task, *, stuck: int | None = None) -> bool:
            """The run's result seen by the daemon; True once the file is to be committed."""
            last = task.first_page + task.pages - 1
            done = daemon._finished_or_kept(task, *read_run(task.first_page, last, page_count=12, stuck=stuck))
            if done is not None:
                return True
            daemon._hand_out(claimed)  # as the daemon does once the batch is seen
            return False

        assert not back(daemon._first_run(claimed, 1, 1))
        assert list(daemon._waiting) == [Task(claimed, 2, 6), Task(claimed, 8, 5)], "the rest shared by two workers"
        first, second = daemon._waiting.popleft(), daemon._waiting.popleft()
        assert not back(first, stuck=4), "pages 2-4 kept, page 4 an error, the run cut short there"
        assert not back(second), "pages 8-12, read beside it, dropped: page 5 is next"
        assert list(daemon._waiting) == [Task(claimed, 5, 4), Task(claimed, 9, 4)], "read again from the gap"
        assert not back(daemon._waiting.popleft())
        assert back(daemon._waiting.popleft())
        kept = progress.kept(claimed.path).readings
        assert [reading.page for reading in kept] == list(range(1, 9)), "each page once, in page order"
        assert [reading.status for reading in kept if reading.page == 4] == [Status.ERROR]
    finally:
        daemon.ledger.close()


def sheets(count: int) -> list[tuple[np.ndarray, str]]:
    return [written_sheet(n % 40, 2, dpi=100, seed=n) for n in range(count)]


@pytest.mark.slow
def test_a_lone_long_pdf_is_read_by_every_worker_and_its_rows_come_in_page_order(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_e2e_config(tmp_path, extra=PAGES_CONFIG)
    written = sheets(40)
    (inbox / "long.pdf").write_bytes(a4_pdf([page for page, _ in written], dpi=100))
    result = run_once(config)
    rows = result_rows(tmp_path / "results.csv")
    assert [row["page"] for row in rows] == [str(n) for n in range(1, 41)], "every page once, in page order"
    right = sum(row["prediction"] == number for row, (_, number) in zip(rows, written, strict=True))
    assert right >= PAIRS_READ_OF_40_AT_100_DPI
    kept = [json.loads(line) for line in result.stdout.splitlines() if Event.PAGES_KEPT in line]
    assert kept[0]["pages"] == "1-1", "alone, its first page is read first, to learn how many there are"
    assert len({line["worker"] for line in kept}) >= 2, "its pages were read by more than one worker process"


@pytest.mark.slow
def test_a_page_stuck_in_the_middle_of_a_lone_file_is_an_error_row_and_the_pages_around_it_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Page 5 of 12 hangs in PDFium's native code (as in test_stuck_page.py): it ends the run it is in, so the runs
    read beside it after it are dropped and its next pages read again."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "tests" / "native_hang"), str(ROOT)]))
    monkeypatch.setenv("DIGIT_WATCHER_HANG_POINTS", str(HANG_POINTS))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_e2e_config(tmp_path, extra=f"{PAGES_CONFIG}limits:\n  page_timeout_s: {PAGE_TIMEOUT_S}\n")
    written = sheets(11)
    document = pdfium.PdfDocument(a4_pdf([page for page, _ in written[:4]], dpi=100))
    add_vector_page(document, (HANG_POINTS, HANG_POINTS), (72, 72, 72, 72))
    document.import_pages(pdfium.PdfDocument(a4_pdf([page for page, _ in written[4:]], dpi=100)))
    (inbox / "stuck.pdf").write_bytes(saved(document))
    result = run_once(config)
    rows = result_rows(tmp_path / "results.csv")
    took = f"page took longer than {PAGE_TIMEOUT_S} s to read (limits.page_timeout_s)"
    assert [(row["page"], row["status"], row["detail"]) for row in rows if row["status"] == "error"] == [
        ("5", "error", took)
    ]
    assert [row["page"] for row in rows] == [str(n) for n in range(1, 13)], "every page once, in page order"
    numbers = [number for _, number in written]
    predictions = [row["prediction"] for row in rows if row["status"] != "error"]
    assert sum(got == number for got, number in zip(predictions, numbers, strict=True)) >= 10
    stuck = [json.loads(line) for line in result.stdout.splitlines() if Event.WORKER_STUCK in line]
    assert [(line["file"], line["page"]) for line in stuck] == [("stuck.pdf", 5)], "one worker killed, once"
    assert [p.name for p in (inbox / "done").iterdir()] == ["stuck.pdf"]
