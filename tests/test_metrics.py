"""The metrics endpoint, scraped over HTTP as Prometheus would."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from watcher.service.metrics import Metrics


@pytest.fixture
def served() -> Iterator[tuple[Metrics, int]]:
    metrics = Metrics()
    port = metrics.serve(0)  # any free port, bound at once: no other test can take it in between
    assert port > 0
    yield metrics, port
    metrics.close()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_fresh_daemon_exports_every_status_at_zero(served: tuple[Metrics, int]) -> None:
    _, port = served
    samples = scrape(port)
    for status in ("ok", "low_confidence", "no_digit", "error"):
        assert samples[("digit_watcher_files_total", (("status", status),))] == 0
    assert samples[("digit_watcher_queue_depth", ())] == 0
    assert samples[("digit_watcher_batch_size_count", ())] == 0
    assert ("process_resident_memory_bytes", ()) in samples


def test_batches_queue_and_model_are_exported(served: tuple[Metrics, int]) -> None:
    metrics, port = served
    metrics.model_version("mnist-cnn/3")
    metrics.queue_depth(7)
    metrics.batch_done(statuses=["ok", "ok", "error"], latencies_s=[0.02, 0.03, 0.2], now=1_700_000_000.5)
    metrics.batch_done(statuses=["low_confidence"], latencies_s=[1.5], now=1_700_000_010.0)
    metrics.model_version("mnist-cnn/4")

    samples = scrape(port)
    assert samples[("digit_watcher_files_total", (("status", "ok"),))] == 2
    assert samples[("digit_watcher_files_total", (("status", "error"),))] == 1
    assert samples[("digit_watcher_files_total", (("status", "low_confidence"),))] == 1
    assert samples[("digit_watcher_batch_size_count", ())] == 2
    assert samples[("digit_watcher_batch_size_sum", ())] == 4
    assert samples[("digit_watcher_batch_size_bucket", (("le", "1.0"),))] == 1
    assert samples[("digit_watcher_latency_seconds_count", ())] == 4
    assert samples[("digit_watcher_latency_seconds_sum", ())] == pytest.approx(1.75)
    assert samples[("digit_watcher_latency_seconds_bucket", (("le", "0.25"),))] == 3
    assert samples[("digit_watcher_queue_depth", ())] == 7
    assert samples[("digit_watcher_last_success_timestamp_seconds", ())] == 1_700_000_010.0
    # Only the version being served is exported, so a dashboard never shows two.
    assert samples[("digit_watcher_model_info", (("version", "mnist-cnn/4"),))] == 1
    assert ("digit_watcher_model_info", (("version", "mnist-cnn/3"),)) not in samples


def test_two_instances_do_not_share_metrics() -> None:
    first, second = Metrics(), Metrics()
    first.queue_depth(3)
    assert second.registry.get_sample_value("digit_watcher_queue_depth") == 0
    assert first.registry.get_sample_value("digit_watcher_queue_depth") == 3


def test_a_listening_socket_opened_elsewhere_is_served_and_closed_with_the_metrics() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # as a service manager would pass it
    port = listener.getsockname()[1]
    metrics = Metrics()
    metrics.serve_on(listener)
    try:
        assert metrics.url == f"http://127.0.0.1:{port}/metrics"
        assert scrape(port)[("digit_watcher_queue_depth", ())] == 0
    finally:
        metrics.close()
    assert listener.fileno() == -1


def test_a_port_in_use_is_an_oserror(served: tuple[Metrics, int]) -> None:
    _, port = served
    with pytest.raises(OSError):
        Metrics().serve(port)


def test_only_127_0_0_1_is_served_not_every_address(served: tuple[Metrics, int]) -> None:
    _, port = served
    # 127.0.0.2 is this host too: a server bound to the wildcard address would answer there.
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.2", port), timeout=5):
        pass
