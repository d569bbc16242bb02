"""The inference loop: paired frames → preprocess → backend → alerts, overlapping with capture and sinks.

Stages and their threads: each camera captures in its own thread into a bounded ring (`capture.py`); this loop
(the caller's thread) takes frames from the rings, pairs them (`sync.py`), prepares the inputs, runs the backend and
feeds the alert policy; the alert service writes events from its own sink thread, so a slow disk or broker never
stalls inference.

Two modes, chosen by the sources:
- live (a camera, a stream, or recorded sources paced in real time): the rings keep only the newest frames and,
  when several pairs are ready at once, only the newest is inferred (the others are counted as `stale`): results
  stay current however slow the model is;
- lossless (every source recorded and played as fast as possible): frames are taken in time order across cameras
  and every pair is inferred; capture waits for the loop instead of dropping. This is also what the benchmark runs.
Every drop is counted: ring overwrites, frames without a partner, stale pairs, garbage frames (NaN/inf included),
predictions with non-finite pH (never fed to the alert policy), sink queue drops.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from fume_edge.alerts.event import AlertEvent
from fume_edge.alerts.service import AlertService
from fume_edge.pipeline.capture import ENDED, CameraStream, FrameHub
from fume_edge.pipeline.prepare import ModelInputs
from fume_edge.pipeline.sync import Health, Pair, Synchronizer, Unpaired
from fume_edge.runtime.base import Backend, Prediction

ResultHook = Callable[[Pair, Prediction], None]
EventsHook = Callable[[Sequence[AlertEvent]], None]


@dataclass
class LoopCounters:
    """What the loop itself did (the capture threads, the synchronizer and the sinks keep their own counts)."""

    inferences: int = 0
    degraded: int = 0  # inferences on one camera
    stale: int = 0  # ready pairs skipped for a newer one (live mode)
    nonfinite: int = 0  # predictions with NaN/inf pH dropped before the alert policy
    prepare_s: float = 0.0  # summed stage times, for means over any interval
    infer_s: float = 0.0
    alerts_s: float = 0.0
    latency_s: float = 0.0  # summed capture-to-result time (live mode)
    latency_n: int = 0


class Pipeline:
    """Runs the loop over started-by-it camera streams until stopped, out of frames, or out of time/frames."""

    def __init__(self, streams: dict[str, CameraStream], hub: FrameHub, backend: Backend, alerts: AlertService,
                 inputs: ModelInputs, *, tolerance_s: float, silent_after_s: float, tick_s: float,
                 stats_interval_s: float, on_result: ResultHook | None = None,
                 on_events: EventsHook | None = None) -> None:
        self.streams, self.hub, self.backend, self.alerts, self.inputs = streams, hub, backend, alerts, inputs
        self.cameras = tuple(streams)
        self.live = not hub.lossless
        self.tolerance_s, self.silent_after_s = tolerance_s, silent_after_s
        self.tick_s, self.stats_interval_s = tick_s, stats_interval_s
        self.on_result, self.on_events = on_result, on_events
        self.on_tick: Callable[[], None] | None = None  # called every loop pass (the systemd watchdog)
        self.counters = LoopCounters()
        self.sync = Synchronizer(self.cameras, tolerance_s, silent_after_s, start_t=time.monotonic())
        self.latest: Prediction | None = None
        self.started = time.monotonic()
        self._frames: dict[str, np.ndarray | None] = dict.fromkeys(self.cameras)  # newest inferred frame per camera
        self._lowest_offset = min(0.0, *(stream.time_offset_s for stream in streams.values()))

    def run(self, should_stop: Callable[[], bool], max_frames: int | None = None,
            duration_s: float | None = None) -> str:
        """Run until a stop condition; returns why: `interrupted` (should_stop), `completed` (frames or time
        limit reached, or every source ended). Frames captured before an interruption are still processed."""
        self.started = time.monotonic()
        self.sync = Synchronizer(self.cameras, self.tolerance_s, self.silent_after_s, start_t=self.started)
        deadline = self.started + duration_s if duration_s is not None else float("inf")
        next_stats = self.started + self.stats_interval_s
        for stream in self.streams.values():
            stream.start(self.started)
        reason = "completed"
        try:
            while True:
                if self.on_tick is not None:
                    self.on_tick()
                if should_stop():
                    reason = "interrupted"
                    break
                if (max_frames is not None and self.counters.inferences >= max_frames) or time.monotonic() >= deadline:
                    break
                items = self._next_items()
                if items is None:
                    self._handle(self.sync.finish(), max_frames)
                    break
                self._handle(items, max_frames)
                if time.monotonic() >= next_stats:
                    self.alerts.record_stats(self.stats())
                    next_stats = time.monotonic() + self.stats_interval_s
        finally:
            for stream in self.streams.values():
                stream.stop()
        if reason == "interrupted":
            self._handle(self._leftovers(), max_frames)
        return reason

    def _next_items(self) -> list[Pair | Health | Unpaired] | None:
        """What the synchronizer decided after the next frames; None once every source has ended."""
        if self.live:
            if self.hub.all_ended:
                return None
            items: list[Pair | Health | Unpaired] = []
            for camera, frame in self.hub.drain(self.tick_s):
                items += self.sync.push(camera, frame)
            # The hub stamps live frames under the lock it drained under, so every frame stamped before
            # `drained_at` was taken; a camera with a negative time offset stamps that much earlier.
            return items + self.sync.advance(self.hub.drained_at + self._lowest_offset)
        item = self.hub.next_in_order(self.tick_s)
        if item is ENDED:
            return None
        if item is None:
            return []
        camera, frame = item  # type: ignore[misc]
        # Frames come in time order across cameras: every earlier frame is in, so the clock moves first.
        return self.sync.advance(frame.t) + self.sync.push(camera, frame)

    def _leftovers(self) -> list[Pair | Health | Unpaired]:
        """Frames captured before the stop, decided as if no more frames will come."""
        items: list[Pair | Health | Unpaired] = []
        for camera, frame in self.hub.drain(0.0):
            items += self.sync.push(camera, frame)
        return items + self.sync.finish()

    def _handle(self, items: list[Pair | Health | Unpaired], max_frames: int | None) -> None:
        newest = max((i for i, item in enumerate(items) if isinstance(item, Pair)), default=-1)
        for i, item in enumerate(items):
            if isinstance(item, Health):
                self._health(item)
            elif isinstance(item, Unpaired):
                self._emitted(self.alerts.on_unpaired(item.t, self._wall(item.t), item.offset_s))
            elif self.live and i != newest:
                self.counters.stale += 1
            elif max_frames is None or self.counters.inferences < max_frames:
                self._infer(item)

    def _health(self, change: Health) -> None:
        frames = tuple(None if cam in change.silent else self._frames[cam] for cam in self.cameras)
        self._emitted(self.alerts.on_camera_health(change.t, self._wall(change.t), change.silent, *frames))

    def _emitted(self, events: Sequence[AlertEvent]) -> None:
        if events and self.on_events is not None:
            self.on_events(events)

    def _infer(self, pair: Pair) -> None:
        images = tuple(None if frame is None else frame.image for frame in pair.frames)
        c = self.counters
        t0 = time.perf_counter()
        first, second, mask = self.inputs.prepare(images)
        t1 = time.perf_counter()
        prediction = self.backend.infer(first, second, mask)
        t2 = time.perf_counter()
        c.inferences += 1
        if not prediction.finite:  # one NaN must never reach the policy: dropped, counted, shown
            c.nonfinite += 1
            return
        events = self.alerts.on_prediction(pair.t, self._wall(pair.t), prediction, *images)
        t3 = time.perf_counter()
        c.degraded += images[0] is None or images[1] is None
        c.prepare_s += t1 - t0
        c.infer_s += t2 - t1
        c.alerts_s += t3 - t2
        if self.live:
            c.latency_s += time.monotonic() - pair.t
            c.latency_n += 1
        for camera, image in zip(self.cameras, images):
            if image is not None:
                self._frames[camera] = image
        self.latest = prediction
        self._emitted(events)
        if self.on_result is not None:
            self.on_result(pair, prediction)

    @staticmethod
    def _wall(t: float) -> float:
        """Wall-clock time of frame time `t`: when it was captured (live), or now for frames played ahead of it."""
        return time.time() - max(0.0, time.monotonic() - t)

    def stats(self) -> dict[str, Any]:
        """Every counter, JSON-ready: for the live view, the run summary and the run's row in the alert store."""
        c, sync = self.counters, self.sync
        cameras = {cam: {"state": "silent" if cam in sync.silent and stream.state == "live" else stream.state,
                         "frames": stream.frames, "garbage": stream.garbage, "last_garbage": stream.last_problem,
                         "reconnects": stream.reconnects, "overwritten": self.hub.overwritten[cam],
                         "unmatched": sync.unmatched[cam], "out_of_order": sync.out_of_order[cam]}
                   for cam, stream in self.streams.items()}
        n = max(c.inferences, 1)
        return {
            "elapsed_s": time.monotonic() - self.started, "mode": "live" if self.live else "lossless",
            "cameras": cameras, "pairs": sync.pairs, "singles": sync.singles, "stale": c.stale,
            "inferences": c.inferences, "degraded": c.degraded, "nonfinite": c.nonfinite,
            "silent": sorted(sync.silent), "unpaired_offset_s": sync.unpaired,
            "prepare_ms": 1000 * c.prepare_s / n, "infer_ms": 1000 * c.infer_s / n, "alerts_ms": 1000 * c.alerts_s / n,
            "latency_ms": 1000 * c.latency_s / c.latency_n if c.latency_n else None,
            "sinks": asdict(self.alerts.stats()),
        }
