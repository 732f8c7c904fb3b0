"""Move processed files to their folder, never overwriting, and make the moves durable."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Set
from pathlib import Path

NAME_MAX = 255


def free_name(folder: Path, name: str, *, taken: Set[str] = frozenset()) -> str:
    """`name`, or `stem-1.ext`, `stem-2.ext`, … : the first not in `folder` nor in `taken`.

    `name` may be in a subfolder (`scanner2/scan.png`): it stays there, the suffix goes on the file's own name.
    """
    subfolder, own = os.path.split(name)
    stem, extension = _split(own)
    candidate, number = name, 0
    while candidate in taken or os.path.lexists(folder / candidate):
        number += 1
        suffix = f"-{number}{extension}"
        candidate = os.path.join(subfolder, _fit(stem, NAME_MAX - len(os.fsencode(suffix))) + suffix)
    return candidate


def move(source: Path, destination: Path) -> None:
    """Move `source` (a link stays a link) to `destination`, which must not exist.

    A hard link then an unlink can never overwrite; where links are not allowed, rename. A destination
    subfolder not made yet (the first file from a subfolder of the inbox) is made, durably.
    """
    try:
        _link(source, destination)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(destination):
            raise FileExistsError(errno.EEXIST, "destination exists", os.fspath(destination)) from None
        os.rename(source, destination)
        return
    os.unlink(source)


def _link(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination, follow_symlinks=False)
    except FileNotFoundError:
        if destination.parent.is_dir() or not os.path.lexists(source):
            raise
        top = destination.parent  # the topmost folder missing: its parent's entry for it must be made durable
        while not top.parent.is_dir():
            top = top.parent
        destination.parent.mkdir(parents=True, exist_ok=True)
        sync_folders([top.parent])
        os.link(source, destination, follow_symlinks=False)


def sync_folders(folders: Iterable[Path]) -> None:
    """fsync each folder once, in the order given, so the renames in it survive a power cut."""
    for folder in dict.fromkeys(folders):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _split(name: str) -> tuple[str, str]:
    stem, extension = os.path.splitext(name)
    return (stem, extension) if stem else (name, "")


def _fit(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8 without splitting a character."""
    return os.fsdecode(os.fsencode(text)[:limit].decode("utf-8", errors="ignore").encode())
