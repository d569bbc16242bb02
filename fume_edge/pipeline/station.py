"""One station in the loop: a camera pair's capture streams, rings, pairing and health, and its own counters.

The loop's unit is a station. Each owns everything that can go wrong with its cameras (a dead camera, garbage
frames, a clock offset, a source that blocks), so none of it reaches another station: its capture threads fill
its own `FrameHub`, its own `Synchronizer` pairs them and decides its camera health. The loop polls every station
(never waiting on one), takes the decided items in time order, and batches the stations' ready pairs into one
model call; `Station` itself never calls the model or the alert service.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np

from fume_edge.pipeline.capture import ENDED, CameraStream, FrameHub
from fume_edge.pipeline.prepare import ModelInputs
from fume_edge.pipeline.sync import Health, Pair, Synchronizer, Unpaired
from fume_edge.runtime.base import Prediction

Item = Pair | Health | Unpaired


@dataclass
class StationCounters:
    """What the loop did with one station's pairs (its streams and synchronizer keep their own counts)."""

    inferences: int = 0
    degraded: int = 0  # inferences on one camera
    stale: int = 0  # ready pairs skipped for a newer one (live mode)
    nonfinite: int = 0  # predictions with NaN/inf pH dropped before the alert policy
    latency_s: float = 0.0  # summed capture-to-result time (live mode)
    latency_n: int = 0


class Station:
    """A camera pair's state in the loop; `poll` takes what its cameras delivered without waiting, `next_item` and
    `pop` hand out its decided items in time order."""

    def __init__(
        self,
        station_id: str,
        streams: dict[str, CameraStream],
        hub: FrameHub,
        inputs: ModelInputs,
        *,
        tolerance_s: float,
        silent_after_s: float,
        on_result: Callable[[Pair, Prediction], None] | None = None,
    ) -> None:
        self.id, self.streams, self.hub, self.inputs = station_id, streams, hub, inputs
        self.cameras = tuple(streams)
        self.live = not hub.lossless
        self.tolerance_s, self.silent_after_s = tolerance_s, silent_after_s
        self.counters = StationCounters()
        self.sync = Synchronizer(self.cameras, tolerance_s, silent_after_s, start_t=time.monotonic())
        self.latest: Prediction | None = None
        self.on_result = on_result  # this station's results only (views, the page)
        self.frames: dict[str, np.ndarray | None] = dict.fromkeys(self.cameras)  # newest inferred frame per camera
        self.ended = False  # every source ended and every frame was decided
        self._items: deque[Item] = deque()  # decided, not yet handled, in time order
        self._pairs = 0  # of those, pairs
        self._lowest_offset = min(0.0, *(stream.time_offset_s for stream in streams.values()))

    def start(self, start_t: float) -> None:
        self.sync = Synchronizer(self.cameras, self.tolerance_s, self.silent_after_s, start_t=start_t)
        for stream in self.streams.values():
            stream.start(start_t)

    def stop(self) -> None:
        for stream in self.streams.values():
            stream.stop()

    def poll(self) -> None:
        """Queue what the synchronizer decided after the frames delivered since the last poll (never waits).
        Live: only the newest ready pair is kept (older ones are counted stale). Lossless: frames are taken in time
        order until one pair is ready, so capture waits for the loop instead of dropping."""
        if self.ended:
            return
        if self.live:
            if self.hub.all_ended:
                self._queue(self.sync.finish())
                self.ended = True
                return
            items: list[Item] = []
            for camera, frame in self.hub.drain(0.0):
                items += self.sync.push(camera, frame)
            # The hub stamps live frames under the lock it drained under, so every frame stamped before
            # `drained_at` was taken; a camera with a negative time offset stamps that much earlier.
            self._queue(items + self.sync.advance(self.hub.drained_at + self._lowest_offset))
            return
        while not self._pairs:
            got = self.hub.next_in_order(0.0)
            if got is ENDED:
                self._queue(self.sync.finish())
                self.ended = True
                return
            if got is None:
                return
            camera, frame = got  # type: ignore[misc]
            # Frames come in time order across cameras: every earlier frame is in, so the clock moves first.
            self._queue(self.sync.advance(frame.t) + self.sync.push(camera, frame))

    def leftovers(self) -> None:
        """At a stop: queue the frames captured before it, decided as if no more frames will come."""
        items: list[Item] = []
        for camera, frame in self.hub.drain(0.0):
            items += self.sync.push(camera, frame)
        self._queue(items + self.sync.finish())
        self.ended = True

    def _queue(self, items: list[Item]) -> None:
        if not items:
            return
        self._items.extend(items)
        self._pairs += sum(isinstance(item, Pair) for item in items)
        if self.live and self._pairs > 1:  # results stay current: only the newest pair is inferred
            newest = max(i for i, item in enumerate(self._items) if isinstance(item, Pair))
            kept = deque(item for i, item in enumerate(self._items) if not isinstance(item, Pair) or i == newest)
            self.counters.stale += self._pairs - 1
            self._items, self._pairs = kept, 1

    def next_item(self) -> Item | None:
        """The oldest decided item; it stays queued until `pop` (a pair that misses a full batch waits its turn)."""
        return self._items[0] if self._items else None

    def pop(self) -> Item:
        item = self._items.popleft()
        self._pairs -= isinstance(item, Pair)
        return item

    @property
    def idle(self) -> bool:
        """Ended and nothing left to hand out."""
        return self.ended and not self._items
