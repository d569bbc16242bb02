"""The retained per-station state a dashboard reads the moment it connects, at most once per `state_interval_s`.

The inference loop calls `StateTracker.update` with every prediction; about once per interval it returns a frozen
`StationState` (the smoothed pH class and probabilities, gas areas, camera health, open alerts, subject, model sha
and the inference rate over the interval), which the MQTT publisher sends retained to `<prefix>/<device>/<station>/
state`. Frozen, so the publisher's thread reads it without sharing anything live with the loop.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fume_edge.alerts.event import ModelSha, iso_utc, model_sha_now


@dataclass(frozen=True)
class StationState:
    station: str
    time: str  # ISO 8601 UTC of the newest prediction in it
    ph_class: str | None  # the most probable smoothed class (None before the first usable prediction)
    probs: Mapping[str, float] | None  # smoothed pH probabilities by class name
    gas_areas: Mapping[str, float | None]  # gas pixel fraction per camera (None: camera silent)
    cameras: Mapping[str, str]  # gas -> "live" or "silent"
    open_alerts: tuple[str, ...]  # types of the alerts open now
    subject: str | None
    model_sha: str | None
    fps: float  # predictions per second over the last interval

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "station": self.station,
            "time": self.time,
            "ph_class": self.ph_class,
            "probs": None if self.probs is None else {k: round(v, 4) for k, v in self.probs.items()},
            "gas_areas": {k: None if v is None else round(v, 5) for k, v in self.gas_areas.items()},
            "cameras": dict(self.cameras),
            "open_alerts": list(self.open_alerts),
            "subject": self.subject,
            "model_sha": self.model_sha,
            "fps": round(self.fps, 2),
        }
        return json.dumps(data, separators=(",", ":"))


class StateTracker:
    """Counts predictions and hands out a `StationState` when `interval_s` of frame time has passed."""

    def __init__(self, station: str, interval_s: float, model_sha: ModelSha) -> None:
        self.station, self.interval_s, self.model_sha = station, interval_s, model_sha
        self._since: float | None = None  # monotonic start of the current interval
        self._count = 0

    def update(
        self,
        mono: float,
        wall: float,
        probs: Mapping[str, float] | None,
        gas_areas: Mapping[str, float | None],
        silent: Iterable[str],
        open_alerts: Iterable[str],
        subject: str | None,
    ) -> StationState | None:
        """One prediction at `mono`/`wall`; a state when the interval is over (the first one at once)."""
        self._count += 1
        if self._since is not None and mono - self._since < self.interval_s:
            return None
        elapsed = 0.0 if self._since is None else mono - self._since
        fps = self._count / elapsed if elapsed > 0 else 0.0
        self._since, self._count = mono, 0
        silent_set = frozenset(silent)
        return StationState(
            station=self.station,
            time=iso_utc(wall),
            ph_class=None if probs is None else max(probs, key=lambda name: probs[name]),
            probs=None if probs is None else dict(probs),
            gas_areas=dict(gas_areas),
            cameras={gas: "silent" if gas in silent_set else "live" for gas in gas_areas},
            open_alerts=tuple(sorted(set(open_alerts))),
            subject=subject,
            model_sha=model_sha_now(self.model_sha),
            fps=fps,
        )
