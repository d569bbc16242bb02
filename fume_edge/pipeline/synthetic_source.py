"""`--co2 synthetic` / `--ch4 synthetic`: a camera without hardware, rendered live by the synthetic OGI generator.

Both cameras render the same scene (same seed) at the same times, each its own gas, while the pH follows the
`sources.synthetic.segments` scenario in a loop, so a demo run shows risk alerts start and end. The optional
`outage` silences one camera for a while in every cycle: the pipeline goes to degraded mode and back, and the
`camera_degraded` alert starts and ends. Frames carry media time (frame index / fps); the capture thread paces
them in real time or hands them on as fast as inference takes them.
"""

from __future__ import annotations

import numpy as np

from fume_edge.data.config import Segment
from fume_edge.data.synthetic import SyntheticScene
from fume_edge.labels import GASES, INPUT_HEIGHT, INPUT_WIDTH
from fume_edge.pipeline.config import CameraConfig, SyntheticSourceConfig


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
        self, name: str, gas: str, config: SyntheticSourceConfig, camera: CameraConfig, loop: bool = True
    ) -> None:
        self.name, self.gas, self.config, self.loop = name, gas, config, loop
        self.fps = self._rate = config.fps
        self.scene = SyntheticScene(config.seed, camera.width or INPUT_WIDTH, camera.height or INPUT_HEIGHT)
        self._cycle_s = sum(s.seconds for s in config.segments)
        self._gas_index = GASES.index(gas)
        self._index = 0

    def _silent(self, t: float) -> bool:
        outage = self.config.outage
        if outage is None or outage.gas != self.gas:
            return False
        return outage.start_s <= t % self._cycle_s < outage.start_s + outage.seconds

    def read(self) -> tuple[np.ndarray, float] | None:
        while True:
            t = self._index / self._rate
            if not self.loop and t >= self._cycle_s:
                return None
            self._index += 1
            if not self._silent(t):
                break
        amount = self.scene.amounts(scenario_ph(self.config.segments, t))[self._gas_index]
        frame, _ = self.scene.render(self.gas, amount, t)
        return frame, t

    def close(self) -> None:
        pass
