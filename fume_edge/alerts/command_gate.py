"""Admission of MQTT commands: a token bucket against floods, counted and logged at most once per minute.

A broker that lets anything publish to a device's `cmd/` topics (or a script gone wrong) could send thousands of
commands a second; each applied command is a database row and a log line. The bucket admits `burst` at once and
then `rate_per_s`; the rest are dropped in memory on paho's thread (they never queue) and counted, and one warning
per minute says how many. Commands whose value equals the current one are skipped by the caller and counted here,
and so are commands for a station the device does not run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

LOG_EVERY_S = 60.0


class CommandGate:
    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s, self.burst, self._clock = rate_per_s, burst, clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()
        self.dropped = 0  # refused by the rate limit (this run)
        self.unchanged = 0  # skipped: same value as the current one (this run)
        self.unknown = 0  # ignored: for a station this device does not run (this run)
        self._reported = (0, 0, 0)  # (dropped, unchanged, unknown) at the last log line
        self._next_log = 0.0

    def admit(self) -> bool:
        """Take a token if one is left; a refusal is counted."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate_per_s)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            self.dropped += 1
        self.report()
        return False

    def skip_unchanged(self) -> None:
        with self._lock:
            self.unchanged += 1
        self.report()

    def unknown_station(self) -> None:
        with self._lock:
            self.unknown += 1
        self.report()

    def report(self) -> None:
        """One warning per minute at most, with the counts since the last one."""
        with self._lock:
            now = self._clock()
            counts = (self.dropped, self.unchanged, self.unknown)
            if now < self._next_log or counts == self._reported:
                return
            dropped, unchanged, unknown = (now_ - before for now_, before in zip(counts, self._reported, strict=True))
            self._reported, self._next_log = counts, now + LOG_EVERY_S
        log.warning(
            "MQTT commands: %d dropped by the rate limit (%g/s, burst %d), %d unchanged and skipped, %d for "
            "a station this device does not run; find what floods <prefix>/<device>/cmd/ and "
            "<prefix>/<device>/<station>/cmd/",
            dropped,
            self.rate_per_s,
            self.burst,
            unchanged,
            unknown,
        )
