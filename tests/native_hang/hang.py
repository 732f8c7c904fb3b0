"""A C call that never returns, whatever signal comes: libc's sigsuspend with every signal blocked (only SIGKILL,
which cannot be blocked, ends it), as a C library looping in its own code would hold its caller."""

from __future__ import annotations

import ctypes

SIGSET_BYTES = 128  # glibc's sigset_t


def hang_in_c() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    every_signal = ctypes.create_string_buffer(SIGSET_BYTES)
    libc.sigfillset(every_signal)
    libc.sigsuspend(every_signal)
