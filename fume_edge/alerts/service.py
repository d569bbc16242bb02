"""`AlertService`: the capture loop's single handle on alerts: the policies decide, the sink worker writes.

One device runs one or more stations (camera pairs); each has its own `AlertPolicy` (smoothing, hysteresis,
open alerts, subject) and its own minute summary, and all share one sink worker, so one database, JSONL file and
MQTT connection serve every station and every event says which station it is about. The loop feeds it predictions
and camera-health changes per station; whatever events those cause go to the sink worker together with the frame
pair for snapshots, so the loop never wires the two together or touches a sink itself. `set_subject` is the one
way to tag a station (from any thread: the page, MQTT, `fume-edge tag`). `close()` is the shutdown step: it ends
every station's open alerts as `interrupted`, writes those ends, records the run's final counters and closes all
sinks.
"""

from __future__ import annotations

import time
from typing import Any
from collections.abc import Iterable, Mapping

import numpy as np

from fume_edge.alerts.device_state import StateTracker
from fume_edge.alerts.event import DEFAULT_STATION, AlertEvent, ModelSha, model_sha_now
from fume_edge.alerts.model_events import model_alerts
from fume_edge.alerts.policy import AlertPolicy, AlertPolicyConfig
from fume_edge.alerts.snapshot import SnapshotFrames
from fume_edge.alerts.summary import MinuteSummary
from fume_edge.alerts.worker import SinksConfig, SinkStats, SinkWorker
from fume_edge.labels import GASES
from fume_edge.runtime.base import Prediction


