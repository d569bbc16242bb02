"""`AlertService`: the capture loop's single handle on alerts: the policy decides, the sink worker writes.

The loop feeds it predictions and camera-health changes; whatever events those cause go to the sink worker
together with the frame pair for snapshots, so the loop never wires the two together or touches a sink itself.
`close()` is the shutdown step: it ends every open alert as `interrupted`, writes those ends, records the run's
final counters and closes all sinks.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping

import numpy as np

from fume_edge.alerts.device_state import StateTracker
from fume_edge.alerts.event import AlertEvent, ModelSha
from fume_edge.alerts.policy import AlertPolicy, AlertPolicyConfig
from fume_edge.alerts.snapshot import SnapshotFrames
from fume_edge.alerts.summary import MinuteSummary
from fume_edge.alerts.topics import DEFAULT_STATION
from fume_edge.alerts.worker import SinksConfig, SinkStats, SinkWorker
from fume_edge.runtime.base import Prediction


class AlertService:
    """Policy + sinks. Construct (opens the sinks: bad paths fail here), `start()`, feed, `close()`; or use it as
    a context manager, which closes with run reason "completed" or "error"."""

    def __init__(self, policy: AlertPolicyConfig, sinks: SinksConfig, *, device_id: str,
                 cameras: Mapping[str, str] | None = None, model_sha: ModelSha = None,
                 run_config: Mapping[str, Any] | None = None, station: str = DEFAULT_STATION) -> None:
        self.policy = AlertPolicy(policy, device_id=device_id, cameras=cameras, model_sha=model_sha)
        self.sinks = SinkWorker(sinks, device_id=device_id, model_sha=model_sha, run_config=run_config)
        self.summary = MinuteSummary(device_id)
        # The retained MQTT state of this station (only with MQTT on)
        self.state = (StateTracker(station, sinks.mqtt.state_interval_s, model_sha)
                      if self.sinks.mqtt is not None else None)
        self._silent: frozenset[str] = frozenset()
        self._closed = False

    def start(self) -> None:
        self.sinks.start()

    def on_prediction(self, mono: float, wall: float, prediction: Prediction, co2_frame: np.ndarray | None = None,
                      ch4_frame: np.ndarray | None = None) -> list[AlertEvent]:
        """One inference result and the frames it ran on (for snapshots; not copied, so do not modify them)."""
        events = self.policy.on_prediction(mono, wall, prediction)
        areas = {"co2": None if co2_frame is None else prediction.co2_gas_area,
                 "ch4": None if ch4_frame is None else prediction.ch4_gas_area}
        minute = self.summary.add(wall, self.policy.subject, self.policy.smoothed_probs, areas)
        if minute is not None:
            self.sinks.submit_summary(minute)
        if events:
            self.sinks.submit(events, SnapshotFrames(co2_frame, ch4_frame, prediction))
        self._publish_state(mono, wall, areas)
        return events

    def _publish_state(self, mono: float, wall: float, areas: Mapping[str, float | None]) -> None:
        if self.state is None or self.sinks.mqtt is None:
            return
        state = self.state.update(mono, wall, self.policy.smoothed_probs, areas, self._silent,
                                  [alert.type for alert in self.policy.open_alerts], self.policy.subject)
        if state is not None:
            self.sinks.mqtt.publish_state(state)

    def on_camera_health(self, mono: float, wall: float, silent: Iterable[str], co2_frame: np.ndarray | None = None,
                         ch4_frame: np.ndarray | None = None) -> list[AlertEvent]:
        """The gases whose camera is silent now (empty set: all deliver); call on every change. Frames of the
        cameras still delivering, if at hand, go into the snapshot (a silent camera shows as NO SIGNAL)."""
        self._silent = frozenset(silent)
        events = self.policy.on_camera_health(mono, wall, self._silent)
        if events:
            self.sinks.submit(events, SnapshotFrames(co2_frame, ch4_frame, None))
        return events

    def on_unpaired(self, mono: float, wall: float, offset_s: float | None) -> list[AlertEvent]:
        """Both cameras deliver but nothing pairs (`offset_s` apart), or they pair again (None)."""
        events = self.policy.on_unpaired(mono, wall, offset_s)
        if events:
            self.sinks.submit(events)
        return events

    def record_stats(self, stats: Mapping[str, Any]) -> None:
        """The pipeline's counters (frames, pairs, drops...), kept in the run's row of the alert store."""
        self.sinks.record_stats(stats)

    def stats(self) -> SinkStats:
        return self.sinks.stats()

    def close(self, stats: Mapping[str, Any] | None = None, reason: str = "completed",
              mono: float | None = None, wall: float | None = None) -> list[AlertEvent]:
        """End open alerts as `interrupted` (at `mono`/`wall`, default now), write them and everything queued,
        end the run record with `reason` and `stats`, close the sinks. Safe to call twice."""
        if self._closed:
            return []
        self._closed = True
        events = self.policy.close(time.monotonic() if mono is None else mono, time.time() if wall is None else wall)
        self.sinks.submit(events)
        last_minute = self.summary.flush()
        if last_minute is not None:
            self.sinks.submit_summary(last_minute)
        self.sinks.stop(stats, reason)
        return events

    def __enter__(self) -> "AlertService":
        self.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(reason="completed" if exc_type is None else "error")
