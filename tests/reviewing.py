"""Helpers for the review station's tests: a config with review on, items sent to review/ as the daemon does."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from watcher.forms.template import Template, load_templates
from watcher.ledger.ledger import Folders, Ledger, Processed
from watcher.ledger.record import Reading
from watcher.review import serve
from watcher.review.decide import RECOVER_EVERY_S, Desk
from watcher.review.forms import FormPages
from watcher.review.queue import Queue
from watcher.service import config as configuration
from watcher.service.config import Config
from watcher.vocabulary import Status

ROOT = Path(__file__).resolve().parent.parent
TOP3 = ((7, 0.55), (1, 0.30), (2, 0.10))


def review_config(folder: Path, *, extra: str = "") -> Config:
    """A config on `folder` with review on (the model is never loaded by the review station)."""
    path = folder / "config.yaml"
    path.write_text(f"model:\n  path: models/fake\npaths:\n  review: inbox/review\n{extra}", encoding="utf-8")
    config = configuration.load(path)
    configuration.prepare_folders(config)
    return config


def daemon_ledger(
    config: Config,
    *,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    outbox: Path | None = None,
) -> Ledger:
    """The ledger a daemon on `config` keeps (with its clocks, and an outbox for hooks when given)."""
    paths = config.paths
    return Ledger(
        results=paths.results,
        folders=Folders(done=paths.done, error=paths.error, review=paths.review),
        inbox=paths.inbox,
        work=config.work,
        shown_from=config.root,
        clock=clock,
        now=now,
        outbox=outbox,
    )


def send_to_review(
    config: Config,
    name: str,
    data: bytes,
    *,
    prediction: str = "7",
    file: str | None = None,
    page: int = 1,
    field: str = "",
) -> None:
    """As the daemon does: `name` claimed from the inbox, a low_confidence row (of `file`, `page`, `field`), moved to
    review/."""
    ledger = daemon_ledger(config)
    try:
        (config.paths.inbox / name).write_bytes(data)
        claim = ledger.claim(name, ready_at=time.monotonic())
        assert claim is not None
        reading = Reading(
            status=Status.LOW_CONFIDENCE, prediction=prediction, page=page, field=field, confidence=0.55, top3=(TOP3,)
        )
        processed = Processed(claim=claim, sha256=hashlib.sha256(data).hexdigest(), readings=[reading], file=file)
        ledger.commit([processed], model="mnist-cnn/1")
    finally:
        ledger.close()


def open_desk(
    config: Config,
    *,
    reviewer: str = "ann",
    secret: bytes = b"test",
    templates: Sequence[Template] = (),
    recover_every_s: float = RECOVER_EVERY_S,
) -> Desk:
    paths = config.paths
    assert paths.review is not None
    forms = FormPages(
        templates, folder=config.forms_folder, max_pixels=config.limits.max_pixels, pdf_dpi=config.recognition.pdf_dpi
    )
    queue = Queue(review=paths.review, results=paths.results, root=config.root, secret=secret)
    return serve.open_desk(config, queue=queue, forms=forms, reviewer=reviewer, recover_every_s=recover_every_s)


def die_deciding(config_path: str, stage: str) -> None:
    """In a child process: start deciding the first item, then die at `stage` as kill -9 would (no cleanup)."""
    from watcher.ledger import ledger as ledgers

    config = configuration.load(Path(config_path))
    templates = load_templates(config.forms.templates) if config.forms.templates is not None else ()
    desk = open_desk(config, templates=templates)
    (item, *_) = desk.queue.items()
    if stage == "claimed":
        desk._claim(desk.deciding, item.name)
    elif stage == "appended":
        ledgers._finish_moves = lambda moves: os._exit(9)  # type: ignore[assignment]
        desk.decide(item.id, "")
    os._exit(9)


def kill_while_deciding(config: Path, stage: str) -> None:
    """A reviewer in a child process, killed as kill -9 would at `stage` of deciding the first item."""
    child = subprocess.run(
        [sys.executable, "-c", f"from tests.reviewing import die_deciding; die_deciding({str(config)!r}, {stage!r})"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 9, child.stderr


class ReviewServer:
    """`digit-watcher review --port 0` as a real subprocess; `url` is the one it printed, token and all."""

    def __init__(self, config: Path, *, reviewer: str = "tester") -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "review", "--config", str(config), "--port", "0", "--reviewer", reviewer],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:(\d+)/)\?token=[\w-]+", line)
        if not found:
            self.process.kill()
            raise AssertionError(f"no URL printed: {line!r} {self.process.communicate()[1]}")
        self.url, self.base, self.port = found[0], found[1], int(found[2])

    def stop(self) -> int:
        """SIGTERM, as a person's Ctrl-C or systemd would; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=30)
