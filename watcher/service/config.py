"""The config file, loaded into a frozen, validated object."""

from __future__ import annotations

import dataclasses
import os
import shutil
import types
import typing
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from watcher.intake.limits import LimitsConfig
from watcher.ledger.lease import LEASE_S
from watcher.ledger.outbox import OUTBOX
from watcher.model.versions import SHIPPED_MODEL
from watcher.vocabulary import FILE_KINDS, REVIEW_THRESHOLD

DEFAULT_CONFIG = Path("config.yaml")
CONFIG_ENV = "DIGIT_WATCHER_CONFIG"


class ConfigError(Exception):
    """A config mistake, told in one line that names the key or path (exit 78)."""


@dataclass(frozen=True)
class PathsConfig:
    inbox: Path = Path("inbox")
    done: Path = Path("inbox/done")
    error: Path = Path("inbox/error")
    results: Path = Path("results.csv")
    review: Path | None = None


@dataclass(frozen=True)
class ModelConfig:
    path: Path = SHIPPED_MODEL  # the version shipped inside the package; a folder of versions the user names wins


@dataclass(frozen=True)
class WatchConfig:
    polling: bool | Literal["auto"] = "auto"
    recursive: bool = False  # take files from the inbox's subfolders too (not hidden ones, not done/, error/, review/)
    settle_ms: int = 500
    rescan_s: float = 30.0
    extensions: tuple[str, ...] = (".png",)


@dataclass(frozen=True)
class BatchConfig:
    max_size: int = 64
    max_wait_ms: int = 10


@dataclass(frozen=True)
class ReviewConfig:
    threshold: float = REVIEW_THRESHOLD


@dataclass(frozen=True)
class RecognitionConfig:
    mode: Literal["digit", "number", "auto"] = "auto"
    pdf_dpi: int = 300  # a PDF page without a scan on it is drawn at this resolution


@dataclass(frozen=True)
class MetricsConfig:
    port: int | None = None


@dataclass(frozen=True)
class FormsConfig:
    templates: Path | None = None  # a folder of NAME.yaml form templates; no forms are read without it


@dataclass(frozen=True)
class HooksConfig:
    """Where each commit's rows are handed on (SPEC "Hooks"): POSTed to `url`, and/or given to `command` on stdin."""

    url: str | None = None
    command: tuple[str, ...] | None = None  # run in the config's folder; exit 0 acknowledges
    timeout_s: float = 10.0  # a delivery that takes longer has failed, and is tried again

    @property
    def on(self) -> bool:
        return self.url is not None or self.command is not None

    @property
    def endpoint(self) -> str:
        """The URL without its credentials: what is requested, and all that is ever logged."""
        assert self.url is not None
        parts = urllib.parse.urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit(parts._replace(netloc=host))

    @property
    def credentials(self) -> tuple[str, str] | None:
        """The user and password the URL carries, if any, sent as HTTP basic authentication."""
        assert self.url is not None
        parts = urllib.parse.urlsplit(self.url)
        if parts.username is None:
            return None
        return urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")


@dataclass(frozen=True)
class LogConfig:
    format: Literal["auto", "console", "json"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True)
