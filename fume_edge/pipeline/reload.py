"""`systemctl reload fume-edge` (SIGHUP): re-read run.yaml while inference goes on.

The signal handler only rings a bell. A thread of its own reads and validates the file (the command-line options
still win over it) and hands the loop one immutable `Reload`; the loop applies it between two ticks. What applies
hot: the alert policy of every station (thresholds, durations, smoothing; open alerts and their timers are kept),
the loop's `pipeline.tick_s` and `pipeline.stats_interval_s`, and the MQTT state interval. Everything else (model,
sources, stations added or removed, sinks, MQTT connection, web) is built once at start: a change there is logged
as "needs a restart: <keys>" and the rest of the file still applies. A file that does not validate is
refused with its file:line errors and the running configuration stays.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType, MappingProxyType
from typing import Any

from fume_edge.alerts.policy import AlertPolicyConfig
from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.config import RunConfig

log = logging.getLogger("fume_edge.reload")
# run.yaml keys applied without a restart (`stations` only for each station's `alerts:`)
HOT_KEYS = ("alerts", "pipeline.tick_s", "pipeline.stats_interval_s", "sinks.mqtt.state_interval_s")


@dataclass(frozen=True)
class Reload:
    """A validated run.yaml, ready for the loop: each running station's new policy, the loop's timings, the MQTT
    state interval, and the keys that wait for a restart."""

    config: RunConfig
    policies: Mapping[str, AlertPolicyConfig]
    needs_restart: tuple[str, ...]

    @property
    def state_interval_s(self) -> float:
        return self.config.sinks.mqtt.state_interval_s


def _changed(old: Any, new: Any, key: str = "") -> list[str]:
    """The dotted leaf keys whose values differ (a list counts as one value)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            k
            for name in sorted(old.keys() | new.keys())
            for k in _changed(old.get(name), new.get(name), f"{key}.{name}" if key else name)
        ]
    return [key]


def _hot(key: str) -> bool:
    return any(key == hot or key.startswith(f"{hot}.") for hot in HOT_KEYS)


def plan_reload(running: RunConfig, new: RunConfig) -> Reload:
    """What of `new` the running loop can take, and what needs a restart."""
    restart = [
        key
        for key in _changed(running.model_dump(exclude={"stations"}), new.model_dump(exclude={"stations"}))
        if not _hot(key)
    ]
    old_stations, new_stations = running.run_stations(), new.run_stations()
    if [s.model_dump(exclude={"alerts"}) for s in old_stations] != [
        s.model_dump(exclude={"alerts"}) for s in new_stations
    ]:
        restart.append("stations")  # cameras or stations added, removed or changed
    running_ids = {station.id for station in old_stations}
    policies = {s.id: new.policy_for(s) for s in new_stations if s.id in running_ids}
    return Reload(new, MappingProxyType(policies), tuple(restart))


class Reloader:
    """Owns the SIGHUP handler (main thread) and the thread that reads the file; the loop calls `take()`."""

    def __init__(self, load: Callable[[], RunConfig], running: RunConfig) -> None:
        self._load, self._running = load, running  # restart keys are compared with what the run started with
        self._bell = threading.Event()
        self._stop = False
        self._ready: queue.SimpleQueue[Reload] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="config-reload", daemon=True)
        self._previous: Any = None

    def request(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Ask for a reload (the SIGHUP handler: it only sets an event)."""
        self._bell.set()

    def take(self) -> Reload | None:
        """The newest validated reload not yet applied (loop thread), or None."""
        latest = None
        while True:
            try:
                latest = self._ready.get_nowait()
            except queue.Empty:
                return latest

    def _run(self) -> None:
        while True:
            self._bell.wait()
            self._bell.clear()
            if self._stop:
                return
            self._read()

    def _read(self) -> None:
        try:
            new = self._load()
            reload = plan_reload(self._running, new)
        except FumeEdgeError as exc:
            log.error("reload refused, the running configuration stays:\n%s", exc)
            return
        except Exception:  # a bug must not end reloading for the rest of the run
            log.exception("reload failed, the running configuration stays")
            return
        if reload.needs_restart:
            log.warning("needs a restart: %s", ", ".join(reload.needs_restart))
        self._ready.put(reload)

    def __enter__(self) -> Reloader:
        self._thread.start()
        self._previous = signal.signal(signal.SIGHUP, self.request)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGHUP, self._previous)
        self._stop = True
        self._bell.set()
        self._thread.join()
