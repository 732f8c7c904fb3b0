"""A file read as the server has it, past this client's caches: what another host wrote a moment ago.

On a network or FUSE filesystem a client's cached size and pages of a file can lag what another
host's client wrote by a second or so (Gluster's client caches, NFS's attribute cache), and
neither fstat nor a plain read asks the server; a read with O_DIRECT does (measured on GlusterFS:
tests/test_shared.py; fstat, statx with AT_STATX_FORCE_SYNC and posix_fadvise(DONTNEED) all stay
stale). A local filesystem is coherent, and is read plainly.
"""

from __future__ import annotations

import errno
import mmap
import os
import time

from watcher.filesystem import shared_filesystem

BLOCK = 65536  # what one O_DIRECT read takes: a multiple of every device's block size, so aligned
EMPTY_CONFIRM_S = 2.0  # twice FUSE's default attribute timeout: how long a file seen empty is watched for more


class ServerView:
    """Reads of the file open at `fd` that go to the server; close it before `fd`."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._direct = _open_direct(fd)
        self._block = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT wants its buffer

    def size(self) -> int:
        """The file's length on the server: read on from this client's idea of it to the end."""
        cached = os.fstat(self.fd).st_size
        if self._direct is None:
            return cached
        # FUSE answers a read at or past the size it has cached with nothing, without asking, so a file this
        # client believes empty may hold another host's header: only its attributes expiring tell (1 s on Gluster).
        deadline = time.monotonic() + EMPTY_CONFIRM_S
        while cached == 0 and time.monotonic() < deadline:
            time.sleep(EMPTY_CONFIRM_S / 40)
            cached = os.fstat(self.fd).st_size
        start = cached - cached % BLOCK
        got = self._read_block(start)
        if got == 0 and start > 0:
            # Shorter than this client believed: another host cut it back (a torn line repaired).
            start, got = 0, self._read_block(0)
        while got == BLOCK:
            start += BLOCK
            got = self._read_block(start)
        return start + got

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset` (fewer at the end of the file)."""
        if self._direct is None:
            return os.pread(self.fd, length, offset)
        start = offset - offset % BLOCK
        chunks = []
        while start < offset + length:
            got = self._read_block(start)
            chunks.append(self._block[:got])
            start += got
            if got < BLOCK:
                break
        skip = offset % BLOCK
        return b"".join(chunks)[skip : skip + length]

    def close(self) -> None:
        self._block.close()
        if self._direct is not None:
            os.close(self._direct)

    def _read_block(self, offset: int) -> int:
        assert self._direct is not None
        return os.preadv(self._direct, [self._block], offset)


def _open_direct(fd: int) -> int | None:
    """A second descriptor on the same file that reads past the caches; None on a local filesystem.

    A local one is coherent, and reading it with O_DIRECT would go to the disk: 2 ms a commit instead of 0.1.
    """
    if shared_filesystem(fd) is None:
        return None
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return None
