"""`python -m tests.sandbox PROGRAM ARGS...`: exec PROGRAM in the user unit's network sandbox, as systemd builds it.

PrivateNetwork=yes is a network namespace of its own (only a loopback, down); RestrictAddressFamilies=AF_UNIX is a
seccomp filter failing socket() for any other family with EAFNOSUPPORT. Sockets already open (a passed one) keep
working in both: that is what socket activation of the metrics port relies on. Linux on x86_64 or aarch64, as root.
"""

from __future__ import annotations

import ctypes
import os
import platform
import socket
import struct
import sys

CLONE_NEWNET = 0x40000000
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
EAFNOSUPPORT = 97
# The audit architecture and socket()'s number, for the architectures the filter knows (both little-endian).
ARCHITECTURES = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}
SUPPORTED = platform.machine() in ARCHITECTURES and os.geteuid() == 0

# Classic BPF: load a word of struct seccomp_data (nr at 0, arch at 4, args[0]'s low half at 16), compare, return.
LOAD, JUMP_IF_EQUAL, RETURN = 0x20, 0x15, 0x06


def sandboxed(argv: list[str]) -> None:
    """Enter the sandbox, then exec argv (the pid stays, so LISTEN_PID still names it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.unshare(CLONE_NEWNET), "unshare")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    program = _unix_sockets_only()
    filters = ctypes.create_string_buffer(program)
    fprog = struct.pack("HxxxxxxP", len(program) // 8, ctypes.addressof(filters))
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.c_char_p(fprog), 0, 0), "seccomp")
    os.execv(argv[0], argv)


def _unix_sockets_only() -> bytes:
    arch, socket_call = ARCHITECTURES[platform.machine()]
    instructions = [
        (LOAD, 0, 0, 4),
        (JUMP_IF_EQUAL, 0, 5, arch),  # another architecture's calls: allowed
        (LOAD, 0, 0, 0),
        (JUMP_IF_EQUAL, 0, 3, socket_call),  # not socket(): allowed
        (LOAD, 0, 0, 16),
        (JUMP_IF_EQUAL, 1, 0, socket.AF_UNIX),
        (RETURN, 0, 0, SECCOMP_RET_ERRNO | EAFNOSUPPORT),
        (RETURN, 0, 0, SECCOMP_RET_ALLOW),
    ]
    return b"".join(struct.pack("HBBI", *instruction) for instruction in instructions)


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


if __name__ == "__main__":
    sandboxed(sys.argv[1:])
