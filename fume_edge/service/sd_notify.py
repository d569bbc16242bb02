"""systemd's notify protocol over the stdlib: READY, watchdog pings, STATUS and STOPPING for `Type=notify` units.

systemd passes `$NOTIFY_SOCKET` (an AF_UNIX datagram socket; a leading `@` means the abstract namespace) and,
with `WatchdogSec=`, `$WATCHDOG_USEC` (and `$WATCHDOG_PID`). The capture loop pings once per tick, rate-limited here
to half the watchdog interval, so a loop that hangs stops the pings and systemd restarts the service. Outside
systemd (no `$NOTIFY_SOCKET`) every call does nothing. A failed send is logged once and never stops the loop.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """One datagram socket to the service manager; a context manager that closes it."""

    def __init__(self, environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock  # injectable so tests pace the watchdog without sleeping
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_s = self._watchdog_interval(env)
        self._socket: socket.socket | None = None
        if self.address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._next_ping = 0.0
        self._failed = False

    @staticmethod
    def _watchdog_interval(env: Mapping[str, str]) -> float | None:
        """Seconds between required pings, or None when the watchdog is off or meant for another process."""
        pid = env.get("WATCHDOG_PID")
        if pid and pid != str(os.getpid()):
            return None
        try:
            usec = int(env.get("WATCHDOG_USEC", "0"))
        except ValueError:
            return None
        return usec / 1e6 if usec > 0 else None

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, *fields: str) -> None:
        """Send `KEY=VALUE` lines as one datagram (no-op outside systemd)."""
        if self._socket is None:
            return
        try:
            self._socket.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            if not self._failed:
                log.warning("systemd notify socket %s: %s (further failures are not logged)", self.address, exc)
                self._failed = True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def tick(self, status: Callable[[], str] | None = None) -> None:
        """Called every loop tick: pings the watchdog (with a status line) at half its interval."""
        if self.watchdog_s is None:
            return
        now = self._clock()
        if now < self._next_ping:
            return
        self._next_ping = now + self.watchdog_s / 2
        self.send("WATCHDOG=1", *([f"STATUS={status()}"] if status is not None else []))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> SystemdNotifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