class AlertService:
    """Policies + sinks. Construct (opens the sinks: bad paths fail here), `start()`, feed, `close()`; or use it as
    a context manager, which closes with run reason "completed" or "error". `stations` maps each station id to its
    policy (default: one station, `default`, with `policy`)."""

    def __init__(
        self,
        policy: AlertPolicyConfig,
        sinks: SinksConfig,
        *,
        device_id: str,
        cameras: Mapping[str, str] | None = None,
        model_sha: ModelSha = None,
        run_config: Mapping[str, Any] | None = None,
        stations: Mapping[str, AlertPolicyConfig] | None = None,
    ) -> None:
        configs = dict(stations) if stations else {DEFAULT_STATION: policy}
        self.policies = {
            station: AlertPolicy(config, device_id=device_id, cameras=cameras, model_sha=model_sha, station=station)
            for station, config in configs.items()
        }
        self.sinks = SinkWorker(
            sinks, device_id=device_id, model_sha=model_sha, run_config=run_config, stations=tuple(configs)
        )
        self.summaries = {station: MinuteSummary(device_id, station) for station in configs}
        # Each station's retained MQTT state (only with MQTT on)
        self.states = (
            {station: StateTracker(station, sinks.mqtt.state_interval_s, model_sha) for station in configs}
            if self.sinks.mqtt is not None
            else {}
        )
        self.device_id, self._model_sha = device_id, model_sha
        self._closed = False

    @property
    def policy(self) -> AlertPolicy:
        """The first (on a one-station device, the only) station's policy."""
        return next(iter(self.policies.values()))

    def reconfigure(self, policies: Mapping[str, AlertPolicyConfig], state_interval_s: float) -> None:
        """New alert policies for the stations named, and the retained state's interval (a run.yaml reload; loop
        thread, between two ticks)."""
        for station, config in policies.items():
            self.policies[station].reconfigure(config)
        for tracker in self.states.values():
            tracker.interval_s = state_interval_s

    def start(self) -> None:
        self.sinks.start()

    def set_subject(self, subject: str | None, station: str | None = None) -> None:
        """Tag what follows at `station` (None: every station) with `subject` (None: untagged). Safe from any
        thread: one reference assignment per station, read by the loop at its next event."""
        for name in self.policies if station is None else (station,):
            self.policies[name].subject = subject

    def on_prediction(
        self,
        mono: float,
        wall: float,
        prediction: Prediction,
        co2_frame: np.ndarray | None = None,
        ch4_frame: np.ndarray | None = None,
        station: str = DEFAULT_STATION,
    ) -> list[AlertEvent]:
        """One inference result of `station` and the frames it ran on (for snapshots; not copied, so do not modify
        them)."""
        policy = self.policies[station]
        events = policy.on_prediction(mono, wall, prediction)
        frames = {"co2": co2_frame, "ch4": ch4_frame}
        areas = {gas: None if frames[gas] is None else prediction.gas_area.get(gas) for gas in GASES}
        minute = self.summaries[station].add(wall, policy.subject, policy.smoothed_probs, areas)
        if minute is not None:
            self.sinks.submit_summary(minute)
        if events:
            self.sinks.submit(events, SnapshotFrames(co2_frame, ch4_frame, prediction))
        self._publish_state(station, mono, wall, areas)
        return events

    def _publish_state(self, station: str, mono: float, wall: float, areas: Mapping[str, float | None]) -> None:
        tracker = self.states.get(station)
        if tracker is None or self.sinks.mqtt is None:
            return
        policy = self.policies[station]
        state = tracker.update(
            mono,
            wall,
            policy.smoothed_probs,
            areas,
            policy.silent_cameras,
            [alert.type for alert in policy.open_alerts],
            policy.subject,
        )
        if state is not None:
            self.sinks.mqtt.publish_state(state)

    def on_camera_health(
        self,
        mono: float,
        wall: float,
        silent: Iterable[str],
        co2_frame: np.ndarray | None = None,
        ch4_frame: np.ndarray | None = None,
        station: str = DEFAULT_STATION,
    ) -> list[AlertEvent]:
        """The gases whose camera is silent now at `station` (empty set: all deliver); call on every change. Frames
        of the cameras still delivering, if at hand, go into the snapshot (a silent camera shows as NO SIGNAL)."""
        events = self.policies[station].on_camera_health(mono, wall, silent)
        if events:
            self.sinks.submit(events, SnapshotFrames(co2_frame, ch4_frame, None))
        return events

    def on_unpaired(
        self, mono: float, wall: float, offset_s: float | None, station: str = DEFAULT_STATION
    ) -> list[AlertEvent]:
        """Both cameras of `station` deliver but nothing pairs (`offset_s` apart), or they pair again (None)."""
        events = self.policies[station].on_unpaired(mono, wall, offset_s)
        if events:
            self.sinks.submit(events)
        return events

    def model_event(self, record: Mapping[str, Any]) -> list[AlertEvent]:
        """A model-update step (a `models/events.jsonl` record, fume_edge/bundle/store.py) as alert events for every
        sink: `model_installed`, `model_rejected`, `model_switched`, `model_rolled_back`; other steps give none.
        Safe from any thread (the model watcher's); ignored once the service is closed."""
        if self._closed:
            return []
        events = model_alerts(record, self.device_id, model_sha_now(self._model_sha), time.monotonic())
        if events:
            self.sinks.submit(events)
        return events

    def record_stats(self, stats: Mapping[str, Any]) -> None:
        """The pipeline's counters (frames, pairs, drops...), kept in the run's row of the alert store."""
        self.sinks.record_stats(stats)

    def stats(self) -> SinkStats:
        return self.sinks.stats()

    def close(
        self,
        stats: Mapping[str, Any] | None = None,
        reason: str = "completed",
        mono: float | None = None,
        wall: float | None = None,
    ) -> list[AlertEvent]:
        """End every station's open alerts as `interrupted` (at `mono`/`wall`, default now), write them and
        everything queued, end the run record with `reason` and `stats`, close the sinks. Safe to call twice."""
        if self._closed:
            return []
        self._closed = True
        mono, wall = time.monotonic() if mono is None else mono, time.time() if wall is None else wall
        events = [event for policy in self.policies.values() for event in policy.close(mono, wall)]
        self.sinks.submit(events)
        for summary in self.summaries.values():
            last_minute = summary.flush()
            if last_minute is not None:
                self.sinks.submit_summary(last_minute)
        self.sinks.stop(stats, reason)
        return events

    def __enter__(self) -> AlertService:
        self.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(reason="completed" if exc_type is None else "error")
