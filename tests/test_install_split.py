"""Serving without the [train] extra: the CLI with TensorFlow, Keras and matplotlib made unimportable.

A `sitecustomize.py` first on PYTHONPATH installs a finder that refuses those names, as an install without
the extra would, and writes each name it refused to a file, so a serving command that so much as tries
to import TensorFlow is caught.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemons import ROOT
from tests.helpers import mnist_scans
from watcher.vocabulary import ExitCode

TRAIN_ONLY = ("tensorflow", "keras", "matplotlib")
INSTALL_HINT = "pip install 'digit-watcher[train]'"

SITECUSTOMIZE = f"""\
import os
import sys

REFUSED = {TRAIN_ONLY!r}


class RefuseTrainExtra:
    \"\"\"Import as where only serving is installed: the [train] extra's packages are not there.\"\"\"

    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in REFUSED:
            return None
        with open(os.environ["REFUSED_IMPORTS_LOG"], "a", encoding="utf-8") as log:
            log.write(name + "\\n")
        raise ModuleNotFoundError(f"No module named {{top!r}}", name=top)


sys.meta_path.insert(0, RefuseTrainExtra())
"""


@pytest.fixture
def without_train_extra(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment for the CLI in which the [train] extra is absent, and the log of refused imports."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    refused = tmp_path / "refused-imports.txt"
    refused.touch()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(site), str(ROOT))), "REFUSED_IMPORTS_LOG": str(refused)}
    return env, refused


def watcher_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_finder_refuses_the_train_extra(without_train_extra: tuple[dict[str, str], Path]) -> None:
    env, refused = without_train_extra
    probe = "import importlib, sys\nfor name in sys.argv[1:]:\n    try:\n        importlib.import_module(name)\n"
    probe += "    except ModuleNotFoundError:\n        print('refused', name)\n"
    result = subprocess.run(
        [sys.executable, "-c", probe, *TRAIN_ONLY, "numpy"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"refused {name}" for name in TRAIN_ONLY]
    assert refused.read_text(encoding="utf-8").splitlines() == list(TRAIN_ONLY)


def test_predict_reads_a_scan_without_tensorflow(
    tmp_path: Path, without_train_extra: tuple[dict[str, str], Path]
) -> None:
    env, refused = without_train_extra
    label, scan = mnist_scans(1)[0]
    (tmp_path / "scan.png").write_bytes(scan)
    result = watcher_cli(env, "predict", str(tmp_path / "scan.png"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'scan.png'}: {label} (")
    assert refused.read_text(encoding="utf-8") == "", "serving tried to import a package of the [train] extra"


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        (("train", "--data", "mnist.npz"), "tensorflow"),
        (("evaluate", "--data", "mnist.npz", "--report", "out.png"), "matplotlib"),
    ],
    ids=["train", "evaluate --report"],
)
def test_a_training_command_says_in_one_line_what_to_install(
    tmp_path: Path, without_train_extra: tuple[dict[str, str], Path], command: tuple[str, ...], missing: str
) -> None:
    env, _ = without_train_extra
    result = watcher_cli(env, *[str(tmp_path / arg) if arg.endswith((".npz", ".png")) else arg for arg in command])
    assert result.returncode == ExitCode.BAD_CONFIG, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert INSTALL_HINT in result.stderr and missing in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "out.png").exists()
