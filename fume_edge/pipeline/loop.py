"""The inference loop: every station's paired frames → one batched backend call per tick → each station's alerts.

The loop's unit is a station (one CO2 + one CH4 camera, `station.py`): each has its own capture threads and rings,
pairing, degraded mode, alert policy and subject. This loop (the caller's thread) polls every station without
waiting on any, handles each station's camera-health and pairing changes in time order, stacks the ready pairs of
all stations into one batch, runs the backend once and hands each station its own result; the alert service writes
events from its own sink thread, so a slow disk or broker never stalls inference.

Fairness: when more pairs are ready than one call takes (the model's batch, `export --batch N`), stations take
turns (round-robin); a pair left out waits for the next tick. A short tick runs only its ready pairs on a
`--dynamic-batch` model and is padded to N on a static one (the padding is counted); on ONNX Runtime a padded call
costs a full one, 2.8-3.3x a dynamic call with one pair of three (benchmarks/README.md, "Short ticks").
Isolation: a station's dead camera, garbage or NaN frames, clock offset or NaN output touch only its own state; a
station whose source blocks has no frames, so it simply has no pair in the batch.

Two modes, chosen by the sources:
- live (a camera, a stream, or recorded sources paced in real time): the rings keep only the newest frames and,
  when several pairs of a station are ready at once, only the newest is inferred (the others are counted as
  `stale`): results stay current however slow the model is;
- lossless (every source recorded and played as fast as possible): each station's frames are taken in time order
  and every pair is inferred; capture waits for the loop instead of dropping. This is also what the benchmark runs.
Every drop is counted: ring overwrites, frames without a partner, stale pairs, garbage frames (NaN/inf included),
predictions with non-finite pH (never fed to the alert policy), sink queue drops.

Other threads read only `snapshot` (`published.py`), a new immutable object the loop publishes as it goes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from types import MappingProxyType
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fume_edge.alerts.event import AlertEvent
from fume_edge.alerts.service import AlertService
from fume_edge.pipeline.published import PUBLISH_S, LoopSnapshot, StationSnapshot
from fume_edge.pipeline.station import Station
from fume_edge.pipeline.sync import Health, Pair
from fume_edge.runtime.base import Backend, Prediction, batch_capacity, call_rows, infer_rows

ResultHook = Callable[[Pair, Prediction], None]
EventsHook = Callable[[Sequence[AlertEvent]], None]
# Every loop pass, between two ticks, on the loop thread: the watchdog, a run.yaml reload (it may set the timings).
TickHook = Callable[["Pipeline"], None]


@dataclass
class LoopCounters:
    """What the loop did over all stations (each station keeps its own `StationCounters`)."""

    inferences: int = 0
    calls: int = 0  # backend calls (one per tick with work)
    padded: int = 0  # batch rows run without a pair (a short tick on a static-batch model)
    prepare_s: float = 0.0  # summed stage times, for means over any interval
    infer_s: float = 0.0
    alerts_s: float = 0.0
    latency_s: float = 0.0  # summed capture-to-result time over all stations (live mode)
    latency_n: int = 0


class Pipeline:
    """Runs the loop over its stations (it starts and stops their cameras) until stopped, out of frames, or out of
    time/frames. `batch`: pairs per backend call (None: the model's static batch, or one per station)."""

    def __init__(
        self,
        stations: Sequence[Station],
        backend: Backend,
        alerts: AlertService,
        *,
        tick_s: float,
        stats_interval_s: float,
        doorbell: threading.Event | None = None,
        batch: int | None = None,
        on_result: ResultHook | None = None,
        on_events: EventsHook | None = None,
        on_tick: TickHook | None = None,
    ) -> None:
        self.stations, self.backend, self.alerts = tuple(stations), backend, alerts
        self.live = self.stations[0].live
        self.tick_s, self.stats_interval_s = tick_s, stats_interval_s
        self.doorbell = doorbell or threading.Event()
        self.on_result, self.on_events, self.on_tick = on_result, on_events, on_tick
        self.counters = LoopCounters()
        self.model_batch = batch_capacity(backend)  # None: any batch
        self.batch = batch or self.model_batch or len(self.stations)
        rows = self.model_batch or self.batch
        width, height = backend.input_size
        self._co2 = np.zeros((rows, 1, height, width), np.float32)
        self._ch4 = np.zeros_like(self._co2)
        self._mask = np.zeros((rows, 2), np.float32)
        self._turn = 0  # the station that goes first when the batch cannot take every ready pair
        self.started = time.monotonic()
        self._published = 0.0
        self._publish()

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.stations[0].cameras

    @property
    def latest(self) -> Prediction | None:
        """The first station's newest prediction (loop thread; others read `snapshot`)."""
        return self.stations[0].latest

    def run(
        self, should_stop: Callable[[], bool], max_frames: int | None = None, duration_s: float | None = None
    ) -> str:
        """Run until a stop condition; returns why: `interrupted` (should_stop), `completed` (frames or time
        limit reached, or every source ended). Frames captured before an interruption are still processed."""
        self.started = time.monotonic()
        deadline = self.started + duration_s if duration_s is not None else float("inf")
        next_stats = self.started + self.stats_interval_s
        for station in self.stations:
            station.start(self.started)
        reason = "completed"
        try:
            while True:
                if self.on_tick is not None:
                    self.on_tick(self)
                if should_stop():
                    reason = "interrupted"
                    break
                if (max_frames is not None and self.counters.inferences >= max_frames) or time.monotonic() >= deadline:
                    break
                if all(station.idle for station in self.stations):
                    break
                self.doorbell.clear()  # a frame arriving from here on rings again: no wake-up is lost
                for station in self.stations:
                    station.poll()
                if not self._tick(max_frames):
                    self.doorbell.wait(self.tick_s)
                if time.monotonic() >= next_stats:
                    self.alerts.record_stats(self.stats())
                    next_stats = time.monotonic() + self.stats_interval_s
        finally:
            for station in self.stations:
                station.stop()
        if reason == "interrupted":
            for station in self.stations:
                station.leftovers()
            while self._tick(max_frames):
                pass
        self._publish(force=True)
        return reason

    def _tick(self, max_frames: int | None) -> bool:
        """Handle every station's decided items up to its next pair, then infer up to `batch` pairs, stations taking
        turns. False when there was nothing to infer."""
        ready: list[tuple[Station, Pair]] = []
        count = len(self.stations)
        room = self.batch if max_frames is None else min(self.batch, max_frames - self.counters.inferences)
        first = self._turn
        for k in range(count):
            index = (first + k) % count
            station = self.stations[index]
            pair = self._until_pair(station)
            if pair is not None and len(ready) < room:
                station.pop()
                ready.append((station, pair))
                self._turn = (index + 1) % count  # the next tick starts after the last station served
        if not ready:
            self._publish()
            return False
        self._infer(ready)
        self._publish()
        return True

    def _until_pair(self, station: Station) -> Pair | None:
        """Handle the station's health and pairing changes in time order; its next pair (left queued), if any."""
        while (item := station.next_item()) is not None:
            if isinstance(item, Pair):
                return item
            station.pop()
            if isinstance(item, Health):
                co2, ch4 = (None if cam in item.silent else station.frames[cam] for cam in station.cameras)
                self._emitted(
                    self.alerts.on_camera_health(item.t, self._wall(item.t), item.silent, co2, ch4, station=station.id)
                )
            else:
                self._emitted(self.alerts.on_unpaired(item.t, self._wall(item.t), item.offset_s, station=station.id))
        return None

    def _emitted(self, events: Sequence[AlertEvent]) -> None:
        if events and self.on_events is not None:
            self.on_events(events)

    def _infer(self, ready: list[tuple[Station, Pair]]) -> None:
        c, n = self.counters, len(ready)
        t0 = time.perf_counter()
        batch_images = []
        for row, (station, pair) in enumerate(ready):
            images = tuple(None if frame is None else frame.image for frame in pair.frames)
            station.inputs.prepare_into(
                images, self._co2[row : row + 1], self._ch4[row : row + 1], self._mask[row : row + 1]
            )
            batch_images.append(images)
        rows = call_rows(self.backend, n)  # a static batch runs whole (the rows past `n` are padding)
        t1 = time.perf_counter()
        predictions = infer_rows(self.backend, self._co2[:rows], self._ch4[:rows], self._mask[:rows])
        t2 = time.perf_counter()
        c.calls += 1
        c.padded += rows - n
        c.inferences += n
        c.prepare_s += t1 - t0
        c.infer_s += t2 - t1
        for (station, pair), images, prediction in zip(ready, batch_images, predictions[:n], strict=True):
            self._result(station, pair, images, prediction)

    def _result(
        self, station: Station, pair: Pair, images: tuple[np.ndarray | None, ...], prediction: Prediction
    ) -> None:
        s = station.counters
        s.inferences += 1
        if not prediction.finite:  # one NaN must never reach the policy: dropped, counted, shown
            s.nonfinite += 1
            return
        t0 = time.perf_counter()
        events = self.alerts.on_prediction(
            pair.t, self._wall(pair.t), prediction, images[0], images[1], station=station.id
        )
        self.counters.alerts_s += time.perf_counter() - t0  # the policy and the sink hand-off, not the hooks
        s.degraded += images[0] is None or images[1] is None
        if self.live:
            latency = time.monotonic() - pair.t
            s.latency_s += latency
            s.latency_n += 1
            self.counters.latency_s += latency
            self.counters.latency_n += 1
        for camera, image in zip(station.cameras, images, strict=True):
            if image is not None:
                station.frames[camera] = image
        station.latest = prediction
        self._emitted(events)
        if self.on_result is not None:
            self.on_result(pair, prediction)
        if station.on_result is not None:
            station.on_result(pair, prediction)

    @staticmethod
    def _wall(t: float) -> float:
        """Wall-clock time of frame time `t`: when it was captured (live), or now for frames played ahead of it."""
        return time.time() - max(0.0, time.monotonic() - t)

    def _publish(self, force: bool = False) -> None:
        """A new snapshot for the other threads, at most every PUBLISH_S (always when forced)."""
        now = time.monotonic()
        if not force and now - self._published < PUBLISH_S:
            return
        self._published = now
        stations = {}
        for station in self.stations:
            policy = self.alerts.policies[station.id]
            stations[station.id] = StationSnapshot(
                station.id,
                self.station_stats(station),
                station.latest,
                policy.smoothed_probs,
                policy.open_alerts,
                policy.subject,
            )
        self.snapshot = LoopSnapshot(self.stats(), MappingProxyType(stations))

    def station_stats(self, station: Station) -> dict[str, Any]:
        """One station's counters and cameras, JSON-ready."""
        c, sync = station.counters, station.sync
        cameras = {
            cam: {
                "state": "silent" if cam in sync.silent and stream.state == "live" else stream.state,
                "frames": stream.frames,
                "garbage": stream.garbage,
                "last_garbage": stream.last_problem,
                "reconnects": stream.reconnects,
                "overwritten": station.hub.overwritten[cam],
                "unmatched": sync.unmatched[cam],
                "out_of_order": sync.out_of_order[cam],
            }
            for cam, stream in station.streams.items()
        }
        return {
            "cameras": cameras,
            "pairs": sync.pairs,
            "singles": sync.singles,
            "stale": c.stale,
            "inferences": c.inferences,
            "degraded": c.degraded,
            "nonfinite": c.nonfinite,
            "silent": sorted(sync.silent),
            "unpaired_offset_s": sync.unpaired,
            "latency_ms": 1000 * c.latency_s / c.latency_n if c.latency_n else None,
        }

    def stats(self) -> dict[str, Any]:
        """Every counter, JSON-ready, device-wide (one station: its own keys, as before stations) and per station
        (`stations`): for the run summary and the run's row in the alert store. Other threads read
        `snapshot.stats`."""
        c = self.counters
        per = {station.id: self.station_stats(station) for station in self.stations}
        one = len(per) == 1
        total: dict[str, Any] = {
            key: sum(s[key] for s in per.values())
            for key in ("pairs", "singles", "stale", "inferences", "degraded", "nonfinite")
        }
        n = max(c.inferences, 1)
        return {
            "elapsed_s": time.monotonic() - self.started,
            "mode": "live" if self.live else "lossless",
            **total,
            "cameras": {_named(sid, cam, one): v for sid, s in per.items() for cam, v in s["cameras"].items()},
            "silent": [_named(sid, cam, one) for sid, s in per.items() for cam in s["silent"]],
            "unpaired_offset_s": next(iter(per.values()))["unpaired_offset_s"] if one else None,
            "prepare_ms": 1000 * c.prepare_s / n,
            "infer_ms": 1000 * c.infer_s / n,
            "alerts_ms": 1000 * c.alerts_s / n,
            "latency_ms": 1000 * c.latency_s / c.latency_n if c.latency_n else None,
            "batch": self.batch,
            "calls": c.calls,
            "padded": c.padded,
            "stations": per,
            "sinks": asdict(self.alerts.stats()),
        }


def _named(station: str, camera: str, only_station: bool) -> str:
    """A camera's key in device-wide stats: its gas on a one-station device (as before stations), else
    `station/gas`."""
    return camera if only_station else f"{station}/{camera}"
