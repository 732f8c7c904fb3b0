"""`digit-watcher review`: open the desk (recovering dead reviewers), listen, print the URL with its token, serve."""

from __future__ import annotations

import getpass
import secrets
import signal
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog
import uvicorn
from starlette.applications import Starlette

from watcher.forms.template import Template
from watcher.review.app import LOCAL_HOSTS, create_app
from watcher.review.decide import RECOVER_EVERY_S, Desk
from watcher.review.forms import FormPages
from watcher.review.queue import Queue
from watcher.service.config import Config, ConfigError
from watcher.vocabulary import Event, ExitCode

log = structlog.get_logger()


def reviewer_name(given: str | None) -> str:
    """--reviewer, else the OS user; one printable line, as it goes into every decision's `model` cell."""
    name = (given if given is not None else getpass.getuser()).strip()
    if not name or not name.isprintable():
        raise ConfigError(f"--reviewer: expected a name on one line, got {name!r}")
    return name


def run(config: Config, *, host: str, port: int, reviewer: str | None, templates: Sequence[Template] = ()) -> int:
    review = config.paths.review
    if review is None:
        raise ConfigError(f"paths.review: not set in {config.source}, so review is off and nothing waits for a person")
    name = reviewer_name(reviewer)
    listening = _listen(host, port)
    token = secrets.token_urlsafe(24)
    queue = Queue(review=review, results=config.paths.results, root=config.root, secret=secrets.token_bytes(16))
    forms = FormPages(
        templates,
        folder=config.forms_folder,
        max_pixels=config.limits.max_pixels,
        pdf_dpi=config.recognition.pdf_dpi,
    )
    with listening:
        desk = open_desk(config, queue=queue, forms=forms, reviewer=name)
        try:
            app = create_app(
                desk=desk,
                queue=queue,
                forms=forms,
                token=token,
                hosts=LOCAL_HOSTS | {host.lower()},
                threshold=config.review.threshold,
                reviewer=name,
            )
            shown_host = f"[{host}]" if ":" in host else host
            # Port 0 asks for any free port: the URL names the one bound, for people and tests alike.
            url = f"http://{shown_host}:{listening.getsockname()[1]}/"
            log.info(Event.REVIEW_SERVING, url=url, reviewer=name, waiting=len(queue.items()))
            print(f"Review station for person:{name}, open: {url}?token={token}", flush=True)
            _serve(app, listening)
        finally:
            desk.close()
    return ExitCode.OK


def _listen(host: str, port: int) -> socket.socket:
    """The station's listening socket, bound before the desk opens: a port it cannot have is a config error."""
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        raise ConfigError(f"--port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def open_desk(
    config: Config, *, queue: Queue, forms: FormPages, reviewer: str, recover_every_s: float = RECOVER_EVERY_S
) -> Desk:
    """The desk decisions on the queue's items are made at, recorded under `reviewer`'s name."""
    return Desk(
        queue=queue,
        results=config.paths.results,
        review=queue.review,
        done=config.paths.done,
        error=config.paths.error,
        root=config.root,
        reviewer=reviewer,
        forms=forms,
        clock=time.monotonic,
        now=lambda: datetime.now(UTC),
        outbox=config.outbox,
        recover_every_s=recover_every_s,
    )


def _serve(app: Starlette, listening: socket.socket) -> None:
    """Serve `app` on `listening` until SIGTERM or SIGINT."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    # uvicorn stops on SIGTERM/SIGINT, then raises the signal again for the handler it found: let that
    # one be a no-op, so the desk closes its workspace and the command exits 0.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda signum, frame: None)
    server.run(sockets=[listening])
