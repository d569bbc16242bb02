"""Pairing the two cameras' frames by timestamp, and camera health: a pure state machine, no threads, no clock.

The loop pushes each camera's frames (in that camera's time order) and advances the clock; the `Synchronizer`
returns what became decidable: `Pair`s (two frames, or one frame while the other camera is silent) and `Health`
changes, in time order. Tests drive it with bare timestamps.

Pairing rule (live, so it never waits for more than the tolerance): two frames pair when each is the other's
nearest frame of the other camera and they are at most `tolerance_s` apart. A frame's fate is decided as soon as no
frame still to come could change it: every camera promises, through its watermark, that it will deliver no frame
older than that (a camera's own newest frame, or the clock passed to `advance` once all frames stamped before it
have been pushed). Where each camera's frames are further apart than twice the tolerance (the default tolerance is
half a frame period), every frame has at most one candidate and this is the same as the nearest-first rule that
`fume-edge pair` uses offline. Frames left without a partner are counted per camera, never inferred alone while
both cameras deliver.

Health: a camera is silent when its newest frame is older than `silent_after_s` on the pipeline clock (the newest
time seen). While one camera is silent the other's frames go on alone (degraded mode, modality mask 0 for the
silent gas); when it delivers again it is healthy again at once. Both cameras delivering while no pair has formed
for longer than `silent_after_s` (clocks apart, a misreported frame rate) is `Unpaired`, with the measured offset
between the cameras' newest frames; the first pair (or a camera going silent) ends it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np


@dataclass(slots=True)
class Frame:
    """One captured frame: the image as the camera gave it and its time on the run's monotonic clock."""

    image: np.ndarray
    t: float
    index: int  # per-camera capture count (0-based), for traces and tests


@dataclass(slots=True)
class Pair:
    """What inference runs on: both gases, or one while the other camera is silent (its entry None)."""

    frames: tuple[Frame | None, ...]  # in the Synchronizer's camera order
    t: float  # the newest frame's time: when the pair was complete


@dataclass(slots=True)
class Unpaired:
    """Both cameras deliver but nothing pairs (`offset_s`: second camera's newest frame minus the first's), or
    that condition ended (`offset_s` None)."""

    t: float
    offset_s: float | None


@dataclass(slots=True)
class Health:
    """The set of silent cameras changed at time `t`."""

    t: float
    silent: frozenset[str]