class Config:
    source: Path
    paths: PathsConfig = field(default_factory=PathsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    forms: FormsConfig = field(default_factory=FormsConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def root(self) -> Path:
        """The config file's folder: relative paths in it, and `moved_to`, are relative to this."""
        return self.source.parent

    @property
    def forms_folder(self) -> Path:
        """Where each template's forms/NAME.csv goes: beside the results CSV."""
        return self.paths.results.parent / "forms"

    @property
    def written_in_inbox(self) -> tuple[Path, ...]:
        """The folders the daemon itself fills (done/, error/, review/, its workspaces): never read as inbox."""
        paths = self.paths
        return tuple(folder for folder in (paths.done, paths.error, paths.review, self.work) if folder is not None)

    @property
    def written_folders(self) -> dict[str, Path]:
        """The folders the daemon writes in (moves files into or out of, or writes CSVs to), by the key naming each."""
        paths = self.paths
        written = {"paths.inbox": paths.inbox, "paths.done": paths.done, "paths.error": paths.error}
        if paths.review is not None:
            written["paths.review"] = paths.review
        written["paths.results"] = paths.results.parent
        if self.forms.templates is not None:
            written["forms.templates"] = self.forms_folder
        return written

    @property
    def work(self) -> Path:
        """The daemon's private folder inside the inbox (hidden, so never picked up)."""
        return self.paths.inbox / ".digit-watcher"

    @property
    def outbox(self) -> Path | None:
        """Where each commit's rows wait for the hook, in the work folder; None with hooks off."""
        return self.work / OUTBOX if self.hooks.on else None


SECTIONS = {f.name: f for f in dataclasses.fields(Config) if f.name != "source"}
POSITIVE = {
    "watch.settle_ms",
    "watch.rescan_s",
    "batch.max_size",
    "limits.max_pixels",
    "limits.max_bytes",
    "limits.max_pages",
    "limits.page_timeout_s",
    "recognition.pdf_dpi",
    "hooks.timeout_s",
}


def config_path(given: Path | None) -> Path:
    """The config to use: the one given, else $DIGIT_WATCHER_CONFIG, else ./config.yaml."""
    if given is not None:
        return given
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load(path: Path) -> Config:
    """Read, validate and resolve a config file; raises ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown key '{unknown[0]}'")
    root = path.resolve().parent
    sections = {
        name: _section(typing.get_type_hints(Config)[name], data.get(name), name=name, root=root) for name in SECTIONS
    }
    config = Config(source=path.resolve(), **sections)
    _check_consistency(config)
    return config


def _section(cls: type, data: Any, *, name: str, root: Path) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(map(str, data)) - set(hints))
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}: unknown key")
    values = {}
    for key, value in data.items():
        values[key] = _value(hints[key], value, key=f"{name}.{key}", root=root)
    defaults = cls()
    for key, hint in hints.items():
        if key not in values and _is_path(hint) and getattr(defaults, key) is not None:
            values[key] = root / getattr(defaults, key)
    return cls(**values)


def _value(hint: Any, value: Any, *, key: str, root: Path) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        arms = [a for a in args if a is not type(None)]
        if len(arms) == 1:
            return _value(arms[0], value, key=key, root=root)
        # Each arm in turn (`true`, `false` or `auto`); the error names every one.
        for arm in arms:
            try:
                return _value(arm, value, key=key, root=root)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {' or '.join(map(_expected, arms))}, got {_kind(value)}")
    if origin is Literal:
        if value not in args:
            choices = ", ".join(map(str, args))
            raise ConfigError(f"{key}: must be one of {choices}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings, got {_kind(value)}")
        return tuple(_extension(v, key=key) for v in value) if key == "watch.extensions" else tuple(value)
    if hint is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a string, got {_kind(value)}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a path, got {_kind(value)}")
        return root / Path(value).expanduser()
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {_kind(value)}")
        return value
    if hint in (int, float):
        numeric = (int, float) if hint is float else (int,)
        if isinstance(value, bool) or not isinstance(value, numeric):
            raise ConfigError(
                f"{key}: expected {'a number' if hint is float else 'a whole number'}, got {_kind(value)}"
            )
        if value < 0 or (value == 0 and key in POSITIVE):
            raise ConfigError(f"{key}: must be {'above' if key in POSITIVE else 'at least'} 0, got {value}")
        return hint(value)
    raise TypeError(f"unsupported config type {hint!r} for {key}")


def _extension(value: str, *, key: str) -> str:
    extension = value.lower() if value.startswith(".") else f".{value.lower()}"
    if extension not in FILE_KINDS:
        raise ConfigError(f"{key}: unsupported file type {value!r} ({', '.join(k[1:] for k in FILE_KINDS)})")
    return extension


def _expected(hint: Any) -> str:
    if hint is bool:
        return "true or false"
    return ", ".join(map(str, typing.get_args(hint))) if typing.get_origin(hint) is Literal else str(hint)


def _is_path(hint: Any) -> bool:
    return hint is Path or Path in typing.get_args(hint)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}" if isinstance(value, (int, float, str)) else type(value).__name__


def _check_consistency(config: Config) -> None:
    if not 0 < config.review.threshold <= 1:
        raise ConfigError(f"review.threshold: must be above 0 and at most 1, got {config.review.threshold}")
    # 0 asks the system for a free port, which the daemon then logs.
    if config.metrics.port is not None and not 0 <= config.metrics.port < 65536:
        raise ConfigError(f"metrics.port: must be between 0 and 65535, got {config.metrics.port}")
    if not 50 <= config.recognition.pdf_dpi <= 1200:
        raise ConfigError(f"recognition.pdf_dpi: must be between 50 and 1200, got {config.recognition.pdf_dpi}")
    if config.batch.max_size > 4096:
        raise ConfigError(f"batch.max_size: must be at most 4096, got {config.batch.max_size}")
    _check_hooks(config.hooks, root=config.root)


def _check_hooks(hooks: HooksConfig, *, root: Path) -> None:
    # A courier waiting on its hook does not renew its lease, which other hosts take for dead once unchanged this long.
    if hooks.timeout_s > LEASE_S / 2:
        raise ConfigError(f"hooks.timeout_s: must be at most {LEASE_S / 2:g}, got {hooks.timeout_s:g}")
    if hooks.url is not None:
        parts = urllib.parse.urlsplit(hooks.url)
        try:
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is not a number, or out of range
            usable = False
        if not usable:
            raise ConfigError(f"hooks.url: expected an http:// or https:// URL with a host, got {hooks.endpoint!r}")
    if hooks.command is not None:
        if not hooks.command:
            raise ConfigError("hooks.command: expected a program and its arguments, got an empty list")
        program = hooks.command[0]
        # Run in the config's folder: a relative path with a slash in it is found from there, a bare name on $PATH.
        if shutil.which(os.path.join(root, program) if "/" in program else program) is None:
            raise ConfigError(f"hooks.command: {program}: no such program, or not executable")


def prepare_folders(config: Config) -> None:
    """Create the folders the daemon writes to and check they are usable; raises ConfigError."""
    paths = config.paths
    written = config.written_folders
    for key, folder in written.items():
        _usable_folder(folder, key=key)
    _usable_folder(config.work, key="paths.inbox")
    inbox_device = paths.inbox.stat().st_dev
    places = {key: written[key] for key in ("paths.done", "paths.error", "paths.review") if key in written}
    for key, folder in places.items():
        if folder.stat().st_dev != inbox_device:
            raise ConfigError(f"{key}: {folder} is not on the same filesystem as the inbox (files are moved by rename)")
    if paths.results.is_dir():
        raise ConfigError(f"paths.results: {paths.results} is a folder, not a file")


def _usable_folder(folder: Path, *, key: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{key}: {folder} exists and is not a folder") from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot create {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}: {folder} is not writable")
