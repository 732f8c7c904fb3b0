"""The review station in a real browser (Debian's Chromium driven by Playwright), against the real server.

The queue is made by the real daemon: MNIST scans read by `run --once` with a review threshold of 1,
so every reading short of certain waits in review/ with its real row.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browsing import watched
from tests.daemons import run_once, write_e2e_config
from tests.helpers import digit_png, drop, mnist_scans, result_rows, wait_for
from tests.reviewing import ReviewServer, send_to_review
from watcher.service import config as configuration

pytestmark = pytest.mark.slow

REVIEW_ON = "paths:\n  review: inbox/review\nreview:\n  threshold: 1.0\n"
SCANS = 48


@pytest.fixture(scope="module")
def read_by_the_daemon(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder after `run --once` over MNIST scans: rows in results.csv, the unsure ones in review/."""
    folder = tmp_path_factory.mktemp("daemon-read")
    (folder / "inbox").mkdir()
    config = write_e2e_config(folder, extra=REVIEW_ON)
    for number, (_, data) in enumerate(mnist_scans(SCANS)):
        drop(folder / "inbox", f"scan-{number:02d}.png", data)
    run_once(config)
    return folder


@pytest.fixture
def folder(read_by_the_daemon: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "station"
    shutil.copytree(read_by_the_daemon, copy)
    return copy


@pytest.fixture
def server(folder: Path) -> Iterator[ReviewServer]:
    started = ReviewServer(folder / "config.yaml", reviewer="tester")
    yield started
    assert started.stop() == 0


def waiting(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder / "inbox" / "review") if not name.startswith("."))


def rows_after(folder: Path, start: int, *, count: int) -> list[dict[str, str]]:
    """The rows after the first `start`, once all `count` are there (the page sends decisions in the background)."""
    rows = result_rows(folder / "results.csv")[start:]
    assert len(rows) <= count, rows
    return rows if len(rows) == count else []


def test_a_person_reviews_twenty_items_with_the_keyboard_alone(
    browser: Browser, server: ReviewServer, folder: Path
) -> None:
    before = result_rows(folder / "results.csv")
    queued = waiting(folder)
    assert len(queued) >= 22, "the daemon sent too few scans to review for this test"
    page = browser.new_page()
    problems = watched(page)
    page.goto(server.url)
    assert "token" not in page.url
    expect(page.locator("#left")).to_have_text(f"{len(queued)} left")
    page.keyboard.press("g")
    expect(page.locator("#grid h2").first).to_contain_text("read as")
    page.keyboard.press("g")
    page.keyboard.press("s")
    page.keyboard.press("ArrowLeft")
    typed = []
    for decided in range(20):
        reading = page.locator("#current-reading").inner_text()
        if decided % 2:
            value = str((int(reading[-1]) + 1) % 10)
            page.keyboard.type(value)
            expect(page.locator("#typed")).to_have_text(value)
            typed.append(value)
        page.keyboard.press("Enter")
        expect(page.locator("#left")).to_have_text(f"{len(queued) - decided - 1} left")
    rows = wait_for(lambda: rows_after(folder, len(before), count=20), what="20 decision rows")
    assert [row["status"] for row in rows] == ["verified", "corrected"] * 10
    assert [row["prediction"] for row in rows[1::2]] == typed
    assert {row["model"] for row in rows} == {"person:tester"}
    for row in rows:
        (reading,) = [r for r in before if r["moved_to"] == f"inbox/review/{os.path.basename(row['moved_to'])}"]
        assert (row["file"], row["sha256"], row["page"]) == (reading["file"], reading["sha256"], "1")
        assert (folder / row["moved_to"]).is_file()
        assert row["moved_to"].startswith("inbox/done/")
    assert len(waiting(folder)) == len(queued) - 20
    page.keyboard.press("u")
    expect(page.locator("#left")).to_have_text(f"{len(queued) - 19} left")
    undone = wait_for(lambda: rows_after(folder, len(before) + 20, count=1), what="the undo row")
    assert [(row["status"], row["detail"]) for row in undone] == [("low_confidence", "undone by person:tester")]
    assert len(waiting(folder)) == len(queued) - 19
    assert problems == []


def test_two_reviewers_deciding_one_item_one_is_told_it_is_already_decided(
    browser: Browser, server: ReviewServer, folder: Path
) -> None:
    before = len(result_rows(folder / "results.csv"))
    first, second = browser.new_context(), browser.new_context()
    pages = [first.new_page(), second.new_page()]
    problems = [watched(page) for page in pages]
    for page in pages:
        page.goto(server.url)
        expect(page.locator("#current-reading")).not_to_be_empty()
    shown = [page.locator("#current-file").inner_text() for page in pages]
    assert shown[0] == shown[1]
    # The second reviewer's page goes on seeing the queue as it was, as if its next poll were still to come.
    stale = pages[1].evaluate("fetch('/api/queue').then((response) => response.text())")
    pages[1].route("**/api/queue", lambda route: route.fulfill(body=stale, content_type="application/json"))
    pages[0].keyboard.press("Enter")
    expect(pages[0].locator("#message")).to_contain_text("verified")
    pages[1].keyboard.press("Enter")
    expect(pages[1].locator("#message")).to_have_text(f"{shown[0]}: already decided")
    assert len(result_rows(folder / "results.csv")) == before + 1
    first.close()
    second.close()
    assert problems == [[], []]


def test_without_the_token_the_page_is_refused(browser: Browser, server: ReviewServer) -> None:
    page = browser.new_page()
    response = page.goto(server.base)
    assert response is not None
    assert response.status == 403
    response = page.goto(server.base + "?token=guessed")
    assert response is not None
    assert response.status == 403
    page.close()


def test_a_hostile_file_name_shows_as_text(browser: Browser, folder: Path) -> None:
    # A name holds no '/', so `<script>…</script>.png` can only be a row's `file` (here a page of it);
    # the real file in review/ carries an <img onerror> name instead.
    config = configuration.load(folder / "config.yaml")
    shutil.rmtree(folder / "inbox" / "review")
    (folder / "inbox" / "review").mkdir()
    send_to_review(config, "<img src=x onerror=alert(1)>.png", digit_png(rows=2), prediction="2")
    send_to_review(config, "page.png", digit_png(rows=3), prediction="3", file="<script>alert(1)</script>.png", page=2)
    send_to_review(config, "scan.pdf.page-1.png", digit_png(rows=4), prediction="4", file="scan.pdf", page=1)
    server = ReviewServer(folder / "config.yaml")
    try:
        page = browser.new_page()
        problems = watched(page)
        page.goto(server.url)
        expect(page.locator("#current-file")).to_have_text("<img src=x onerror=alert(1)>.png")
        page.keyboard.press("ArrowRight")
        expect(page.locator("#current-file")).to_have_text("<script>alert(1)</script>.png, page 2")
        page.keyboard.press("g")
        expect(page.locator("#grid .tile")).to_have_count(3)
        expect(page.locator("#grid")).to_contain_text("<script>alert(1)</script>.png")
        expect(page.locator("#grid")).to_contain_text("scan.pdf, page 1")  # a page's picture names its page
        assert page.locator("script").count() == 1
        assert page.locator("img[src=x]").count() == 0
        page.close()
    finally:
        assert server.stop() == 0
    assert problems == []
