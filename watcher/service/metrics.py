"""Prometheus metrics on 127.0.0.1 (opt-in): files by status, batch sizes, latency, queue depth, model version."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import WSGIApplication

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector, make_wsgi_app

from watcher.vocabulary import Status

STATUSES = (Status.OK, Status.LOW_CONFIDENCE, Status.NO_DIGIT, Status.ERROR)  # the statuses a daemon writes
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """The daemon's metrics, in a registry of their own so that tests and embedders never collide."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._files = Counter(
            "digit_watcher_files",
            "Files processed, by the status of their CSV row.",
            ["status"],
            registry=self.registry,
        )
        for status in STATUSES:
            # Present from the start at 0, so that rate() and alerts see a series before the first file.
            self._files.labels(status=status)
        self._batch_size = Histogram(
            "digit_watcher_batch_size", "Files per model call.", buckets=BATCH_SIZE_BUCKETS, registry=self.registry
        )
        self._latency = Histogram(
            "digit_watcher_latency_seconds",
            "From a file being ready in the inbox to its CSV row being written.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._queue_depth = Gauge(
            "digit_watcher_queue_depth", "Files ready in the inbox and waiting for the model.", registry=self.registry
        )
        self._model = Info("digit_watcher_model", "The model version being served.", registry=self.registry)
        self._last_success = Gauge(
            "digit_watcher_last_success_timestamp_seconds",
            "Unix time when the rows of the latest batch were written.",
            registry=self.registry,
        )
        self._hook_pending = Gauge(
            "digit_watcher_hook_pending",
            "Rows committed and not yet acknowledged by the hook (in the outbox, or being sent).",
            registry=self.registry,
        )
        self._hook_failures = Counter(
            "digit_watcher_hook_failures",
            "Batches the hook refused, or did not answer in time (each is tried again).",
            registry=self.registry,
        )
        self._hook_rows = Counter("digit_watcher_hook_rows", "Rows the hook acknowledged.", registry=self.registry)
        self._server: _Server | None = None

    def serve(self, port: int) -> int:
        """Serve /metrics on 127.0.0.1:port (0: any free port) from a background thread; the port bound.

        OSError when the port is taken."""
        listener = socket.create_server(("127.0.0.1", port))
        self.serve_on(listener)
        return int(listener.getsockname()[1])

    def serve_on(self, listener: socket.socket) -> None:
        """Serve /metrics from a background thread on a listening TCP socket opened elsewhere (socket activation)."""
        self._server = _Server(listener, make_wsgi_app(self.registry))
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()

    @property
    def url(self) -> str:
        """Where /metrics is served (only while serving)."""
        assert self._server is not None
        host, port = self._server.server_name, self._server.server_port
        return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"

    def close(self) -> None:
        """Stop serving, if serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def batch_done(self, *, statuses: Sequence[str], latencies_s: Sequence[float], now: float) -> None:
        """Count one written batch: a status and a drop-to-row latency per file; now is wall-clock time."""
        for status in statuses:
            self._files.labels(status=status).inc()
        for latency in latencies_s:
            self._latency.observe(latency)
        self._batch_size.observe(len(statuses))
        self._last_success.set(now)

    def queue_depth(self, depth: int) -> None:
        self._queue_depth.set(depth)

    def hook_pending(self, rows: int) -> None:
        self._hook_pending.set(rows)

    def hook_failed(self) -> None:
        self._hook_failures.inc()

    def hook_delivered(self, rows: int) -> None:
        self._hook_rows.inc(rows)

    def model_version(self, version: str) -> None:
        self._model.info({"version": version})


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """A WSGI server, one thread a scrape, on a listening socket it is given."""

    daemon_threads = True  # a scrape under way never holds up the daemon's exit

    def __init__(self, listener: socket.socket, app: WSGIApplication) -> None:
        # Not TCPServer.__init__: it opens a socket of its own first, even with bind_and_activate=False, and a
        # service kept to AF_UNIX (the user unit, handed the metrics socket by its manager) may open none.
        socketserver.BaseServer.__init__(self, listener.getsockname(), _QuietHandler)
        self.socket = listener
        self.server_name, self.server_port = listener.getsockname()[:2]
        self.setup_environ()
        self.set_app(app)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Nothing: a line on stderr for every scrape, outside the structured log, would only be noise."""
