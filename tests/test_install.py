"""Installed anywhere: the served model shipped inside the package, and `predict` without a config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_config
from tests.daemons import SHIPPED_MODEL as MODELS
from tests.daemons import SHIPPED_VERSION as SERVED
from tests.helpers import mnist_scans
from watcher.model.classify import latest_version, load_classifier
from watcher.model.versions import SHIPPED_MODEL, serving_files
from watcher.service import config as configuration

REINSTALL = "the build ships it: reinstall (pip install -e ., as make test does when models/ change)"


def watcher_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in `cwd`, with no config named in the environment."""
    env = {key: value for key, value in os.environ.items() if key != configuration.CONFIG_ENV}
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_package_ships_the_served_version_and_only_what_serving_reads() -> None:
    shipped = latest_version(SHIPPED_MODEL)
    assert shipped.name == SERVED.name, REINSTALL
    assert sorted(path.name for path in shipped.iterdir()) == sorted(path.name for path in serving_files(SERVED))
    assert not (shipped / "model.keras").exists()
    for served in serving_files(SERVED):
        assert (shipped / served.name).read_bytes() == served.read_bytes(), REINSTALL


def test_a_config_without_model_path_serves_the_shipped_version(tmp_path: Path) -> None:
    loaded = configuration.load(write_config(tmp_path, "paths:\n  inbox: scans\n"))
    assert load_classifier(loaded.model.path).version == f"{MODELS.name}/{SERVED.name}"


def test_predict_needs_no_config(tmp_path: Path) -> None:
    label, scan = mnist_scans(1)[0]
    (tmp_path / "scan.png").write_bytes(scan)
    result = watcher_cli(tmp_path, "predict", "--json", "scan.png")
    assert result.returncode == 0, result.stderr
    reading = json.loads(result.stdout)
    assert (reading["prediction"], reading["model"]) == (str(label), f"{MODELS.name}/{SERVED.name}")
