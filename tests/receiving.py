"""A hook's receiver for tests: a real HTTP server on 127.0.0.1 that keeps every batch POSTed to it."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Answers 500 to the first `refuse` requests, then 200; keeps each acknowledged batch and request headers."""

    def __init__(self, *, refuse: int = 0, delay_s: float = 0.0) -> None:
        self.refuse = refuse
        self.delay_s = delay_s
        self.batches: list[list[dict[str, str]]] = []
        self.headers: list[dict[str, str]] = []
        self.refused = 0
        self._lock = threading.Lock()
        self._chance = random.Random(5)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver._chance.uniform(0, receiver.delay_s))
                with receiver._lock:
                    receiver.headers.append(dict(self.headers))
                    refused = receiver.refused < receiver.refuse
                    if refused:
                        receiver.refused += 1
                    else:
                        receiver.batches.append(json.loads(body)["rows"])
                self.send_response(500 if refused else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def rows(self) -> list[dict[str, str]]:
        with self._lock:
            return [row for batch in self.batches for row in batch]


@contextmanager
def receiving(*, refuse: int = 0, delay_s: float = 0.0) -> Iterator[Receiver]:
    receiver = Receiver(refuse=refuse, delay_s=delay_s)
    thread = threading.Thread(target=receiver.server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join()


def by_id(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    """Delivered rows by id, as `tests.helpers.rows_by_id` gives a CSV's (a row seen twice must be the same)."""
    found: dict[str, dict[str, str]] = {}
    for row in rows:
        content = {column: value for column, value in row.items() if column != "id"}
        assert found.setdefault(row["id"], content) == content, f"id {row['id']} delivered with other content"
    return found
