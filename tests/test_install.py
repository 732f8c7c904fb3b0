"""Installed anywhere: the served model shipped inside the package, `predict` without a config, `init`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.daemons import SHIPPED_MODEL as MODELS
from tests.daemons import SHIPPED_VERSION as SERVED
from tests.helpers import mnist_scans
from watcher.model.classify import latest_version, load_classifier
from watcher.model.versions import SHIPPED_MODEL, serving_files
from watcher.service import config as configuration
from watcher.service.starter import STARTER_CONFIG
from watcher.vocabulary import ExitCode

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


def test_serving_files_are_the_metadata_and_every_litert_model(tmp_path: Path) -> None:
    for name in ("model.keras", "reader.tflite", "metadata.json", "model.tflite", "notes.txt"):
        (tmp_path / name).write_text("", encoding="utf-8")
    assert [path.name for path in serving_files(tmp_path)] == ["metadata.json", "model.tflite", "reader.tflite"]


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


@pytest.mark.slow
def test_init_makes_a_folder_to_run_in_and_prints_the_next_command(tmp_path: Path) -> None:
    result = watcher_cli(tmp_path, "init", "scans")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "created scans/config.yaml",
        "created scans/inbox/",
        "created scans/inbox/done/",
        "created scans/inbox/error/",
        "next: drop scans into scans/inbox/, then run",
        "  digit-watcher run --config scans/config.yaml",
    ]
    written = tmp_path / "scans" / "config.yaml"
    assert written.read_text(encoding="utf-8") == STARTER_CONFIG.read_text(encoding="utf-8")
    assert configuration.load(written).model.path == SHIPPED_MODEL
    assert watcher_cli(tmp_path / "scans", "init").stdout.splitlines()[-1] == "  digit-watcher run"


def test_the_written_configs_commented_settings_are_valid_when_uncommented(tmp_path: Path) -> None:
    text = STARTER_CONFIG.read_text(encoding="utf-8")
    uncommented = re.sub(r"(?m)^(\s*)# (\s*[a-z_]+:)", r"\1\2", text)
    assert uncommented.count("\n#") < text.count("\n#")
    loaded = configuration.load(write_config(tmp_path, uncommented))
    assert loaded.paths.review == tmp_path / "inbox" / "review"
    assert loaded.model.path == tmp_path / "models" / "mnist-cnn"
    assert loaded.metrics.port is not None


def test_init_never_overwrites_and_says_what_it_left_alone(tmp_path: Path) -> None:
    mine = "paths:\n  inbox: scans\n  done: scans/done\n  error: scans/error\n"
    (tmp_path / "config.yaml").write_text(mine, encoding="utf-8")
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "waiting.png").write_bytes(b"a scan")
    result = watcher_cli(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:4] == [
        "created scans/done/",
        "created scans/error/",
        "left alone config.yaml: already there",
        "left alone scans/: already there",
    ]
    assert (tmp_path / "config.yaml").read_text(encoding="utf-8") == mine
    assert (tmp_path / "scans" / "waiting.png").read_bytes() == b"a scan"


def test_init_where_a_file_stands_in_the_way_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "inbox").write_text("not a folder", encoding="utf-8")
    result = watcher_cli(tmp_path, "init")
    assert result.returncode == ExitCode.BAD_CONFIG
    assert result.stderr.splitlines() == [f"digit-watcher: {tmp_path / 'inbox'}: exists and is not a folder"]
    assert (tmp_path / "inbox").read_text(encoding="utf-8") == "not a folder"


def test_init_beside_a_broken_config_says_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("paths: [\n", encoding="utf-8")
    result = watcher_cli(tmp_path, "init")
    assert result.returncode == ExitCode.BAD_CONFIG
    assert len(result.stderr.splitlines()) == 1 and "not valid YAML" in result.stderr, result.stderr
    assert (tmp_path / "config.yaml").read_text(encoding="utf-8") == "paths: [\n"
