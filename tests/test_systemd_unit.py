"""The shipped unit passes `systemd-analyze verify`, scores as hardened, and matches the daemon's protocol."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from watcher.service import config as configuration

SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"
UNIT = SYSTEMD / "digit-watcher.service"
MAX_EXPOSURE = 1.0


def systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    program = shutil.which("systemd-analyze")
    assert program is not None, "systemd-analyze is missing: apt-get install -y systemd"
    return subprocess.run([program, *args], capture_output=True, text=True, timeout=120, check=False)


def service_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_verifies_clean(tmp_path: Path) -> None:
    # verify insists that ExecStart's program exists; the installed one lives in /opt, so check a
    # copy that starts this checkout's own console script with the same arguments instead.
    program = Path(sys.executable).parent / "digit-watcher"
    assert program.is_file(), f"{program} missing: install the package first (make install)"
    unit = UNIT.read_text()
    copy = tmp_path / UNIT.name
    copy.write_text(unit.replace("ExecStart=/opt/digit-watcher/.venv/bin/digit-watcher", f"ExecStart={program}"))
    assert copy.read_text() != unit

    result = systemd_analyze("verify", "--man=no", str(copy))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_exposure_is_at_most_one() -> None:
    result = systemd_analyze("security", "--offline=yes", "--no-pager", str(UNIT))
    assert result.returncode == 0, result.stderr
    found = re.search(r"Overall exposure level for digit-watcher\.service: (\d+\.\d+)", result.stdout)
    assert found is not None, result.stdout
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_speaks_the_daemons_protocol() -> None:
    settings = service_settings(UNIT.read_text())
    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert settings["Restart"] == ["on-failure"]
    assert settings["WatchdogSec"] and settings["WatchdogSec"][0] not in ("0", "infinity")
    assert settings["ExecStart"] == [
        "/opt/digit-watcher/.venv/bin/digit-watcher run --config /etc/digit-watcher/config.yaml"
    ]
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert settings["RestartPreventExitStatus"] == ["78"]
    assert settings["User"] == ["digit-watcher"]
    assert settings["StateDirectory"] == ["digit-watcher"]
    assert settings["ConfigurationDirectory"] == ["digit-watcher"]


def test_example_config_is_valid_and_keeps_everything_in_the_state_directory() -> None:
    loaded = configuration.load(SYSTEMD / "config.yaml")
    paths = loaded.paths
    for path in (paths.inbox, paths.done, paths.error, paths.results, paths.review, loaded.model.path):
        assert path is not None and path.is_relative_to("/var/lib/digit-watcher"), path
    assert loaded.metrics.port is not None
    assert loaded.log.format == "json"
