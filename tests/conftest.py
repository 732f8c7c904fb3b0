"""Shared fixtures: no test may leave threads behind, and a config on temporary folders."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.browsing import browser  # noqa: F401 -- the fixture for the tests of web pages
from tests.gluster import gluster_volume, shared  # noqa: F401 -- fixtures for the gluster-marked tests
from watcher.service import config as configuration


@pytest.fixture(autouse=True)
def no_threads_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while (
        left := [t for t in set(threading.enumerate()) - before if t.is_alive() and not t.daemon]
    ) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not left, f"threads left running: {left}"


class FakeClassifier:
    """Reads a digit as the number of bright rows modulo 10, so tests need no TensorFlow."""

    def __init__(self, version: str = "fake/1", confidence: float = 0.99) -> None:
        self.version = version
        self.confidence = confidence
        self.reader = None  # reads digits alone, as a version without a sequence reader
        self.calls: list[int] = []

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        self.calls.append(len(digits))
        labels = (digits.max(axis=2) > 0.5).sum(axis=1) % 10
        rest = (1 - self.confidence) / 9
        probabilities = np.full((len(digits), 10), rest, np.float32)
        probabilities[np.arange(len(digits)), labels] = self.confidence
        return probabilities


@pytest.fixture
def fake_classifier() -> FakeClassifier:
    return FakeClassifier()


def write_config(folder: Path, text: str = "") -> Path:
    path = folder / "config.yaml"
    path.write_text(text or "model:\n  path: models/fake\n", encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path) -> configuration.Config:
    loaded = configuration.load(
        write_config(tmp_path, "model:\n  path: models/fake\nwatch:\n  settle_ms: 100\n  rescan_s: 0.5\n")
    )
    configuration.prepare_folders(loaded)
    return loaded
