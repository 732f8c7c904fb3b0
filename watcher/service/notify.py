"""The systemd notify protocol (sd_notify) over $NOTIFY_SOCKET, with a watchdog fed only by real progress."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

from watcher.vocabulary import Event

log = structlog.get_logger()


class Notifier:
    """Tells the service manager about readiness, status and liveness; does nothing outside systemd."""

    def __init__(
        self,
        address: str | None,
        *,
        watchdog_interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # A leading '@' names a socket in the abstract namespace, which the kernel spells with a NUL.
        self._address = "\0" + address[1:] if address and address.startswith("@") else address
        self._ping_interval = watchdog_interval_s if address else None
        self._clock = clock
        self._last_ping = clock()
        self._status = ""
        self._failing = False

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str] = os.environ,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> Notifier:
        """A notifier for the socket and watchdog systemd describes in the environment (or a no-op one)."""
        address = environ.get("NOTIFY_SOCKET") or None
        if address is not None and not address.startswith(("/", "@")):
            log.warning(Event.NOTIFY_SOCKET_UNSUPPORTED, address=address)
            address = None
        return cls(address, watchdog_interval_s=_watchdog_interval(environ), clock=clock)

    @property
    def ping_interval(self) -> float | None:
        """Seconds between watchdog pings (half of $WATCHDOG_USEC); None when there is no watchdog."""
        return self._ping_interval

    def ready(self) -> None:
        """READY=1, with the latest status, once the daemon is watching; it counts as a watchdog ping too."""
        ping = ("WATCHDOG=1",) if self._ping_interval is not None else ()
        self._send("READY=1", *self._status_fields(), *ping)
        self._last_ping = self._clock()

    def status(self, text: str) -> None:
        """A one-line status shown by `systemctl status`; sent only when it changes."""
        line = " ".join(text.split())
        if line != self._status:
            self._status = line
            self._send(*self._status_fields())

    def stopping(self) -> None:
        """STOPPING=1: shutdown has begun, so systemd neither restarts nor times out the worker meanwhile."""
        self._send("STOPPING=1")

    def progress(self) -> None:
        """The worker loop went round once; ping the watchdog if half its timeout has passed since the last ping."""
        if self._ping_interval is None:
            return
        now = self._clock()
        if now - self._last_ping >= self._ping_interval:
            self._last_ping = now
            self._send("WATCHDOG=1")

    def _status_fields(self) -> tuple[str, ...]:
        return (f"STATUS={self._status}",) if self._status else ()

    def _send(self, *fields: str) -> None:
        if not self._address:
            return
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block: a listener that stops reading must not stall the worker loop.
                sock.setblocking(False)
                sock.sendto(message, self._address)
        except OSError as error:
            # Losing a notification must never stop the work; say so once per outage, not every ping.
            if not self._failing:
                log.warning(Event.NOTIFY_FAILED, error=error.strerror or str(error), message=fields[0])
            self._failing = True
        else:
            self._failing = False


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of $WATCHDOG_USEC in seconds, when the watchdog is meant for this process."""
    watchdog_pid = environ.get("WATCHDOG_PID")
    if watchdog_pid and watchdog_pid != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2 / 1_000_000 if usec > 0 else None
