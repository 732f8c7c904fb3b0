"""Hot model reload over real version folders, with fake classifiers and a fake loader."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import structlog.testing

from watcher.model.classify import METADATA_FILE, MODEL_FILE, ModelError, latest_version
from watcher.model.reload import KNOWN_DIGITS, ModelReloader, known_digits_problem

with np.load(KNOWN_DIGITS) as known:
    KNOWN_LABELS = known["y"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeModel:
    """Answers the known digits right ("good") or always says 0 ("wrong")."""

    def __init__(self, version: str, *, good: bool) -> None:
        self.version = version
        self.reader = None
        self.good = good

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        labels = KNOWN_LABELS[: len(digits)] if self.good else np.zeros(len(digits), int)
        return np.eye(10, dtype=np.float32)[labels]


class FakeLoader:
    """Reads the model file's text: "good", "wrong", or anything else is a broken model."""

    def __init__(self) -> None:
        self.loaded: list[str] = []

    def __call__(self, folder: Path) -> FakeModel:
        self.loaded.append(folder.name)
        kind = (folder / MODEL_FILE).read_text()
        if kind not in ("good", "wrong"):
            raise ModelError(f"{folder / MODEL_FILE}: not a usable model file (truncated)")
        return FakeModel(f"{folder.parent.name}/{folder.name}", good=kind == "good")


def publish(model_path: Path, number: int, kind: str) -> Path:
    folder = model_path / str(number)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / METADATA_FILE).write_text("{}")
    (folder / MODEL_FILE).write_text(kind)
    return folder


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "mnist-cnn"
    publish(path, 1, "good")
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def loader() -> FakeLoader:
    return FakeLoader()


@pytest.fixture
def reloader(model_path: Path, clock: FakeClock, loader: FakeLoader) -> ModelReloader:
    return ModelReloader(model_path, FakeModel("mnist-cnn/1", good=True), load=loader, check_every_s=2.0, clock=clock)


def loading() -> bool:
    return any(thread.name == "model-reload" for thread in threading.enumerate())


def finish_loading(reloader: ModelReloader) -> FakeModel | None:
    """Wait for a load in the background to end, then poll as the worker's next pass would."""
    deadline = time.monotonic() + 10
    while loading() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not loading()
    return reloader.poll()


def tick(reloader: ModelReloader, clock: FakeClock) -> FakeModel | None:
    """One check interval passes and the worker polls between batches; a load it starts is waited for."""
    clock.now += 2.0
    return reloader.poll() or finish_loading(reloader)


def test_a_new_version_is_served_once_its_folder_is_settled(
    reloader: ModelReloader, model_path: Path, clock: FakeClock, loader: FakeLoader
) -> None:
    assert tick(reloader, clock) is None
    publish(model_path, 2, "good")
    with structlog.testing.capture_logs() as logs:
        assert tick(reloader, clock) is None  # first sight: a copy may still be running
        adopted = tick(reloader, clock)
    assert adopted is not None and adopted.version == "mnist-cnn/2"
    assert loader.loaded == ["2"]
    assert [(entry["event"], entry["version"], entry["previous"]) for entry in logs] == [
        ("model_reloaded", "mnist-cnn/2", "mnist-cnn/1")
    ]
    assert tick(reloader, clock) is None
    assert loader.loaded == ["2"]


def test_listing_is_rate_limited(
    reloader: ModelReloader, model_path: Path, clock: FakeClock, loader: FakeLoader
) -> None:
    publish(model_path, 2, "good")
    for _ in range(10):
        clock.now += 0.1
        assert reloader.poll() is None
    assert loader.loaded == []


