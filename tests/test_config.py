from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import write_config
from watcher.model.versions import SHIPPED_MODEL
from watcher.service import config as configuration
from watcher.service.config import ConfigError


def test_defaults_resolve_against_the_config_folder(tmp_path: Path) -> None:
    loaded = configuration.load(write_config(tmp_path, "paths:\n  inbox: scans\n"))
    assert loaded.paths.inbox == tmp_path / "scans"
    assert loaded.paths.done == tmp_path / "inbox/done"
    assert loaded.paths.results == tmp_path / "results.csv"
    assert loaded.paths.review is None
    assert loaded.model.path == SHIPPED_MODEL  # the version shipped inside the package, wherever the config is
    assert loaded.batch.max_size == 64 and loaded.batch.max_wait_ms == 10
    assert loaded.watch.extensions == (".png",)


@pytest.mark.parametrize(("text", "polling"), [("", "auto"), ("auto", "auto"), ("true", True), ("false", False)])
def test_polling_is_auto_unless_forced(tmp_path: Path, text: str, polling: object) -> None:
    loaded = configuration.load(write_config(tmp_path, f"watch:\n  polling: {text}\n" if text else "watch: {}\n"))
    assert loaded.watch.polling == polling


def test_the_shipped_config_loads() -> None:
    loaded = configuration.load(Path(__file__).parent.parent / "config.yaml")
    assert loaded.paths.inbox.name == "inbox"


def test_config_is_immutable(tmp_path: Path) -> None:
    loaded = configuration.load(write_config(tmp_path))
    with pytest.raises(AttributeError):
        loaded.batch.max_size = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour: blue\n", "unknown key 'colour'"),
        ("paths:\n  inbx: x\n", "paths.inbx: unknown key"),
        ("batch:\n  max_size: many\n", "batch.max_size: expected a whole number, got str 'many'"),
        ("batch:\n  max_size: 0\n", "batch.max_size: must be above 0"),
        ("batch:\n  max_size: true\n", "batch.max_size: expected a whole number"),
        ("watch:\n  polling: 'yes'\n", "watch.polling: expected true or false or auto, got str 'yes'"),
        ("watch:\n  extensions: [.gif]\n", "watch.extensions: unsupported file type"),
        ("paths:\n  inbox: 3\n", "paths.inbox: expected a path, got int 3"),
        ("paths: [a, b]\n", "paths: expected a mapping, got list"),
        ("recognition:\n  mode: words\n", "recognition.mode: must be one of digit, number, auto"),
        ("review:\n  threshold: 2\n", "review.threshold: must be above 0 and at most 1"),
        ("metrics:\n  port: 70000\n", "metrics.port: must be between 0 and 65535"),
        ("paths:\n  inbox: [\n", "not valid YAML (line"),
        ("- a\n- b\n", "expected a mapping of sections, got list"),
    ],
)
def test_mistakes_are_named_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configuration.load(write_config(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("nothere.yaml: cannot read config")):
        configuration.load(tmp_path / "nothere.yaml")


def test_config_path_prefers_the_argument_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(configuration.CONFIG_ENV, "/etc/dw.yaml")
    assert configuration.config_path(Path("given.yaml")) == Path("given.yaml")
    assert configuration.config_path(None) == Path("/etc/dw.yaml")
    monkeypatch.delenv(configuration.CONFIG_ENV)
    assert configuration.config_path(None) == Path("config.yaml")


def test_prepare_folders_creates_them(tmp_path: Path) -> None:
    loaded = configuration.load(write_config(tmp_path, "paths:\n  review: inbox/review\n"))
    configuration.prepare_folders(loaded)
    for folder in (loaded.paths.inbox, loaded.paths.done, loaded.paths.error, loaded.paths.review, loaded.work):
        assert folder is not None and folder.is_dir()


def test_a_folder_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a folder")
    loaded = configuration.load(write_config(tmp_path, "paths:\n  done: blocker/done\n"))
    with pytest.raises(ConfigError, match=re.escape("paths.done: cannot create")):
        configuration.prepare_folders(loaded)


def test_results_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "results.csv").mkdir()
    with pytest.raises(ConfigError, match=r"paths.results: .* is a folder"):
        configuration.prepare_folders(configuration.load(write_config(tmp_path)))


def test_hooks_are_off_unless_configured(tmp_path: Path) -> None:
    assert not configuration.load(write_config(tmp_path)).hooks.on


def test_a_hook_url_keeps_its_credentials_out_of_what_is_shown(tmp_path: Path) -> None:
    loaded = configuration.load(
        write_config(tmp_path, "hooks:\n  url: https://ann:s%3Acret@example.org:8443/readings?to=db\n")
    )
    assert loaded.hooks.on
    assert loaded.hooks.endpoint == "https://example.org:8443/readings?to=db"
    assert loaded.hooks.credentials == ("ann", "s:cret")
    assert configuration.load(write_config(tmp_path, "hooks:\n  url: http://127.0.0.1/\n")).hooks.credentials is None


def test_a_hook_command_is_found_from_the_config_folder_or_on_the_path(tmp_path: Path) -> None:
    script = tmp_path / "bin" / "store"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\ncat >/dev/null\n")
    script.chmod(0o755)
    loaded = configuration.load(write_config(tmp_path, "hooks:\n  command: [bin/store, --db, x.sqlite]\n"))
    assert loaded.hooks.command == ("bin/store", "--db", "x.sqlite")
    assert configuration.load(write_config(tmp_path, "hooks:\n  command: [sh, -c, 'cat']\n")).hooks.on


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hooks:\n  url: ftp://example.org/x\n", "hooks.url: expected an http:// or https:// URL with a host"),
        ("hooks:\n  url: 'http://ann:secret@:80/'\n", "hooks.url: expected an http:// or https:// URL with a host"),
        ("hooks:\n  url: 'http://ann:secret@example.org:http/'\n", "hooks.url: expected an http:// or https://"),
        ("hooks:\n  url: ''\n", "hooks.url: expected a string"),
        ("hooks:\n  url: [a]\n", "hooks.url: expected a string, got list"),
        ("hooks:\n  command: store\n", "hooks.command: expected a list of strings, got str 'store'"),
        ("hooks:\n  command: []\n", "hooks.command: expected a program and its arguments"),
        ("hooks:\n  command: [./no-such-store]\n", "hooks.command: ./no-such-store: no such program"),
        ("hooks:\n  timeout_s: 0\n", "hooks.timeout_s: must be above 0"),
        ("hooks:\n  timeout_s: 60\n", "hooks.timeout_s: must be at most 15, got 60"),
        ("hooks:\n  uri: http://x/\n", "hooks.uri: unknown key"),
    ],
)
def test_hook_mistakes_are_named_in_one_line_without_credentials(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configuration.load(write_config(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value) and "secret" not in str(caught.value)
