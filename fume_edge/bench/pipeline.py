"""End to end: the real capture loop (capture threads → pairing → prepare → infer → alert policy → SQLite sink
thread) at unlimited rate, on frames already in memory, so the figure is the pipeline's and not a renderer's.

Both cameras play pre-rendered synthetic frames (a short scene cycled) through `FrameReader`s that hand out the
stored arrays, into a lossless `FrameHub`: every pair is inferred, exactly as `fume-edge run --pacing fast` does
with recorded sources. The loop, the alert service and its SQLite store are `fume_edge.pipeline`'s and
`fume_edge.alerts`' own; only the sources differ.
"""

from __future__ import annotations

import functools
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fume_edge.alerts.service import AlertService
from fume_edge.labels import GASES
from fume_edge.pipeline.capture import CameraStream, FrameHub
from fume_edge.config import Override
from fume_edge.pipeline.config import load_run_config
from fume_edge.pipeline.loop import Pipeline
from fume_edge.pipeline.prepare import ModelInputs
from fume_edge.pipeline.sync import Pair
from fume_edge.runtime.base import Prediction, load_backend

FPS = 30.0  # media frame rate of the stored frames (pairing tolerance follows it); playback is unlimited


class MemoryReader:
    """A recorded camera (`FrameReader`) that hands out stored frames in a cycle, `count` in all."""

    live = False
    fps: float | None = FPS

    def __init__(self, name: str, frames: list[np.ndarray], count: int) -> None:
        self.name, self.frames, self.count = name, frames, count
        self.index = 0

    def read(self) -> tuple[np.ndarray, float] | None:
        if self.index >= self.count:
            return None
        frame = self.frames[self.index % len(self.frames)]
        t = self.index / FPS
        self.index += 1
        return frame, t

    def close(self) -> None:
        pass


def render_frames(size: tuple[int, int], count: int = 12, seed: int = 7) -> dict[str, list[np.ndarray]]:
    """`count` synthetic camera frames per gas at (width, height), a pH scene sweeping through the classes."""
    from fume_edge.data.synthetic import SyntheticScene

    scene = SyntheticScene(seed, *size)
    frames: dict[str, list[np.ndarray]] = {gas: [] for gas in GASES}
    for i, ph in enumerate(np.linspace(5.4, 6.6, count)):
        pair = scene.render_pair(ph=float(ph), t=i / FPS)
        frames["co2"].append(pair.co2)
        frames["ch4"].append(pair.ch4)
    return frames


def pipeline_thread_cpu(last: dict[int, float]) -> float:
    """CPU seconds of the pipeline's own Python threads (capture, sinks); `last` keeps each thread's latest reading,
    so a thread that has ended still counts. ONNX Runtime's and torch's pool threads are not Python threads."""
    for thread in threading.enumerate():
        if thread.name.startswith("fume-edge-") and thread.ident is not None:
            try:
                last[thread.ident] = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except (OSError, ProcessLookupError):
                pass  # ended between listing and reading: its last reading stands
    return sum(last.values())


@dataclass
class PipelineResult:
    fps: float
    cpu_ms_per_frame: float  # process CPU time per inferred pair, every thread of the pipeline
    own_ms_per_frame: float  # the pipeline's own work: capture and sink threads' CPU, loop prepare + alerts
    frames: int  # timed inferences
    stage_ms: dict[str, float]  # the loop's own mean prepare / infer / alerts times
    pairs: int
    singles: int


def run_pipeline(model: Path, frames: dict[str, list[np.ndarray]], count: int, warmup: int, *,
                 device: str = "auto", threads: int | None = None) -> PipelineResult:
    """Run the loop over `warmup + count` stored pairs; FPS and CPU time per frame over the last `count`."""
    stamps: list[tuple[float, float, float]] = []
    threads: dict[int, float] = {}

    def on_result(pair: Pair, prediction: Prediction) -> None:
        stamps.append((time.perf_counter(), time.process_time(), pipeline_thread_cpu(threads)))

    total = warmup + count
    with tempfile.TemporaryDirectory(prefix="fume-edge-bench-pipeline-") as tmp:
        database = Override("sinks.sqlite.path", str(Path(tmp) / "alerts.db"), "the benchmark's database")
        config, merged = load_run_config(None, [database], synthetic=True)
        with load_backend(model, device=device, threads=threads) as backend:
            hub = FrameHub(GASES, config.sources.ring_size, lossless=True)
            streams = {}
            for gas in GASES:
                reader = MemoryReader(f"memory:{gas}", frames[gas], total)
                streams[gas] = CameraStream(gas, reader, reopen=functools.partial(MemoryReader, reader.name,
                                                                                   frames[gas], 0),
                                            hub=hub, paced=False, time_offset_s=0.0,
                                            reconnect_s=(config.sources.reconnect_min_s,
                                                         config.sources.reconnect_max_s))
            inputs = ModelInputs(GASES, dict.fromkeys(GASES, backend.contract.preprocessing))
            service = AlertService(config.alerts, config.sinks, device_id="bench", model_sha=None,
                                   run_config={"benchmark": "pipeline", **merged})
            pipeline = Pipeline(streams, hub, backend, service, inputs, tolerance_s=config.sync.tolerance((FPS, FPS)),
                                silent_after_s=config.sync.silent_after_s, tick_s=config.pipeline.tick_s,
                                stats_interval_s=config.pipeline.stats_interval_s, on_result=on_result)
            service.start()
            reason = "error"
            try:
                reason = pipeline.run(lambda: False, max_frames=total)
            finally:
                service.close(pipeline.stats(), reason)
            stats = pipeline.stats()
    if len(stamps) < warmup + 2:
        from fume_edge.errors import FumeEdgeError

        raise FumeEdgeError(f"{model}: the pipeline inferred only {len(stamps)} pairs of {total}; "
                            "run `fume-edge run --co2 synthetic --ch4 synthetic` to see why")
    (wall0, cpu0, own0), (wall1, cpu1, own1) = stamps[warmup], stamps[-1]
    timed = len(stamps) - 1 - warmup
    loop_ms = stats["prepare_ms"] + stats["alerts_ms"]
    return PipelineResult(fps=timed / (wall1 - wall0), cpu_ms_per_frame=1000 * (cpu1 - cpu0) / timed,
                          own_ms_per_frame=1000 * (own1 - own0) / timed + loop_ms, frames=timed,
                          stage_ms={k: round(stats[f"{k}_ms"], 3) for k in ("prepare", "infer", "alerts")},
                          pairs=stats["pairs"], singles=stats["singles"])
