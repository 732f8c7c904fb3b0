"""The shipped unit passes `systemd-analyze verify`, scores as hardened, and matches the daemon's protocol; so do
the units `digit-watcher unit` prints for this installation, for the system and for a user's own manager."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from watcher.service import config as configuration
from watcher.service.unit import UNIT_FILE
from watcher.vocabulary import ExitCode

SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"
UNIT = SYSTEMD / "digit-watcher.service"
MAX_EXPOSURE = 1.0
SHIPPED_PROGRAM = "/opt/digit-watcher/.venv/bin/digit-watcher"
PROGRAM = Path(sys.executable).parent / "digit-watcher"  # this installation's console script


def systemd_analyze(*args: str, user_runtime: Path | None = None) -> subprocess.CompletedProcess[str]:
    program = shutil.which("systemd-analyze")
    assert program is not None, "systemd-analyze is missing: apt-get install -y systemd"
    # --user looks for the user's runtime folder even offline; a test has none of its own.
    env = {**os.environ, "XDG_RUNTIME_DIR": str(user_runtime)} if user_runtime else None
    extra = ("--user",) if user_runtime else ()
    return subprocess.run([program, *args, *extra], capture_output=True, text=True, timeout=120, check=False, env=env)


def service_settings(text: str, section: str = "Service") -> dict[str, list[str]]:
    """The settings of one section of a unit (by default [Service]), each with its values in order."""
    settings: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            current = line
        elif current == f"[{section}]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def unit_command(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`digit-watcher unit ARGS` run in folder, its config found there (not through the environment)."""
    env = {key: value for key, value in os.environ.items() if key != configuration.CONFIG_ENV}
    return subprocess.run(
        [sys.executable, "-m", "watcher", "unit", *args], cwd=folder, env=env, capture_output=True, text=True
    )


def printed_unit(folder: Path, *args: str, name: str = UNIT.name) -> Path:
    """`digit-watcher unit ARGS` run in folder, written there as digit-watcher.service or name (names matter)."""
    result = unit_command(folder, *args)
    assert result.returncode == 0, result.stderr
    unit = folder / name
    unit.write_text(result.stdout, encoding="utf-8")
    return unit


def exposure(unit: Path, *, user_runtime: Path | None = None) -> float:
    result = systemd_analyze("security", "--offline=yes", "--no-pager", str(unit), user_runtime=user_runtime)
    assert result.returncode == 0, result.stderr
    found = re.search(r"Overall exposure level for digit-watcher\.service: (\d+\.\d+)", result.stdout)
    assert found is not None, result.stdout
    return float(found.group(1))


