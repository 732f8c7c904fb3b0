"""Which kind of filesystem a file is on (a network or FUSE one, shared by hosts whose clients cache apart), and
the one walk of a folder tree that the inbox, the claims and the review queue share."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path

# statfs(2) f_type magic numbers (linux/magic.h, and each filesystem's own for the FUSE-less ones).
SHARED_FILESYSTEMS = {
    0x6969: "NFS",
    0xFF534D42: "SMB/CIFS",
    0xFE534D42: "SMB2",
    0x517B: "SMB",
    0x65735546: "FUSE",  # GlusterFS, CephFS's ceph-fuse, sshfs, s3fs, ...
    0x00C36400: "Ceph",
    0x01021997: "9p",
    0x5346414F: "AFS",
    0x6B414653: "AFS",
    0x0BD00BD0: "Lustre",
    0x47504653: "GPFS",
    0x73757245: "Coda",
    0x7461636F: "OCFS2",
}
_STATFS_BYTES = 256  # larger than struct statfs on every Linux architecture; f_type is its first field

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def filesystem_type(where: Path | int) -> int:
    """The statfs(2) type number of the filesystem a path, or an open file descriptor, is on."""
    buffer = ctypes.create_string_buffer(_STATFS_BYTES)
    failed = _libc.fstatfs(where, buffer) if isinstance(where, int) else _libc.statfs(os.fsencode(where), buffer)
    if failed:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number), os.fspath(where) if isinstance(where, Path) else None)
    return ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF


def shared_filesystem(where: Path | int) -> str | None:
    """The name of the network or FUSE filesystem a path or open file is on; None for a local one."""
    return SHARED_FILESYSTEMS.get(filesystem_type(where))


def visible(name: str) -> bool:
    """Whether a name (or the last part of a path) is not hidden: hidden ones are the daemons' own."""
    return not os.path.basename(name).startswith(".")


def files_below(
    folder: Path, *, enters: Callable[[str], bool], under: str = ""
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry in `folder/under` and the subfolders `enters` lets in that is not a folder, with its name
    relative to `folder`. `enters` is asked with a subfolder's name relative to `folder`; links are never followed.

    A subfolder that vanishes or cannot be read while it is listed is passed over; `folder/under` itself raises.
    """
    pending = [under]
    while pending:
        at = pending.pop()
        try:
            with os.scandir(folder / at) as entries:
                listed = list(entries)
        except OSError:
            if at == under:
                raise
            continue
        for entry in listed:
            name = os.path.join(at, entry.name)
            if entry.is_dir(follow_symlinks=False):
                if enters(name):
                    pending.append(name)
            else:
                yield name, entry
