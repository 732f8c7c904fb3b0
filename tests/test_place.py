from __future__ import annotations

import os
from pathlib import Path

import pytest

from watcher.ledger.place import free_name, move


def test_a_free_name_is_kept(tmp_path: Path) -> None:
    assert free_name(tmp_path, "a.png") == "a.png"


def test_a_taken_name_gets_a_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "a-1.png").write_bytes(b"")
    assert free_name(tmp_path, "a.png") == "a-2.png"
    assert free_name(tmp_path, "a.png", taken={"a-2.png"}) == "a-3.png"


def test_a_dangling_link_counts_as_taken(tmp_path: Path) -> None:
    os.symlink(tmp_path / "nowhere", tmp_path / "a.png")
    assert free_name(tmp_path, "a.png") == "a-1.png"


def test_a_suffixed_255_byte_name_still_fits(tmp_path: Path) -> None:
    name = "é" * 125 + ".png"
    assert len(name.encode()) == 254
    (tmp_path / name).write_bytes(b"")
    other = free_name(tmp_path, name)
    assert other.endswith("-1.png") and len(other.encode()) <= 255
    (tmp_path / other).write_bytes(b"")


def test_move_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "src.png").write_bytes(b"new")
    (tmp_path / "dst.png").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        move(tmp_path / "src.png", tmp_path / "dst.png")
    assert (tmp_path / "dst.png").read_bytes() == b"old"
    assert (tmp_path / "src.png").read_bytes() == b"new"


def test_a_link_is_moved_as_a_link(tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"secret")
    os.symlink(tmp_path / "target", tmp_path / "link.png")
    move(tmp_path / "link.png", tmp_path / "moved.png")
    assert (tmp_path / "moved.png").is_symlink()
    assert not os.path.lexists(tmp_path / "link.png")
