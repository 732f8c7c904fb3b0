"""`digit-watcher unit`: the shipped systemd unit, made to start this installation's own executable.

The unit file beside this module is the one unit text (systemd/digit-watcher.service links to it); the user unit
is that text with the few settings a user's own service manager needs changed.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path

from watcher.service.config import Config, ConfigError

UNIT_FILE = Path(__file__).with_name("digit-watcher.service")
PROGRAM = "digit-watcher"
SOCKET = "digit-watcher.socket"
USER_FOLDER = "~/.config/systemd/user"


def installed_program() -> Path:
    """This installation's `digit-watcher`: in the scripts folder of its Python's install scheme (a venv, pipx, a
    system-wide install), else of the per-user one (pip install --user)."""
    for scheme in (sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user")):
        program = Path(sysconfig.get_path("scripts", scheme)) / PROGRAM
        if program.is_file():
            return program
    raise ConfigError(f"{PROGRAM}: not installed for {sysconfig.get_path('scripts')}: install the package first")


def system_unit(program: Path) -> str:
    """The unit for the system's manager, laid out as systemd/README.md says, starting `program`."""
    text = UNIT_FILE.read_text(encoding="utf-8")
    _, _, arguments = _setting(text, "ExecStart").partition(" ")
    return _changed(text, {"ExecStart": [f"ExecStart={_quoted(program, command=True)} {arguments}"]})


def user_unit(program: Path, config: Config) -> str:
    """The unit for a user's own manager (`systemctl --user`), running `program` on `config` as that user.

    The system unit's sandbox, less what cannot apply: no account or state folder of its own, home read-only
    rather than hidden (the program and the config may live there) and the config's folders writable; and no
    network at all: the metrics port, when the config has one, is the socket unit's (`user_socket`), which the
    manager opens on the host and passes to the daemon.
    """
    text = UNIT_FILE.read_text(encoding="utf-8")
    writable = [f"ReadWritePaths={_quoted(folder, command=False)}" for folder in _outermost(config.written_folders)]
    command = f"{_quoted(program, command=True)} run --config {_quoted(config.source, command=True)}"
    # The passed socket needs neither the host's network nor AF_INET: both apply to sockets the daemon would open.
    network = ["PrivateNetwork=yes", "RestrictAddressFamilies=AF_UNIX"]
    changes: dict[str, list[str]] = {
        "ExecStart": [f"ExecStart={command}"],
        "User": [],
        "Group": [],
        "StateDirectory": [],
        "StateDirectoryMode": [],
        "ConfigurationDirectory": [],
        "ProtectHome": ["ProtectHome=read-only", *writable],
        "RestrictAddressFamilies": network,
        "IPAddressAllow": [],
        "WantedBy": ["WantedBy=default.target"],
    }
    serves_metrics = _metrics_port(config) is not None
    if serves_metrics:
        changes |= {
            # Wants, not Requires: the service printed alone still loads, and without the socket unit the daemon
            # exits 78 saying it cannot open the port in its sandbox.
            "After": [f"After={_setting(text, 'After')} {SOCKET}", f"Wants={SOCKET}"],
            "RestrictAddressFamilies": [*network, f"Sockets={SOCKET}"],
        }
    return _changed(_headed(text, _user_header(with_socket=serves_metrics)), changes)


def _user_header(*, with_socket: bool) -> str:
    """What the user unit is and how to install it: with its socket unit, when the config serves metrics."""
    lines = [f"# {PROGRAM} as a hardened service of your own manager: save it as {USER_FOLDER}/{UNIT_FILE.name},"]
    if with_socket:
        lines.append(f"# and `{PROGRAM} unit --user --socket` (same --config) beside it as {SOCKET}, the metrics port;")
    units = f"{SOCKET} {UNIT_FILE.name}" if with_socket else UNIT_FILE.name
    lines.append(f"# then: systemctl --user daemon-reload && systemctl --user enable --now {units}")
    return "\n".join(lines)


def user_socket(config: Config) -> str:
    """The socket unit beside the user unit: the manager listens on the metrics port and passes it to the daemon."""
    port = _metrics_port(config)
    if port is None:
        raise ConfigError(f"unit --socket: {config.source} serves no metrics (metrics.port is not set)")
    return (
        f"# The metrics port of {UNIT_FILE.name}: your manager listens on it and passes it to the daemon.\n"
        "[Unit]\n"
        f"Description={PROGRAM}: Prometheus metrics on 127.0.0.1:{port}\n"
        "\n"
        "[Socket]\n"
        f"ListenStream=127.0.0.1:{port}\n"
        "\n"
        "[Install]\n"
        "WantedBy=sockets.target\n"
    )


def _metrics_port(config: Config) -> int | None:
    """The config's metrics port for a unit: a fixed one (0 would be a new port each start, for nobody to find)."""
    if config.metrics.port == 0:
        raise ConfigError("metrics.port: 0 picks a new port at each start; a unit needs a fixed one")
    return config.metrics.port


def _headed(text: str, header: str) -> str:
    """The unit with its first line, the comment saying what it is, replaced by header."""
    return header + "\n" + text.partition("\n")[2]


def _setting(text: str, key: str) -> str:
    return next(line.partition("=")[2] for line in text.splitlines() if line.startswith(f"{key}="))


def _changed(text: str, changes: Mapping[str, Sequence[str]]) -> str:
    """The unit with each changed setting's lines replaced, where the first of them stood, by the given lines."""
    lines: list[str] = []
    replaced: set[str] = set()
    for line in text.splitlines():
        key = line.partition("=")[0]
        if line.startswith("#") or key not in changes:
            lines.append(line)
        elif key not in replaced:
            replaced.add(key)
            lines.extend(changes[key])
    return "\n".join(lines) + "\n"


def _outermost(folders: Mapping[str, Path]) -> list[Path]:
    """The folders not inside another of them: each is made writable with all below it."""
    unique = sorted(set(folders.values()))
    return [folder for folder in unique if not any(folder.is_relative_to(other) for other in unique if other != folder)]


def _quoted(path: Path, *, command: bool) -> str:
    """A path as systemd reads it back: % escaped (a specifier otherwise), and $ too in a command line (a variable);
    quoted when it holds a space, a quote or a backslash."""
    text = str(path).replace("%", "%%")
    if command:
        text = text.replace("$", "$$")
    if any(char.isspace() or char in "\"'\\" for char in text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text
