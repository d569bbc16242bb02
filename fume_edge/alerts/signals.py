"""Time-series primitives the alert policy is built from: smoothers and a hysteresis debounce.

All of them are driven by the caller's monotonic time, never by the sample count, because the frame rate is not
fixed: a camera drops out (degraded mode), frames are skipped under load, a video file plays as fast as possible.
A 5 s smoothing window must mean 5 s at 30 FPS and at 3 FPS alike. They hold no clock of their own, so tests
replay any timeline exactly.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

import numpy as np


class Smoother(Protocol):
    def update(self, t: float, x: np.ndarray) -> np.ndarray: ...


class EmaSmoother:
    """Exponential moving average with a time constant: a sample `dt` seconds after the last one gets weight
    `1 - exp(-dt / tau)`, so the result does not depend on the frame rate. `tau = 0` passes samples through."""

    def __init__(self, tau_s: float) -> None:
        self.tau_s = tau_s
        self._t: float | None = None
        self._value: np.ndarray | None = None

    def update(self, t: float, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._value is None or self._t is None or self.tau_s == 0:
            self._value = x.copy()
        else:
            dt = max(t - self._t, 0.0)
            alpha = 1.0 - math.exp(-dt / self.tau_s)
            self._value = self._value + alpha * (x - self._value)
        self._t = t
        return self._value.copy()


class WindowSmoother:
    """Plain mean of the samples of the last `window_s` seconds (the newest sample always counts)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, np.ndarray]] = deque()

    def update(self, t: float, x: np.ndarray) -> np.ndarray:
        self._samples.append((t, np.asarray(x, dtype=np.float64)))
        while self._samples[0][0] < t - self.window_s:
            self._samples.popleft()
        return np.asarray(np.mean([s for _, s in self._samples], axis=0), dtype=np.float64)


def make_smoother(method: str, seconds: float) -> Smoother:
    if method == "ema":
        return EmaSmoother(seconds)
    if method == "window":
        return WindowSmoother(seconds)
    raise ValueError(f"unknown smoothing method {method!r}")


class Debounce:
    """Hysteresis with minimum durations: turns on after the on-condition has held for `min_on_s`, off after the
    off-condition has held for `min_off_s`. The two conditions come from separate thresholds (on > off), so a
    value hovering at one threshold cannot make an alert flap; the durations reject single-frame spikes."""

    def __init__(self, min_on_s: float, min_off_s: float) -> None:
        self.min_on_s = min_on_s
        self.min_off_s = min_off_s
        self.active = False
        self._since: float | None = None  # when the condition that would flip the state began to hold

    def update(self, t: float, on_condition: bool, off_condition: bool, min_on_s: float | None = None) -> bool | None:
        """Feed one sample; returns True when the state turned on, False when it turned off, None otherwise.
        `min_on_s` replaces the on-duration for this sample (weaker evidence may need to hold longer)."""
        flipping = off_condition if self.active else on_condition
        if not flipping:
            self._since = None
            return None
        if self._since is None:
            self._since = t
        needed = self.min_off_s if self.active else (self.min_on_s if min_on_s is None else min_on_s)
        if t - self._since < needed:
            return None
        self.active = not self.active
        self._since = None
        return self.active