def test_a_folder_still_being_copied_is_not_loaded(
    reloader: ModelReloader, model_path: Path, clock: FakeClock, loader: FakeLoader
) -> None:
    folder = publish(model_path, 2, "goo")
    assert tick(reloader, clock) is None
    (folder / MODEL_FILE).write_text("good")
    assert tick(reloader, clock) is None
    assert loader.loaded == []
    adopted = tick(reloader, clock)
    assert adopted is not None and adopted.version == "mnist-cnn/2"


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("truncat", "does not load: "),
        ("wrong", "reads 2 of 20 known digits right, needs 18"),
    ],
)
def test_a_broken_version_is_refused_once_and_the_old_one_kept(
    reloader: ModelReloader, model_path: Path, clock: FakeClock, loader: FakeLoader, kind: str, reason: str
) -> None:
    folder = publish(model_path, 2, kind)
    with structlog.testing.capture_logs() as logs:
        for _ in range(6):
            assert tick(reloader, clock) is None
    assert loader.loaded == ["2"], "a refused version is not retried while its folder is unchanged"
    assert [entry["event"] for entry in logs] == ["model_refused"]
    assert logs[0]["reason"].startswith(reason)
    assert logs[0]["serving"] == "mnist-cnn/1"
    assert logs[0]["folder"] == str(folder)

    # Fixing the folder is a change, so it is tried again.
    (folder / MODEL_FILE).write_text("good")
    adopted = tick(reloader, clock) or tick(reloader, clock)
    assert adopted is not None and adopted.version == "mnist-cnn/2"


def test_sighup_loads_at_once_and_retries_a_refused_version(
    reloader: ModelReloader, model_path: Path, clock: FakeClock, loader: FakeLoader
) -> None:
    publish(model_path, 2, "wrong")
    tick(reloader, clock)
    tick(reloader, clock)
    assert loader.loaded == ["2"]

    assert reloader.poll(force=True) is None
    assert finish_loading(reloader) is None
    assert loader.loaded == ["2", "2"]

    publish(model_path, 3, "good")
    assert reloader.poll(force=True) is None
    adopted = finish_loading(reloader)
    assert adopted is not None and adopted.version == "mnist-cnn/3"


def test_sighup_with_nothing_new_says_so(reloader: ModelReloader) -> None:
    with structlog.testing.capture_logs() as logs:
        assert reloader.poll(force=True) is None
    assert [(entry["event"], entry["version"]) for entry in logs] == [("model_unchanged", "mnist-cnn/1")]
    assert not loading()


def test_an_emptied_model_folder_is_reported_once(
    reloader: ModelReloader, model_path: Path, clock: FakeClock, loader: FakeLoader
) -> None:
    (model_path / "1" / MODEL_FILE).unlink()
    with structlog.testing.capture_logs() as logs:
        for _ in range(4):
            assert tick(reloader, clock) is None
    assert [entry["event"] for entry in logs] == ["model_refused"]
    assert "no complete model version" in logs[0]["reason"]
    assert loader.loaded == []


def test_a_rolled_back_version_is_served(reloader: ModelReloader, model_path: Path, clock: FakeClock) -> None:
    publish(model_path, 2, "good")
    assert (tick(reloader, clock) or tick(reloader, clock)) is not None
    for path in (model_path / "2").iterdir():
        path.unlink()
    (model_path / "2").rmdir()
    adopted = tick(reloader, clock) or tick(reloader, clock)
    assert adopted is not None and adopted.version == "mnist-cnn/1"


def test_known_digits_are_mnist_test_digits_of_every_class() -> None:
    with np.load(KNOWN_DIGITS) as digits:
        assert digits["x"].shape == (20, 28, 28) and digits["x"].dtype == np.float32
        assert digits["x"].min() >= 0.0 and digits["x"].max() <= 1.0
        assert sorted(digits["y"].tolist()) == [digit for digit in range(10) for _ in range(2)]
    assert known_digits_problem(FakeModel("x/1", good=True)) is None


def test_the_shipped_model_is_reloaded_and_a_truncated_copy_refused(tmp_path: Path) -> None:
    shipped = latest_version(Path(__file__).resolve().parents[1] / "models" / "mnist-cnn")
    model_path = tmp_path / "mnist-cnn"
    shutil.copytree(shipped, model_path / "1")
    reloader = ModelReloader(model_path, FakeModel("mnist-cnn/1", good=True))

    shutil.copytree(shipped, model_path / "2")
    assert reloader.poll(force=True) is None
    adopted = finish_loading(reloader)
    assert adopted is not None and adopted.version == "mnist-cnn/2"

    shutil.copytree(shipped, model_path / "3")
    model_file = model_path / "3" / MODEL_FILE
    model_file.write_bytes(model_file.read_bytes()[:1000])
    with structlog.testing.capture_logs() as logs:
        assert reloader.poll(force=True) is None
        assert finish_loading(reloader) is None
    assert [(entry["event"], entry["serving"]) for entry in logs] == [("model_refused", "mnist-cnn/2")]
    assert logs[0]["reason"].startswith("does not load: ")
