"""A real GlusterFS volume on this machine, mounted by three FUSE clients that stand in for three hosts.

`glusterd` runs as a process the session owns, with its own working, run and log folders (nothing
under /var/lib/glusterd), listening on the loopback only; one brick on a temporary folder; each
client mount has its own caches, as another host's would. Renames and locks are decided by the
brick, as on a real cluster. Everything is torn down after the session: mounts unmounted, the
volume stopped (which ends its brick process) and deleted, and glusterd — the one pid started
here — ended.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import wait_for
from watcher.ledger.record import COLUMNS

GLUSTERD_PORT = 24007  # the management port clients fetch the volume's layout from; Gluster fixes it
CLIENTS = 3


@dataclass(frozen=True)
class Volume:
    """A started volume and its client mounts: the same folder tree seen through each client."""

    name: str
    mounts: tuple[Path, ...]
    brick: Path  # the volume's files as the server stores them: what every client will see once its caches expire


@dataclass(frozen=True)
class Shared:
    """A fresh folder on the volume for one test: `through[n]` is it seen through client n."""

    through: tuple[Path, ...]
    on_brick: Path  # the same folder on the brick, read only, to check what was really written


def complete_rows(results: Path) -> list[dict[str, str]]:
    """The complete rows of a results CSV read on the brick, where a client's write may be under way."""
    text = results.read_bytes() if results.exists() else b""
    table = list(csv.reader(io.StringIO(text[: text.rfind(b"\r\n") + 2].decode("utf-8"), newline="")))
    assert not table or table[0] == list(COLUMNS)
    return [dict(zip(COLUMNS, row, strict=True)) for row in table[1:]]


def unavailable() -> str | None:
    """Why GlusterFS cannot run here, or None when it can."""
    for command in ("glusterd", "gluster", "mount.glusterfs"):
        if shutil.which(command) is None:
            return f"{command} is not installed (apt-get install glusterfs-server glusterfs-client)"
    if os.geteuid() != 0:
        return "mounting GlusterFS needs root"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing: FUSE is unavailable"
    if "fuse" not in Path("/proc/filesystems").read_text():
        return "the kernel has no FUSE filesystem"
    host = socket.gethostname()
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None, socket.AF_INET)}
    except socket.gaierror:
        return f"this host's name {host!r} does not resolve"
    if not all(address.startswith("127.") for address in addresses):
        return f"this host's name {host!r} resolves to {sorted(addresses)}, not a loopback address"
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", GLUSTERD_PORT)) == 0:
            return f"port {GLUSTERD_PORT} is taken: another glusterd runs here"
    return None


class Glusterd:
    """A glusterd the tests own: its state in `folder`, its CLI socket there too."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "run" / "glusterd.socket"
        for part in ("work", "run", "log"):
            (folder / part).mkdir(parents=True)
        self.process = subprocess.Popen(
            [
                "glusterd",
                "--no-daemon",
                f"--log-file={folder / 'log' / 'glusterd.log'}",
                "--xlator-option",
                f"management.working-directory={folder / 'work'}",
                "--xlator-option",
                f"management.run-directory={folder / 'run'}",
                "--xlator-option",
                f"management.glusterd-sockfile={self.socket}",
                "--xlator-option",
                "management.transport.socket.bind-address=127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self._answers(), timeout=30, what="glusterd to answer")

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            ["gluster", f"--glusterd-sock={self.socket}", "--mode=script", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"gluster {' '.join(args)}: {result.stdout}{result.stderr}".strip())
        return result.stdout

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"glusterd exited with {self.process.returncode}; see {self.folder / 'log'}")
        try:
            self.cli("volume", "list")
        except RuntimeError:
            return False
        return True


def mount(host: str, volume: str, folder: Path, *, log_file: Path) -> None:
    folder.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "glusterfs", "-o", f"log-file={log_file}", f"{host}:/{volume}", os.fspath(folder)],
        check=True,
        capture_output=True,
        timeout=60,
    )


def unmount(folder: Path) -> None:
    if os.path.ismount(folder):
        # Lazily, so a test that left a file open cannot keep the client mounted for ever.
        subprocess.run(["umount", "-l", os.fspath(folder)], check=False, capture_output=True, timeout=60)


@contextmanager
def volume(folder: Path, *, clients: int = CLIENTS) -> Iterator[Volume]:
    """glusterd, a one-brick volume and `clients` client mounts under `folder`, all torn down on leaving."""
    host, name = socket.gethostname(), f"dw{secrets.token_hex(3)}"
    daemon = Glusterd(folder / "glusterd")
    mounts = tuple(folder / f"client{number}" for number in range(clients))
    created = started = False
    try:
        daemon.cli("volume", "create", name, f"{host}:{folder / 'brick'}", "force")
        created = True
        daemon.cli("volume", "start", name)
        started = True
        for number, mounted in enumerate(mounts):
            mount(host, name, mounted, log_file=folder / "glusterd" / "log" / f"client{number}.log")
        yield Volume(name, mounts, folder / "brick")
    finally:
        for mounted in mounts:
            unmount(mounted)
        if started:
            daemon.cli("volume", "stop", name)
        if created:
            daemon.cli("volume", "delete", name)
        daemon.stop()


@pytest.fixture(scope="session")
def gluster_volume(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Volume]:
    """One volume and three client mounts for the whole session (set up in about a second)."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"GlusterFS unavailable: {reason}")
    with volume(tmp_path_factory.mktemp("gluster")) as made:
        yield made


@pytest.fixture
def shared(gluster_volume: Volume, request: pytest.FixtureRequest) -> Iterator[Shared]:
    """A fresh folder on the volume, seen through each client; removed afterwards."""
    relative = f"{request.node.name[:60]}-{secrets.token_hex(3)}"
    (gluster_volume.mounts[0] / relative).mkdir()
    through = tuple(mounted / relative for mounted in gluster_volume.mounts)
    wait_for(lambda: all(path.is_dir() for path in through), timeout=10, what="the folder on every client")
    yield Shared(through, gluster_volume.brick / relative)
    shutil.rmtree(through[0], ignore_errors=True)
