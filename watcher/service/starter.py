"""`digit-watcher init`: a folder ready to run in, a commented config.yaml and the inbox folders, never overwriting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from watcher.service import config as configuration
from watcher.service.config import ConfigError

STARTER_CONFIG = Path(__file__).with_name("starter.yaml")


@dataclass(frozen=True)
class Started:
    """What `init` found and did, with paths as the user named the folder."""

    config: Path
    inbox: Path
    created: tuple[Path, ...]
    left_alone: tuple[Path, ...]  # already there, untouched


def init(folder: Path) -> Started:
    """Write folder/config.yaml unless one is there, then make the inbox folders that config names; ConfigError for a
    path that cannot be made, or a config already there that does not load."""
    config_file = folder / configuration.DEFAULT_CONFIG
    _make_folder(folder)
    made = {config_file: _write_new(config_file, STARTER_CONFIG.read_text(encoding="utf-8"))}
    config = configuration.load(config_file)
    paths = config.paths
    for folder_named in (paths.inbox, paths.done, paths.error, paths.review):
        if folder_named is not None:
            made[_as_named(folder_named, config, folder)] = _make_folder(folder_named)
    return Started(
        config=config_file,
        inbox=_as_named(paths.inbox, config, folder),
        created=tuple(path for path, new in made.items() if new),
        left_alone=tuple(path for path, new in made.items() if not new),
    )


def _as_named(path: Path, config: configuration.Config, folder: Path) -> Path:
    """A path of the config, shown from the folder as the user named it (`inbox/done`, not /home/.../inbox/done)."""
    return folder / path.relative_to(config.root) if path.is_relative_to(config.root) else path


def _write_new(path: Path, text: str) -> bool:
    """Write a file that is not there yet (False, untouched, when anything is there by that name)."""
    try:
        with path.open("x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        return False
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return True


def _make_folder(path: Path) -> bool:
    """Make a folder and its parents (False when it is already there)."""
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        if not path.is_dir():
            raise ConfigError(f"{path}: exists and is not a folder") from None
        return False
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create: {exc.strerror or exc}") from None
    return True