@pytest.fixture
def started(tmp_path: Path) -> Path:
    """A folder `digit-watcher init` made, as a user would before asking for their unit."""
    folder = tmp_path / "scans"
    result = subprocess.run([sys.executable, "-m", "watcher", "init", str(folder)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return folder


def test_systemd_folder_holds_the_packaged_unit_itself() -> None:
    assert UNIT.resolve() == UNIT_FILE.resolve()


def test_printed_unit_starts_this_installation_and_is_otherwise_the_shipped_one(tmp_path: Path) -> None:
    assert PROGRAM.is_file(), f"{PROGRAM} missing: install the package first (make install)"
    printed = printed_unit(tmp_path).read_text(encoding="utf-8")
    assert service_settings(printed)["ExecStart"] == [f"{PROGRAM} run --config /etc/digit-watcher/config.yaml"]
    assert printed == UNIT.read_text(encoding="utf-8").replace(SHIPPED_PROGRAM, str(PROGRAM))


def test_unit_verifies_clean(tmp_path: Path) -> None:
    # verify insists that ExecStart's program exists: the printed unit starts this installation's own.
    result = systemd_analyze("verify", "--man=no", str(printed_unit(tmp_path)))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_exposure_is_at_most_one(tmp_path: Path) -> None:
    assert exposure(UNIT) <= MAX_EXPOSURE
    assert exposure(printed_unit(tmp_path)) <= MAX_EXPOSURE


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


def test_user_unit_runs_the_config_as_the_user_verifies_clean_and_is_hardened(started: Path, tmp_path: Path) -> None:
    unit = printed_unit(started, "--user")
    settings = service_settings(unit.read_text(encoding="utf-8"))
    assert settings["ExecStart"] == [f"{PROGRAM} run --config {started / 'config.yaml'}"]
    assert "User" not in settings and "StateDirectory" not in settings  # the user's manager runs it as the user
    assert settings["ProtectHome"] == ["read-only"] and settings["ReadWritePaths"] == [str(started)]
    assert settings["PrivateNetwork"] == ["yes"] and settings["RestrictAddressFamilies"] == ["AF_UNIX"]  # no metrics
    result = systemd_analyze("verify", "--man=no", str(unit), user_runtime=tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert exposure(unit, user_runtime=tmp_path) <= MAX_EXPOSURE


def with_metrics_port(folder: Path, port: int = 9108) -> None:
    config = folder / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8") + f"metrics:\n  port: {port}\n", encoding="utf-8")


def test_user_unit_with_a_metrics_port_is_passed_its_socket_and_keeps_no_network(started: Path, tmp_path: Path) -> None:
    with_metrics_port(started)
    unit = printed_unit(started, "--user")
    socket_unit = printed_unit(started, "--user", "--socket", name="digit-watcher.socket")
    text = unit.read_text(encoding="utf-8")
    settings = service_settings(text)
    assert settings["PrivateNetwork"] == ["yes"] and settings["RestrictAddressFamilies"] == ["AF_UNIX"]
    assert settings["Sockets"] == ["digit-watcher.socket"] and "IPAddressAllow" not in settings
    assert service_settings(text, "Unit")["Wants"] == ["digit-watcher.socket"]
    assert service_settings(text, "Unit")["After"] == ["local-fs.target digit-watcher.socket"]
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "enable --now digit-watcher.socket digit-watcher.service" in header  # install both, it says
    socket_text = socket_unit.read_text(encoding="utf-8")
    assert service_settings(socket_text, "Socket") == {"ListenStream": ["127.0.0.1:9108"]}
    assert service_settings(socket_text, "Install") == {"WantedBy": ["sockets.target"]}
    result = systemd_analyze("verify", "--man=no", str(unit), str(socket_unit), user_runtime=tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    alone = tmp_path / "alone" / unit.name  # the service printed alone, before its socket unit is installed
    alone.parent.mkdir()
    alone.write_text(text, encoding="utf-8")
    result = systemd_analyze("verify", "--man=no", str(alone), user_runtime=tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert exposure(unit, user_runtime=tmp_path) <= MAX_EXPOSURE


@pytest.mark.parametrize(
    ("args", "port", "error"),
    [
        (("--socket",), 9108, "unit --socket: only with --user (the system unit serves its metrics port itself)"),
        (("--user", "--socket"), None, "unit --socket: {config} serves no metrics (metrics.port is not set)"),
        (("--user", "--socket"), 0, "metrics.port: 0 picks a new port at each start; a unit needs a fixed one"),
        (("--user",), 0, "metrics.port: 0 picks a new port at each start; a unit needs a fixed one"),
    ],
)
def test_metrics_socket_mistakes_exit_78_in_one_line(
    started: Path, args: tuple[str, ...], port: int | None, error: str
) -> None:
    if port is not None:
        with_metrics_port(started, port)
    result = unit_command(started, *args)
    assert result.returncode == ExitCode.BAD_CONFIG
    assert result.stderr.splitlines() == [f"digit-watcher: {error.format(config=started / 'config.yaml')}"]


def test_user_unit_without_a_config_says_so_in_one_line(tmp_path: Path) -> None:
    result = unit_command(tmp_path, "--user", "--config", "missing.yaml")
    assert result.returncode == ExitCode.BAD_CONFIG
    assert result.stderr.splitlines() == ["digit-watcher: missing.yaml: cannot read config: No such file or directory"]
