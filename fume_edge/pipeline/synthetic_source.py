"""`--co2 synthetic` / `--ch4 synthetic`: a camera without hardware, rendered live by the synthetic OGI generator.

Both cameras render the same scene (same seed) at the same times, each its own gas, while the pH follows the
`sources.synthetic.segments` scenario in a loop, so a demo run shows risk alerts start and end. The optional
`outage` silences one camera for a while in every cycle: the pipeline goes to degraded mode and back, and the
`camera_degraded` alert starts and ends. With several synthetic stations, station k (its place in run.yaml) renders
scene seed + k and starts k × 0.618 of a cycle into the scenario (the golden ratio spreads any number of stations),
so the stations look different and their alerts come at different times; the first is the one-station demo.
Frames carry media time (frame index / fps); the capture thread paces them in real time or hands them on as fast
as inference takes them.
"""

from __future__ import annotations

import numpy as np

from fume_edge.data.config import Segment
from fume_edge.data.synthetic import SyntheticScene
from fume_edge.labels import GASES, INPUT_HEIGHT, INPUT_WIDTH
from fume_edge.pipeline.config import CameraConfig, SyntheticSourceConfig

GOLDEN_FRACTION = 0.6180339887498949  # (sqrt(5) - 1) / 2: k times it, mod 1, spreads k = 0, 1, 2, ... evenly


def scenario_ph(segments: tuple[Segment, ...], t: float) -> float:
    """The pH at time `t` of a scenario that repeats its segments forever."""
    t %= sum(s.seconds for s in segments)
    for segment in segments:
        if t < segment.seconds:
            return segment.ph
        t -= segment.seconds
    return segments[-1].ph


class SyntheticSource:
    """One synthetic camera (a `FrameReader`)."""

    live = False
    fps: float | None

    def __init__(
        self,
        name: str,
        gas: str,
        config: SyntheticSourceConfig,
        camera: CameraConfig,
        loop: bool = True,
        variant: int = 0,
    ) -> None:
        self.name, self.gas, self.config, self.loop = name, gas, config, loop
        self.fps = self._rate = config.fps
        self.scene = SyntheticScene(config.seed + variant, camera.width or INPUT_WIDTH, camera.height or INPUT_HEIGHT)
        self._cycle_s = sum(s.seconds for s in config.segments)
        self._phase_s = (variant * GOLDEN_FRACTION) % 1.0 * self._cycle_s  # where in the scenario it starts
        self._gas_index = GASES.index(gas)
        self._index = 0

    def _silent(self, t: float) -> bool:
        outage = self.config.outage
        if outage is None or outage.gas != self.gas:
            return False
        return outage.start_s <= (t + self._phase_s) % self._cycle_s < outage.start_s + outage.seconds

    def read(self) -> tuple[np.ndarray, float] | None:
        while True:
            t = self._index / self._rate
            if not self.loop and t >= self._cycle_s:
                return None
            self._index += 1
            if not self._silent(t):
                break
        amount = self.scene.amounts(scenario_ph(self.config.segments, t + self._phase_s))[self._gas_index]
        frame, _ = self.scene.render(self.gas, amount, t)
        return frame, t

    def close(self) -> None:
        pass
