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
    rather than hidden (the program and the config may live there) and the config's folders writable; and, when
    the config serves no metrics, no network at all.
    """
    text = UNIT_FILE.read_text(encoding="utf-8")
    writable = [f"ReadWritePaths={_quoted(folder, command=False)}" for folder in _outermost(config.written_folders)]
    command = f"{_quoted(program, command=True)} run --config {_quoted(config.source, command=True)}"
    changes: dict[str, list[str]] = {
        "ExecStart": [f"ExecStart={command}"],
        "User": [],
        "Group": [],
        "StateDirectory": [],
        "StateDirectoryMode": [],
        "ConfigurationDirectory": [],
        "ProtectHome": ["ProtectHome=read-only", *writable],
        "WantedBy": ["WantedBy=default.target"],
    }
    if config.metrics.port is None:
        changes |= {
            "RestrictAddressFamilies": ["PrivateNetwork=yes", "RestrictAddressFamilies=AF_UNIX"],
            "IPAddressAllow": [],
        }
    return _changed(text, changes)


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
