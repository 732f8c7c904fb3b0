"""`digit-watcher report`: counts, charts and the contact sheet, checked in the HTML and in a real browser."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import Browser

from watcher.ledger.record import HEADER, Row, encode, unguard
from watcher.report.summary import ReportError, run, summarise, to_thumbnail_png

HOSTILE = "<script>alert(1)</script>.png"
AWKWARD = 'a, "b"\nc ü.png'
VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)

    def iter(self, tag: str | None = None) -> list[Element]:
        found = [self] if tag in (None, self.tag) else []
        for child in self.children:
            if isinstance(child, Element):
                found += child.iter(tag)
        return found

    def by_id(self, element_id: str) -> Element:
        (match,) = [element for element in self.iter() if element.attrs.get("id") == element_id]
        return match

    def by_class(self, name: str) -> list[Element]:
        return [element for element in self.iter() if name in element.attrs.get("class", "").split()]


class TreeBuilder(HTMLParser):
    """A small DOM from the standard library's tokenizer, enough to query what the page holds."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.open[-1].children.append(element)
        if tag not in VOID_ELEMENTS:
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open[-1].children.append(Element(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert tag in [element.tag for element in self.open], f"stray </{tag}>"
        while self.open.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


def parse(page: str) -> Element:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    assert builder.open == [builder.root], f"unclosed elements: {[element.tag for element in builder.open[1:]]}"
    return builder.root


FOLDER_BY_STATUS = {"ok": "done", "no_digit": "done", "low_confidence": "review", "error": "error"}


def row(
    time: str,
    file: str,
    *,
    status: str,
    prediction: str = "",
    confidence: str = "",
    moved_to: str = "",
    detail: str = "",
) -> Row:
    """A results row; it was moved to the folder its status implies unless `moved_to` says otherwise."""
    top3 = f"{prediction}:{confidence}" if prediction else ""
    moved_to = moved_to or f"inbox/{FOLDER_BY_STATUS[status]}/{file}"
    return Row(
        time, file, status, prediction, confidence, top3, "mnist-cnn/1", "0" * 64, "12.3", moved_to, detail, "1", ""
    )


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A config folder with a results.csv and the review/error files its rows point at."""
    blue = np.zeros((40, 40, 3), np.uint8)
    blue[:, :, 0] = 255
    write_png(tmp_path / "inbox/review/blue.png", blue)
    wide = np.full((150, 300), 128, np.uint8)
    write_png(tmp_path / "inbox/review/wide.png", wide)
    # 16-bit, half-transparent red: on white it must come out pink, 8-bit.
    translucent = np.zeros((30, 30, 4), np.uint16)
    translucent[:, :, 2] = 65535
    translucent[:, :, 3] = 32768
    write_png(tmp_path / "inbox/review/translucent.png", translucent)
    write_png(tmp_path / "inbox/error" / HOSTILE, np.zeros((20, 20), np.uint8))
    write_png(tmp_path / "inbox/review" / AWKWARD, np.full((20, 20), 200, np.uint8))
    (tmp_path / "inbox/error/notes.png").write_bytes(b"hello, not an image")
    (tmp_path / "inbox/error/link.png").symlink_to(tmp_path / "inbox/review/blue.png")
    rows = [
        row("2026-11-24T22:40:00.000Z", "a.png", status="ok", prediction="7", confidence="0.9900"),
        row("2026-11-24T22:40:10.000Z", "b.png", status="ok", prediction="7", confidence="0.9700"),
        row("2026-11-24T22:41:00.000Z", "c.png", status="ok", prediction="3", confidence="0.9512"),
        row("2026-11-24T22:41:30.000Z", "year.png", status="ok", prediction="2024", confidence="0.9100"),
        row("2026-11-24T22:42:00.000Z", "blank.png", status="no_digit"),
        row("2026-11-24T22:43:00.000Z", "blue.png", status="low_confidence", prediction="1", confidence="0.4100"),
        row("2026-11-24T22:44:00.000Z", "wide.png", status="low_confidence", prediction="4", confidence="0.5500"),
        row(
            "2026-11-24T22:45:00.000Z", "translucent.png", status="low_confidence", prediction="8", confidence="0.6000"
        ),
        row("2026-11-24T22:46:00.000Z", HOSTILE, status="error", detail='=HYPERLINK("x") <b>bold</b>'),
        row("2026-11-24T22:47:00.000Z", AWKWARD, status="low_confidence", prediction="5", confidence="0.3000"),
        row("2026-11-24T22:48:00.000Z", "notes.png", status="error", detail="not a PNG image"),
        row("2026-11-24T22:48:30.000Z", "gone.png", status="error", detail="not a PNG image"),
        row(
            "2026-11-24T22:48:34.123Z",
            "-link.png",
            status="error",
            moved_to="inbox/error/link.png",
            detail="symbolic link (links are never followed)",
        ),
    ]
    (tmp_path / "results.csv").write_bytes(HEADER + encode(rows))
    return tmp_path


@pytest.fixture
def page(site: Path) -> Path:
    out = site / "report.html"
    assert run(results=site / "results.csv", out=out, root=site) == 0
    return out


def tiles(document: Element) -> list[Element]:
    return document.by_id("sheet").by_class("tile")


def test_counts_by_status_and_digit(page: Path) -> None:
    document = parse(page.read_text(encoding="utf-8"))
    counts = {
        status: document.by_id(f"status-{status}").by_class("count")[0].text()
        for status in ("ok", "low_confidence", "no_digit", "error")
    }
    assert counts == {"ok": "4", "low_confidence": "4", "no_digit": "1", "error": "4"}
    bar_titles = [title.text() for title in document.by_id("digits").iter("title")]
    assert "7: 2" in bar_titles and "3: 1" in bar_titles and "0: 0" in bar_titles
    assert "multi-digit numbers: 1" in bar_titles


def test_confidence_histogram_counts_each_confidence_once(page: Path) -> None:
    document = parse(page.read_text(encoding="utf-8"))
    tooltips = [bar.iter("title")[0].text() for bar in document.by_id("confidence").iter("g")]
    assert len(tooltips) == 20
    assert "0.95–1.00: ok 3, low_confidence 0" in tooltips
    assert "0.40–0.45: ok 0, low_confidence 1" in tooltips
    counts = [int(part.rsplit(" ", 1)[1]) for tooltip in tooltips for part in tooltip.split(": ", 1)[1].split(", ")]
    assert sum(counts) == 8


def test_throughput_keeps_only_the_hour_before_the_newest_row(tmp_path: Path) -> None:
    times = [
        "2026-11-24T20:00:00.000Z",
        "2026-11-24T21:00:59.999Z",
        "2026-11-24T21:01:00.000Z",
        "2026-11-24T21:30:00.000Z",
        "2026-11-24T21:30:01.000Z",
        "2026-11-24T20:59:00.000Z",
        "not a time",
        "2026-11-24T22:00:00.000Z",
    ]
    results = tmp_path / "results.csv"
    results.write_bytes(
        HEADER
        + encode(
            [
                row(time, f"{index}.png", status="ok", prediction="1", confidence="0.99")
                for index, time in enumerate(times)
            ]
        )
    )
    summary = summarise(results)
    assert len(summary.per_minute) == 3, "minutes before the last hour must not be kept"
    per_minute = summary.throughput()
    assert len(per_minute) == 60
    assert per_minute[0][0].isoformat() == "2026-11-24T21:01:00+00:00"
    assert per_minute[-1][0].isoformat() == "2026-11-24T22:00:00+00:00"
    assert {minute.strftime("%H:%M"): number for minute, number in per_minute if number} == {
        "21:01": 1,
        "21:30": 2,
        "22:00": 1,
    }


def test_sheet_is_newest_first_with_unguarded_escaped_text(page: Path) -> None:
    source = page.read_text(encoding="utf-8")
    document = parse(source)
    names = [tile.by_class("name")[0].text() for tile in tiles(document)]
    assert names == ["-link.png", "gone.png", "notes.png", AWKWARD, HOSTILE, "translucent.png", "wide.png", "blue.png"]
    assert document.iter("script") == [] and "<script>" not in source
    hostile_tile = tiles(document)[4]
    assert hostile_tile.by_class("detail")[0].text() == '=HYPERLINK("x") <b>bold</b>'
    assert hostile_tile.iter("b") == []


def test_thumbnails_and_placeholders(page: Path) -> None:
    document = parse(page.read_text(encoding="utf-8"))
    by_name = {tile.by_class("name")[0].text(): tile for tile in tiles(document)}
    reasons = {
        name: tile.by_class("placeholder")[0].text() for name, tile in by_name.items() if tile.by_class("placeholder")
    }
    assert reasons == {
        "-link.png": "symbolic link (links are never followed)",
        "gone.png": "no longer there (moved or deleted since)",
        "notes.png": "not a PNG image",
    }
    pictures = {
        name: decode_data_uri(tile.iter("img")[0].attrs["src"]) for name, tile in by_name.items() if tile.iter("img")
    }
    assert set(pictures) == {"blue.png", "wide.png", "translucent.png", HOSTILE, AWKWARD}
    assert pictures["wide.png"].shape[:2] == (48, 96)
    assert pictures["blue.png"].shape[:2] == (40, 40)
    assert all(picture.dtype == np.uint8 for picture in pictures.values())
    pink = pictures["translucent.png"]
    assert pink.shape == (30, 30, 3)
    assert np.abs(pink[15, 15].astype(int) - [127, 127, 255]).max() <= 1


def decode_data_uri(uri: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    image = cv2.imdecode(np.frombuffer(base64.b64decode(uri[len(prefix) :]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def test_page_needs_no_network(page: Path) -> None:
    document = parse(page.read_text(encoding="utf-8"))
    links = [
        value
        for element in document.iter()
        for name, value in element.attrs.items()
        if name in ("src", "href", "srcset", "action")
    ]
    assert links and all(link.startswith("data:image/png;base64,") for link in links)
    assert document.iter("link") == [] and document.iter("script") == []
    assert "url(" not in "".join(style.text() for style in document.iter("style"))


@pytest.mark.parametrize(
    ("cell", "original"),
    [
        ("'=1+2", "=1+2"),
        ("'-x.png", "-x.png"),
        ("'@a", "@a"),
        ("'\tx", "\tx"),
        ("'quoted.png", "'quoted.png"),
        ("'", "'"),
    ],
)
def test_unguard_strips_only_the_formula_guard(cell: str, original: str) -> None:
    assert unguard(cell) == original


def test_sixteen_bit_grey_becomes_eight_bit() -> None:
    grey = np.full((200, 100), 65535 // 2, np.uint16)
    thumbnail = cv2.imdecode(np.frombuffer(to_thumbnail_png(grey), np.uint8), cv2.IMREAD_UNCHANGED)
    assert thumbnail.dtype == np.uint8 and thumbnail.shape == (96, 48)
    assert int(thumbnail[50, 20]) == 127


def test_missing_results_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError) as raised:
        run(results=tmp_path / "nope.csv", out=tmp_path / "report.html", root=tmp_path)
    assert str(raised.value) == f"results file not found: {tmp_path / 'nope.csv'}"
    assert not (tmp_path / "report.html").exists()


def test_a_file_that_is_not_results_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text("name,value\nx,1\n", encoding="utf-8")
    with pytest.raises(ReportError, match="not a results file"):
        run(results=tmp_path / "other.csv", out=tmp_path / "report.html", root=tmp_path)


def test_torn_last_row_is_skipped_and_reported(tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    whole = encode([row("2026-11-24T22:40:00.000Z", "a.png", status="ok", prediction="7", confidence="0.9900")])
    results.write_bytes(HEADER + whole + whole[:30])
    summary = summarise(results)
    assert (summary.rows, summary.malformed_rows) == (1, 1)
    run(results=results, out=tmp_path / "report.html", root=tmp_path)
    assert (
        "1 malformed rows skipped"
        in parse((tmp_path / "report.html").read_text(encoding="utf-8")).iter("header")[0].text()
    )


def test_empty_results_still_make_a_page(tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_bytes(HEADER)
    run(results=tmp_path / "results.csv", out=tmp_path / "report.html", root=tmp_path)
    document = parse((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert document.by_id("status-ok").by_class("count")[0].text() == "0"
    assert tiles(document) == []


@pytest.mark.slow
def test_browser_renders_counts_and_thumbnails(page: Path, browser: Browser) -> None:
    # Debian's Chromium through Playwright (tests/browsing.py), as the review station's tests drive it.
    tab = browser.new_page(viewport={"width": 1200, "height": 2000})
    tab.goto(page.as_uri())
    dumped = parse(tab.content())
    assert dumped.iter("script") == []
    assert dumped.by_id("status-error").by_class("count")[0].text() == "4"
    names = [tile.by_class("name")[0].text() for tile in tiles(dumped)]
    assert HOSTILE in names and AWKWARD in names
    assert len(tiles(dumped)[4].iter("img")) == 1

    shot = cv2.imdecode(np.frombuffer(tab.screenshot(), np.uint8), cv2.IMREAD_COLOR)
    tab.close()
    assert shot is not None and shot.shape[:2] == (2000, 1200)
    assert shot.std() > 20, "the screenshot is blank"
    blue, green, red = shot[:, :, 0].astype(int), shot[:, :, 1].astype(int), shot[:, :, 2].astype(int)
    pure_blue = (blue > 230) & (green < 30) & (red < 30)
    # Only the blue.png thumbnail (96 by 96 on screen) is pure blue: the browser decoded the embedded PNG.
    assert 80 * 80 < pure_blue.sum() < 100 * 100


def test_review_decisions_per_person_and_day_with_the_share_corrected(tmp_path: Path) -> None:
    decisions = [
        ("2026-11-24T09:00:00.000Z", "ann", "verified"),
        ("2026-11-24T09:01:00.000Z", "ann", "corrected"),
        ("2026-11-24T09:02:00.000Z", "ann", "verified"),
        ("2026-11-24T09:03:00.000Z", "ann", "verified"),
        ("2026-11-24T10:00:00.000Z", "<b>bob</b>", "corrected"),
        ("2026-11-25T08:00:00.000Z", "ann", "corrected"),
    ]
    rows = [row("2026-11-24T08:00:00.000Z", "a.png", status="low_confidence", prediction="7", confidence="0.5")]
    rows += [
        row(time, "a.png", status=status, prediction="7", moved_to="inbox/done/a.png")._replace(
            model=f"person:{person}"
        )
        for time, person, status in decisions
    ]
    (tmp_path / "results.csv").write_bytes(HEADER + encode(rows))
    run(results=tmp_path / "results.csv", out=tmp_path / "report.html", root=tmp_path)
    document = parse((tmp_path / "report.html").read_text(encoding="utf-8"))
    section = document.by_id("review")
    table = [[cell.text() for cell in line.iter("td")] for line in section.iter("tbody")[0].iter("tr")]
    assert table == [
        ["2026-11-25", "ann", "1", "0", "1", "100.0 %"],
        ["2026-11-24", "ann", "4", "3", "1", "25.0 %"],
        ["2026-11-24", "<b>bob</b>", "1", "0", "1", "100.0 %"],
    ]
    assert " ".join(document.by_id("review-summary").text().split()) == (
        "6 decisions by 2 people: 50.0 % corrected (the model read them wrong), 50.0 % verified."
    )
    assert document.by_id("status-corrected").by_class("count")[0].text() == "3"


def test_no_review_decisions_yet(page: Path) -> None:
    assert parse(page.read_text(encoding="utf-8")).by_id("review").text() == "Review decisionsNone yet."


def test_readings_are_grouped_by_the_inbox_folder_they_came_from(tmp_path: Path) -> None:
    rows = [
        row("2026-11-24T08:00:00.000Z", "top.png", status="ok", prediction="1", confidence="0.99"),
        row("2026-11-24T08:00:01.000Z", "ward 3/a.png", status="ok", prediction="2", confidence="0.99"),
        row("2026-11-24T08:00:02.000Z", "ward 3/2026/b.png", status="error", detail="not a PNG image"),
        row("2026-11-24T08:00:03.000Z", "<i>lab/c.png", status="low_confidence", prediction="3", confidence="0.5"),
        row("2026-11-24T08:00:04.000Z", "ward 3/d.png", status="low_confidence", prediction="4", confidence="0.5"),
    ]
    rows.append(rows[-1]._replace(status="verified", model="person:ann", time="2026-11-24T09:00:00.000Z"))
    (tmp_path / "results.csv").write_bytes(HEADER + encode(rows))
    run(results=tmp_path / "results.csv", out=tmp_path / "report.html", root=tmp_path)
    table = parse((tmp_path / "report.html").read_text(encoding="utf-8")).by_id("folders")
    cells = [[cell.text() for cell in line.iter("td")] for line in table.iter("tr")[1:]]
    # The busiest folder first; a person's decision is not a reading of the folder again.
    assert cells == [
        ["ward 3/", "3", "1", "1", "0", "1"],
        ["(top level)", "1", "1", "0", "0", "0"],
        ["<i>lab/", "1", "0", "1", "0", "0"],
    ]


def test_no_folder_table_when_every_file_came_from_the_top_level(tmp_path: Path) -> None:
    rows = [row("2026-11-24T08:00:00.000Z", "top.png", status="ok", prediction="1", confidence="0.99")]
    (tmp_path / "results.csv").write_bytes(HEADER + encode(rows))
    run(results=tmp_path / "results.csv", out=tmp_path / "report.html", root=tmp_path)
    assert 'id="folders"' not in (tmp_path / "report.html").read_text(encoding="utf-8")