class Synchronizer:
    """Streaming pairing and camera health for named cameras (two, in `cameras` order)."""

    def __init__(self, cameras: Sequence[str], tolerance_s: float, silent_after_s: float, start_t: float) -> None:
        if len(cameras) != 2 or cameras[0] == cameras[1]:
            raise ValueError(f"need two distinct cameras, got {cameras!r}")
        if tolerance_s < 0 or silent_after_s <= 0:
            raise ValueError("need tolerance_s >= 0 and silent_after_s > 0")
        self.cameras = tuple(cameras)
        self.tolerance_s = tolerance_s
        self.silent_after_s = silent_after_s
        self.now = start_t
        self.silent: frozenset[str] = frozenset()
        self.unpaired: float | None = None  # the measured offset while both cameras deliver and nothing pairs
        self._paired_t = start_t  # when the last pair formed
        self.pairs = 0  # pairs of two frames emitted
        self.singles = 0  # one-camera items emitted in degraded mode
        self.unmatched = dict.fromkeys(self.cameras, 0)  # frames that found no partner while both cameras delivered
        self.out_of_order = dict.fromkeys(self.cameras, 0)  # frames older than their camera's previous frame
        self._pending: dict[str, deque[Frame]] = {cam: deque() for cam in self.cameras}
        self._newest = dict.fromkeys(self.cameras, float("-inf"))  # newest frame time
        self._last = dict.fromkeys(self.cameras, start_t)  # the same for health: the start time until a first frame
        self._watermark = dict.fromkeys(self.cameras, start_t)
        self._decided = dict.fromkeys(self.cameras, float("-inf"))  # newest frame time taken out of `_pending`
        self._other = {self.cameras[0]: self.cameras[1], self.cameras[1]: self.cameras[0]}

    def push(self, camera: str, frame: Frame) -> list[Pair | Health | Unpaired]:
        """One frame of `camera`. Frames of one camera must come in time order; an older one is counted, dropped."""
        if frame.t < self._newest[camera]:
            self.out_of_order[camera] += 1
            return []
        self._pending[camera].append(frame)
        self._newest[camera] = frame.t
        self._last[camera] = max(self._last[camera], frame.t)
        self._watermark[camera] = max(self._watermark[camera], frame.t)
        self.now = max(self.now, frame.t)
        return self._step()

    def advance(self, now: float) -> list[Pair | Health | Unpaired]:
        """The clock reached `now` and every frame stamped before it has been pushed."""
        self.now = max(self.now, now)
        for camera in self.cameras:
            self._watermark[camera] = max(self._watermark[camera], self.now)
        return self._step()

    def finish(self) -> list[Pair | Health | Unpaired]:
        """No more frames will come: decide every pending frame."""
        for camera in self.cameras:
            self._watermark[camera] = float("inf")
        return self._step()

    @property
    def waiting(self) -> int:
        """Frames held until their partner can be decided."""
        return sum(len(q) for q in self._pending.values())

    def _step(self) -> list[Pair | Health | Unpaired]:
        out: list[Pair | Health | Unpaired] = []
        self._decide(out)
        silent = frozenset(cam for cam in self.cameras if self.now - self._last[cam] > self.silent_after_s)
        if silent != self.silent:
            self.silent = silent
            self._paired_t = self.now  # a camera that just came back gets the full time to pair
            out.append(Health(self.now, silent))
            self._decide(out)
        first, second = self.cameras
        stuck = (
            not self.silent
            and self.now - self._paired_t > self.silent_after_s
            and min(self._newest.values()) > self._paired_t
        )
        offset = self._newest[second] - self._newest[first] if stuck else None
        if (offset is None) != (self.unpaired is None):
            self.unpaired = offset
            out.append(Unpaired(self.now, offset))
        return out

    def _decide(self, out: list[Pair | Health | Unpaired]) -> None:
        """Emit every pending frame whose fate no future frame can change, earliest first. Frames are decided in
        time order, so for the earliest pending frame x every earlier frame of the other camera is decided and the
        newest of those (`_decided`) is the only one of them that can be x's nearest."""
        while True:
            heads = [(q[0].t, cam) for cam, q in self._pending.items() if q]
            if not heads:
                return
            _, cam = min(heads)
            other = self._other[cam]
            mine, theirs = self._pending[cam], self._pending[other]
            x = mine[0]
            if other in self.silent:
                self._emit(out, cam, None)
                continue
            before = x.t - self._decided[other]  # distance to the other camera's newest decided frame (inf: none)
            if not theirs:
                if self._watermark[other] < x.t + min(before, self.tolerance_s):
                    return  # a frame still to come may be x's nearest
                self._unmatched(cam)  # x's nearest is decided or too far: no partner
                continue
            y = theirs[0]
            if before <= y.t - x.t or y.t - x.t > self.tolerance_s:
                self._unmatched(cam)
                continue
            gap = y.t - x.t  # y is x's nearest; is x y's nearest?
            if len(mine) > 1:
                rival = abs(mine[1].t - y.t)
            elif self._watermark[cam] >= y.t + gap:
                rival = float("inf")
            else:
                return  # a frame of this camera still to come may be nearer to y
            if rival < gap:
                self._unmatched(cam)
            else:
                self._emit(out, cam, theirs.popleft())

    def _unmatched(self, camera: str) -> None:
        self._decided[camera] = self._pending[camera].popleft().t
        self.unmatched[camera] += 1

    def _emit(self, out: list[Pair | Health | Unpaired], camera: str, partner: Frame | None) -> None:
        frame = self._pending[camera].popleft()
        self._decided[camera] = frame.t
        if partner is not None:
            self._decided[self._other[camera]] = partner.t
            self._paired_t = max(self._paired_t, frame.t, partner.t)
        by_camera = {camera: frame, self._other[camera]: partner}
        out.append(
            Pair(tuple(by_camera[c] for c in self.cameras), frame.t if partner is None else max(frame.t, partner.t))
        )
        if partner is None:
            self.singles += 1
        else:
            self.pairs += 1
