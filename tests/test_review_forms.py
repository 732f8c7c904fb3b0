"""Form fields in review, on the example card read by the real daemon: each unsure field is an item, shown as its
part of the page; the form stays in review/ until its last one is decided, and that decision writes its forms row."""

from __future__ import annotations

import csv
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import Browser, expect

from tests.browsing import watched
from tests.daemons import ROOT, run_once, write_e2e_config
from tests.helpers import result_rows, wait_for
from tests.reviewing import ReviewServer, kill_while_deciding, open_desk
from tests.test_review_app import TOKEN, client_for
from watcher.forms.template import Template, load_templates
from watcher.model.classify import load_classifier
from watcher.model.corrections import CorrectionsError, field_digits, load_corrections
from watcher.review.decide import AlreadyDecided, Desk
from watcher.service import config as configuration
from watcher.service.config import Config

EXAMPLE = ROOT / "examples" / "form"
FORM = "filled-2.png"  # account 75310623, reading 258, month 4, meter 9, code left empty
UNSURE = ["account", "reading", "month", "meter"]  # at threshold 1.0 every field with writing waits for a person


@pytest.fixture(scope="module")
def read_by_the_daemon(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's second card read once by `digit-watcher run --once`, every written field sent to review."""
    folder = tmp_path_factory.mktemp("form-read")
    (folder / "templates").mkdir()
    shutil.copy(EXAMPLE / "form.yaml", folder / "templates" / "meter.yaml")
    shutil.copy(EXAMPLE / "form.png", folder / "templates" / "form.png")
    (folder / "inbox").mkdir()
    shutil.copy(EXAMPLE / FORM, folder / "inbox" / FORM)
    extra = "paths:\n  review: inbox/review\nreview:\n  threshold: 1.0\nforms:\n  templates: templates\n"
    run_once(write_e2e_config(folder, extra=extra))
    return folder


@pytest.fixture
def config(read_by_the_daemon: Path, tmp_path: Path) -> Config:
    shutil.copytree(read_by_the_daemon, tmp_path, dirs_exist_ok=True)
    return configuration.load(tmp_path / "config.yaml")


@pytest.fixture
def templates(config: Config) -> tuple[Template, ...]:
    assert config.forms.templates is not None
    return load_templates(config.forms.templates)


@pytest.fixture
def desk(config: Config, templates: tuple[Template, ...]) -> Iterator[Desk]:
    opened = open_desk(config, templates=templates)
    yield opened
    opened.close()


def forms_rows(config: Config) -> list[dict[str, str]]:
    path = config.forms_folder / "meter.csv"
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def in_review(config: Config) -> list[str]:
    assert config.paths.review is not None
    return sorted(name for name in os.listdir(config.paths.review) if not name.startswith("."))


@pytest.mark.slow
def test_each_unsure_field_waits_and_the_last_decision_moves_the_form_and_writes_its_row(
    config: Config, desk: Desk
) -> None:
    items = desk.queue.items()
    assert [(item.name, item.row.field) for item in items] == [(FORM, field) for field in UNSURE]
    assert forms_rows(config) == []
    typed = {"month": "5"}  # one field corrected, the others accepted as read
    for item in items[:-1]:
        desk.decide(item.id, typed.get(item.row.field, ""))
        assert in_review(config) == [FORM]
    assert [item.row.field for item in desk.queue.items()] == ["meter"]
    desk.decide(items[-1].id, "")
    assert in_review(config) == []
    assert os.listdir(config.paths.done) == [FORM]
    (row,) = forms_rows(config)
    assert {name: row[name] for name in ["file", "page", *UNSURE, "code"]} == {
        "file": FORM,
        "page": "1",
        "account": "75310623",
        "reading": "258",
        "month": "5",
        "meter": "9",
        "code": "",
    }
    assert row["status"] == "corrected"
    assert "month corrected by person:ann" in row["detail"]
    assert int(row["inliers"]) > 0
    decided = [r for r in result_rows(config.paths.results) if r["model"] == "person:ann"]
    assert [(r["field"], r["status"], r["moved_to"]) for r in decided] == [
        ("account", "verified", f"inbox/review/{FORM}"),
        ("reading", "verified", f"inbox/review/{FORM}"),
        ("month", "corrected", f"inbox/review/{FORM}"),
        ("meter", "verified", f"inbox/done/{FORM}"),
    ]


def test_a_field_is_shown_as_its_part_of_the_page_and_the_page_on_demand(config: Config, desk: Desk) -> None:
    client = client_for(desk)
    client.get(f"/?token={TOKEN}")
    shown = {item["field"]: item for item in client.get("/api/queue").json()["items"]}
    assert sorted(shown) == sorted(UNSURE)
    field = client.get(f"/api/items/{shown['account']['id']}/image")
    page = client.get(f"/api/items/{shown['account']['id']}/page")
    assert field.headers["content-type"] == page.headers["content-type"] == "image/png"
    field_image = cv2.imdecode(np.frombuffer(field.content, np.uint8), cv2.IMREAD_UNCHANGED)
    page_image = cv2.imdecode(np.frombuffer(page.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert page_image.shape[:2] == cv2.imread(str(EXAMPLE / FORM), cv2.IMREAD_UNCHANGED).shape[:2]
    # The account comb is a wide strip (8 cells, 472x65 px on the reference): its picture is that strip, not the page.
    height, width = field_image.shape[:2]
    assert width > 3 * height
    assert width * height < page_image.shape[0] * page_image.shape[1] / 10


def test_two_reviewers_on_two_fields_of_one_form_both_decide_and_one_row_is_written(
    config: Config, desk: Desk, templates: tuple[Template, ...]
) -> None:
    other = open_desk(config, reviewer="bob", templates=templates, secret=b"test")
    try:
        items = desk.queue.items()
        outcomes: dict[str, str] = {}

        def decide_all(reviewer: Desk, mine: list[str]) -> None:
            for item in items:
                if item.row.field in mine:
                    outcomes[item.row.field] = reviewer.decide(item.id, "").status

        threads = [
            threading.Thread(target=decide_all, args=(desk, UNSURE[::2])),
            threading.Thread(target=decide_all, args=(other, UNSURE[1::2])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert outcomes == dict.fromkeys(UNSURE, "verified")
        with pytest.raises(AlreadyDecided):
            other.decide(items[0].id, "")
    finally:
        other.close()
    assert in_review(config) == []
    (row,) = forms_rows(config)
    assert row["status"] == "verified"
    assert "by person:ann" in row["detail"] and "by person:bob" in row["detail"]


def test_undoing_a_field_decided_before_the_last_sends_it_back_to_the_form_in_review(
    config: Config, desk: Desk
) -> None:
    first, *_ = desk.queue.items()
    desk.decide(first.id, "1")
    outcome = desk.undo()
    assert outcome.moved_to == f"inbox/review/{FORM}"
    assert in_review(config) == [FORM]
    assert [item.row.field for item in desk.queue.items()] == [*UNSURE[1:], UNSURE[0]]
    back = [item for item in desk.queue.items() if item.row.field == UNSURE[0]]
    assert back[0].row.detail == "undone by person:ann"


@pytest.mark.slow
def test_a_reviewer_killed_after_the_last_fields_rows_has_its_forms_row_written_once(
    config: Config, templates: tuple[Template, ...]
) -> None:
    first = open_desk(config, templates=templates)
    try:
        for item in first.queue.items()[:-1]:
            first.decide(item.id, "")
    finally:
        first.close()
    kill_while_deciding(config.source, "appended")
    assert len(forms_rows(config)) == 1  # written with the decision's row, before the move the kill stopped
    again = open_desk(config, templates=templates)
    try:
        assert again.queue.items() == []
    finally:
        again.close()
    assert os.listdir(config.paths.done) == [FORM]
    assert len(forms_rows(config)) == 1
    assert len([r for r in result_rows(config.paths.results) if r["model"] == "person:ann"]) == len(UNSURE)


@pytest.mark.slow
def test_a_person_decides_a_forms_fields_in_the_browser_and_its_row_is_written(
    browser: Browser, config: Config
) -> None:
    server = ReviewServer(config.source, reviewer="tester")
    try:
        page = browser.new_page()
        problems = watched(page)
        page.goto(server.url)
        expect(page.locator("#left")).to_have_text(f"{len(UNSURE)} left")
        # Grouped by the value read, as ever: 258 (reading), 4 (month), 75310623 (account), 9 (meter).
        expect(page.locator("#current-file")).to_have_text(f"{FORM}, field reading")
        page.keyboard.press("s")
        page.keyboard.press("s")
        expect(page.locator("#current-file")).to_have_text(f"{FORM}, field account")
        picture = page.locator("#current-image")
        expect(picture).to_have_attribute("src", re.compile(r"/image$"))
        wait_for(lambda: picture.evaluate("image => image.naturalWidth > 3 * image.naturalHeight"), what="the strip")
        page.keyboard.press("p")
        expect(picture).to_have_attribute("src", re.compile(r"/page$"))
        page.keyboard.press("p")
        for left in range(len(UNSURE) - 1, -1, -1):
            page.keyboard.press("Enter")
            expect(page.locator("#left")).to_have_text(f"{left} left")
        wait_for(lambda: forms_rows(config), what="the card's forms row")
        page.close()
    finally:
        assert server.stop() == 0
    (row,) = forms_rows(config)
    assert (row["reading"], row["month"], row["status"]) == ("258", "4", "verified")
    assert problems == []


@pytest.mark.slow
def test_decided_fields_are_learnt_from_cut_out_of_their_form_as_the_daemon_reads_them(
    config: Config, desk: Desk
) -> None:
    typed = {"month": "5"}
    for item in desk.queue.items():
        desk.decide(item.id, typed.get(item.row.field, ""))
    with pytest.raises(CorrectionsError, match="no review decisions"):
        load_corrections(config.paths.results)  # without the templates each is skipped: the row names the form
    corrections = load_corrections(config.paths.results, templates=config.forms.templates)
    values = {"account": "75310623", "reading": "258", "month": "5", "meter": "9"}  # as decided
    # Each field cut as the daemon reads it; one cut into another count of digits than decided is skipped.
    assert config.forms.templates is not None
    forms = load_templates(config.forms.templates)
    cut = [v for f, v in values.items() if field_digits(config.paths.done / FORM, f, v, forms) is not None]
    assert len(cut) >= 3
    assert (corrections.scans, corrections.skipped) == (len(cut), len(UNSURE) - len(cut))
    assert sorted(corrections.labels.tolist()) == sorted(int(digit) for digit in "".join(cut))
    # The images are the fields' digits: the shipped model reads them as the person decided, but the month.
    read = load_classifier(ROOT / "models" / "mnist-cnn").probabilities(corrections.images)[:, :10].argmax(axis=1)
    assert np.mean(read == corrections.labels) >= 0.8
