"""Run the real `digit-watcher` as a subprocess on temporary folders, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import wait_for
from watcher.model.classify import latest_version

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = ROOT / "models" / "mnist-cnn"
SHIPPED_VERSION = latest_version(SHIPPED_MODEL)  # the folder the daemon serves by default


def write_e2e_config(folder: Path, *, extra: str = "") -> Path:
    """A config on temporary folders serving the shipped model, with short waits for tests."""
    path = folder / "config.yaml"
    path.write_text(
        f"model:\n  path: {SHIPPED_MODEL}\nwatch:\n  settle_ms: 200\n  rescan_s: 1\nlog:\n  format: json\n{extra}",
        encoding="utf-8",
    )
    return path


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    """`digit-watcher run --once` to the end; it must exit 0."""
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--once", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


class DaemonProcess:
    """`digit-watcher run` in the background, its JSON log lines collected in a file."""

    def __init__(
        self,
        config: Path,
        *,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        name: str = "daemon",
        log_folder: Path | None = None,
        launcher: tuple[str, ...] = (),
    ) -> None:
        """`launcher`: a command that execs the daemon's command line given after it (its pid is the daemon's)."""
        self.log_path = (log_folder or config.parent) / f"{name}-{os.getpid()}-{id(self)}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 -- the daemon writes to it for its whole life
        self.process = subprocess.Popen(
            [*launcher, sys.executable, "-m", "watcher", "run", "--config", str(config), *args],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def events(self) -> list[dict[str, object]]:
        """The daemon's JSON log lines so far: complete ones only (it may be writing the last one now)."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        lines = text[: text.rfind("\n") + 1].splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_started(self, timeout: float = 60) -> None:
        wait_for(
            lambda: self.process.poll() is not None or any(e.get("event") == "started" for e in self.events()),
            timeout=timeout,
            what="the daemon to start",
        )
        assert self.process.poll() is None, self.output()

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)
        self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._log.close()
