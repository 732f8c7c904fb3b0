"""The ledger's order of durable steps, commits across several CSV files, and its light imports."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.test_commit import open_ledger, processed, rows_of
from watcher.ledger import record
from watcher.ledger.ledger import Folders, Processed, Sheet, replay
from watcher.ledger.record import Reading
from watcher.service.config import Config
from watcher.vocabulary import Status

ROOT = Path(__file__).resolve().parent.parent
FORM = ("file", "page", "account")


def test_a_commit_makes_each_step_durable_before_the_next(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = open_ledger(config)
    batch = [
        processed(ledger, config.paths.inbox, "a.png", Reading(status=Status.OK, prediction="1", confidence=0.9)),
        processed(ledger, config.paths.inbox, "b.png", Reading(status=Status.ERROR, detail="not a PNG image")),
    ]
    claimed_a, claimed_b = (item.claim.path for item in batch)
    with record.locked(config.paths.results):
        pass  # the header, written on first use, is not part of this commit
    calls: list[tuple[str, ...]] = []
    opened: dict[int, str] = {}

    def shown(path: Any) -> str:
        return os.path.relpath(os.fspath(path), config.root)

    def traced(name: str, real: Callable[..., Any], *, fd: bool = False) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, opened[args[0]]) if fd else (name, *(shown(a) for a in args[:2])))
            return real(*args, **kwargs)

        return call

    real_open = os.open

    def tracked_open(path: Any, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, *args, **kwargs)
        opened[fd] = shown(path)
        return fd

    monkeypatch.setattr(os, "open", tracked_open)
    monkeypatch.setattr(os, "write", traced("write", os.write, fd=True))
    monkeypatch.setattr(os, "fsync", traced("fsync", os.fsync, fd=True))
    monkeypatch.setattr(os, "rename", traced("rename", os.rename))
    monkeypatch.setattr(os, "link", traced("link", os.link))
    monkeypatch.setattr(os, "unlink", traced("unlink", os.unlink))
    ledger.commit(batch, model="fake/1")
    monkeypatch.undo()

    workspace, journal = shown(ledger.workspace.folder), shown(ledger.journal)
    assert calls == [
        ("write", journal + ".part"),
        ("fsync", journal + ".part"),
        ("rename", journal + ".part", journal),
        ("fsync", workspace),
        ("write", "results.csv"),
        ("fsync", "results.csv"),
        ("link", shown(claimed_a), "inbox/done/a.png"),
        ("unlink", shown(claimed_a)),
        ("link", shown(claimed_b), "inbox/error/b.png"),
        ("unlink", shown(claimed_b)),
        ("fsync", "inbox/done"),
        ("fsync", "inbox/error"),
        ("unlink", journal),
        ("fsync", workspace),
    ]
    ledger.close()


def form_batch(config: Config, ledger: Any, forms: Sheet) -> list[Processed]:
    """A two-page file, each page a results row and a form row, and a single image beside it."""
    pages = (
        Reading(status=Status.OK, prediction="12", confidence=0.95),
        Reading(status=Status.OK, prediction="34", confidence=0.97),
    )
    two_pages = processed(ledger, config.paths.inbox, "pages.png", *pages)
    form_rows = ((forms, ("pages.png", "1", "12")), (forms, ("pages.png", "2", "34")))
    return [
        Processed(claim=two_pages.claim, sha256=two_pages.sha256, readings=two_pages.readings, sheet_rows=form_rows),
        processed(ledger, config.paths.inbox, "single.png", Reading(status=Status.NO_DIGIT)),
    ]


@pytest.mark.parametrize("fail", ["at the first sheet", "in the second sheet's write", "at the first move"])
def test_rows_for_several_sheets_are_restored_exactly_once(
    config: Config, monkeypatch: pytest.MonkeyPatch, fail: str
) -> None:
    forms = Sheet(config.root / "forms" / "tax.csv", FORM)
    forms.path.parent.mkdir()
    ledger = open_ledger(config)

    class Killed(BaseException):
        pass

    headers = {record.HEADER, record.encode([FORM])}
    real_append = record.LockedResults.append
    appends = {"n": 0}

    def dying_append(self: record.LockedResults, data: bytes) -> int:
        if data not in headers:
            appends["n"] += 1
            if fail == "at the first sheet":
                raise Killed
            if fail == "in the second sheet's write" and appends["n"] == 2:
                os.write(self.fd, data[:5])  # cut short by a power cut
                raise Killed
        return real_append(self, data)

    def dying_move(source: Path, destination: Path) -> None:
        raise Killed

    monkeypatch.setattr(record.LockedResults, "append", dying_append)
    if fail == "at the first move":
        monkeypatch.setattr("watcher.ledger.place.move", dying_move)
    with pytest.raises(Killed):
        ledger.commit(form_batch(config, ledger, forms), model="fake/1")
    monkeypatch.undo()

    assert replay(ledger.journal) == 5
    assert [(r[1], r[3]) for r in rows_of(config.paths.results)] == [
        ("pages.png", "12"),
        ("pages.png", "34"),
        ("single.png", ""),
    ]
    assert forms.path.read_bytes() == b"file,page,account\r\npages.png,1,12\r\npages.png,2,34\r\n"
    assert sorted(p.name for p in config.paths.done.iterdir()) == ["pages.png", "single.png"]
    assert not ledger.journal.exists()
    ledger.close()


def test_a_sheet_gets_its_header_once(config: Config) -> None:
    forms = Sheet(config.root / "tax.csv", FORM)
    ledger = open_ledger(config)
    for _ in range(2):
        ledger.new_batch()
        recorded = ledger.commit(form_batch(config, ledger, forms), model="fake/1")
    assert [r.file for r in recorded] == ["pages.png", "pages.png", "single.png"]
    assert forms.path.read_text().count("file,page,account") == 1
    assert len(rows_of(forms.path)) == 4 and len(rows_of(config.paths.results)) == 6
    assert sorted(p.name for p in config.paths.done.iterdir()) == [
        "pages-1.png",
        "pages.png",
        "single-1.png",
        "single.png",
    ]
    ledger.close()


def test_a_file_goes_where_its_worst_reading_says(tmp_path: Path) -> None:
    folders = Folders(done=tmp_path / "done", error=tmp_path / "error", review=tmp_path / "review")
    assert folders.destination({Status.OK}) == folders.done
    assert folders.destination({Status.OK, Status.LOW_CONFIDENCE}) == folders.review
    assert folders.destination({Status.LOW_CONFIDENCE, Status.ERROR}) == folders.error
    assert (
        Folders(done=tmp_path / "done", error=tmp_path / "error").destination({Status.LOW_CONFIDENCE})
        == tmp_path / "done"
    )


def test_the_ledger_loads_no_recognition() -> None:
    heavy = "('cv2', 'numpy', 'watcher.recognise')"
    script = f"import sys, watcher.ledger.ledger; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
