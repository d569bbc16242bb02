"""Results per second per station, from the published snapshot's counters (never from the loop's objects).

The page and /metrics need each station's FPS over the last seconds. The loop publishes counts only; this keeps
the (time, count) pairs that readers saw and answers the rate over the newest `window_s` of them, or the run's
average while fewer than two samples lie in the window (the first request after start).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from fume_edge.pipeline.published import LoopSnapshot

WINDOW_S = 5.0
DEVICE = ""  # the key of the device-wide count (all stations)


class StationRates:
    """Shared by the web threads (a lock around the samples); fed by whoever reads the snapshot."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def fps(self, snapshot: LoopSnapshot) -> dict[str, float]:
        """Results per second of every station (by id) and of the device (key `DEVICE`)."""
        now, elapsed = time.monotonic(), float(snapshot.stats["elapsed_s"])
        counts = {sid: int(s.stats["inferences"]) for sid, s in snapshot.stations.items()}
        counts[DEVICE] = int(snapshot.stats["inferences"])
        with self._lock:
            return {key: self._rate(key, now, count, elapsed) for key, count in counts.items()}

    def _rate(self, key: str, now: float, count: int, elapsed: float) -> float:
        samples = self._samples.setdefault(key, deque())
        if not samples or samples[-1][1] != count or now - samples[-1][0] > 0.5:
            samples.append((now, count))
        while len(samples) > 2 and now - samples[1][0] >= self.window_s:
            samples.popleft()
        (t0, c0), (t1, c1) = samples[0], samples[-1]
        if t1 - t0 >= 1.0:
            return (c1 - c0) / (t1 - t0)
        return count / elapsed if elapsed > 0 else 0.0
