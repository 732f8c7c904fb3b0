"""A file of several pages through the ledger: its pages kept run by run, committed once, placed page by page."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.test_commit import open_ledger, processed, rows_of
from watcher.ledger import progress
from watcher.ledger.ledger import Processed
from watcher.ledger.record import Reading
from watcher.service import config as configuration
from watcher.service.config import Config
from watcher.vocabulary import Status

SEVEN = Reading(status=Status.OK, prediction="7", confidence=0.99, top3=(((7, 0.99), (1, 0.005), (2, 0.001)),))


@pytest.fixture
def reviewed_config(tmp_path: Path) -> Config:
    loaded = configuration.load(write_config(tmp_path, "model:\n  path: models/fake\npaths:\n  review: inbox/review\n"))
    configuration.prepare_folders(loaded)
    return loaded


def unsure(page: int) -> Reading:
    return Reading(
        status=Status.LOW_CONFIDENCE, prediction="4", confidence=0.5, top3=(((4, 0.5), (9, 0.4)),), page=page
    )


def page(reading: Reading, number: int) -> Reading:
    return Reading(reading.status, reading.prediction, reading.confidence, reading.top3, reading.detail, number)


def test_kept_pages_are_committed_with_the_last_ones_and_unsure_pages_go_to_review_as_pictures(
    reviewed_config: Config,
) -> None:
    config = reviewed_config
    ledger = open_ledger(config)
    first = processed(ledger, config.paths.inbox, "scan.pdf")
    ledger.keep_pages(first.claim, [page(SEVEN, 1), unsure(2)], {2: b"picture of page 2"})
    assert ledger.next_page(first.claim) == 3
    assert not config.paths.results.exists(), "no row is written before the file's last page"
    failed = Reading(status=Status.ERROR, detail="damaged PDF page (it cannot be drawn)", page=3)
    last = Processed(first.claim, "abc", [failed, unsure(4)], paged=True, pictures={4: b"picture of page 4"})
    recorded = ledger.commit([last], model="fake/1")
    assert [(r.reading.page, r.moved_to) for r in recorded] == [
        (1, "inbox/done/scan.pdf"),
        (2, "inbox/review/scan.pdf.page-2.png"),
        (3, "inbox/done/scan.pdf"),
        (4, "inbox/review/scan.pdf.page-4.png"),
    ]
    rows = rows_of(config.paths.results)
    assert [(row[2], row[11]) for row in rows] == [
        ("ok", "1"),
        ("low_confidence", "2"),
        ("error", "3"),
        ("low_confidence", "4"),
    ]
    assert (config.paths.done / "scan.pdf").read_bytes() == b"scan.pdf"
    assert (config.paths.review / "scan.pdf.page-2.png").read_bytes() == b"picture of page 2"
    assert (config.paths.review / "scan.pdf.page-4.png").read_bytes() == b"picture of page 4"
    assert sorted(p.name for p in ledger.workspace.folder.iterdir()) == ["lease", "lock"], (
        "nothing is left of the claim"
    )


def test_a_single_image_is_placed_whole_as_before(reviewed_config: Config) -> None:
    config = reviewed_config
    ledger = open_ledger(config)
    recorded = ledger.commit([processed(ledger, config.paths.inbox, "a.png", unsure(1))], model="fake/1")
    assert [r.moved_to for r in recorded] == ["inbox/review/a.png"]


def test_a_page_cut_short_by_a_crash_is_not_kept_and_is_read_again(config: Config) -> None:
    ledger = open_ledger(config)
    item = processed(ledger, config.paths.inbox, "scan.tif")
    ledger.keep_pages(item.claim, [page(SEVEN, 1)], {})
    kept_path = item.claim.path.with_name(".scan.tif.pages.jsonl")
    with kept_path.open("ab") as torn:
        torn.write(b'{"page": 2, "sta')
    assert ledger.next_page(item.claim) == 2
    ledger.keep_pages(item.claim, [page(SEVEN, 2)], {})
    assert [reading.page for reading in progress.kept(item.claim.path).readings] == [1, 2]


def test_kept_pages_survive_a_takeover_of_their_claim(config: Config) -> None:
    dead = open_ledger(config)
    item = processed(dead, config.paths.inbox, "scan.pdf")
    dead.keep_pages(item.claim, [page(SEVEN, 1), page(SEVEN, 2)], {})
    # Its lock goes with its file descriptor, as when the daemon is killed; its claim stays.
    dead.workspace.close()
    ledger = open_ledger(config)
    (adopted,) = ledger.start()
    assert adopted.name == "scan.pdf" and ledger.next_page(adopted) == 3
    recorded = ledger.commit([Processed(adopted, "abc", [page(SEVEN, 3)], paged=True)], model="fake/1")
    assert [r.reading.page for r in recorded] == [1, 2, 3]
