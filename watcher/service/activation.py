"""Socket activation (sd_listen_fds): the listening socket a service manager opened and passed to this process."""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping

from watcher.service.config import ConfigError

FIRST_FD = 3  # SD_LISTEN_FDS_START: passed sockets follow stdin, stdout and stderr
VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def passed_socket(environ: MutableMapping[str, str] = os.environ) -> socket.socket | None:
    """The first socket passed to this process (fd 3: a listening TCP socket), or None when none was.

    The variables go either way, as sd_listen_fds(unset_environment=1) does: the worker processes must not take
    them for their own. A ConfigError when what was passed is not a listening TCP socket."""
    pid, count = environ.get("LISTEN_PID"), environ.get("LISTEN_FDS", "")
    for name in VARIABLES:
        environ.pop(name, None)
    # LISTEN_PID names the process the sockets are for: a parent's, inherited, are not ours.
    if pid != str(os.getpid()) or not count.isdigit() or int(count) < 1:
        return None
    return _listening_tcp(FIRST_FD)


def _listening_tcp(fd: int) -> socket.socket:
    what = f"socket activation: fd {fd}"
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ConfigError(f"{what}: {exc.strerror or exc}") from None
    tcp = sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
    if not tcp or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        kind = f"{sock.family.name} {sock.type.name}"
        raise ConfigError(f"{what} is not a listening TCP socket ({kind}): the socket unit needs ListenStream=")
    sock.set_inheritable(False)  # as sd_listen_fds sets FD_CLOEXEC: no program the daemon starts gets it
    return sock
