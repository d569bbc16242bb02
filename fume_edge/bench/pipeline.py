"""End to end: the real capture loop (capture threads → pairing → prepare → infer → alert policy → SQLite sink
thread) at unlimited rate, on frames already in memory, so the figure is the pipeline's and not a renderer's.

Every station's two cameras play pre-rendered synthetic frames (a short scene cycled) through `FrameReader`s that
hand out the stored arrays, into lossless `FrameHub`s: every pair is inferred, exactly as `fume-edge run --pacing
fast` does with recorded sources; with several stations, their ready pairs share one batched call per tick. The
loop, the alert service and its SQLite store are `fume_edge.pipeline`'s and `fume_edge.alerts`' own; only the
sources differ.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fume_edge.alerts.service import AlertService
from fume_edge.labels import GASES
from fume_edge.pipeline.capture import CameraStream, FrameHub
from fume_edge.config import Override
from fume_edge.pipeline.config import load_run_config
from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.config import RunConfig
from fume_edge.pipeline.loop import Pipeline
from fume_edge.pipeline.prepare import ModelInputs
from fume_edge.pipeline.station import Station
from fume_edge.pipeline.sync import Pair
from fume_edge.runtime.base import Backend, Prediction, load_backend

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
            with contextlib.suppress(OSError, ProcessLookupError):  # ended since listed: its last reading stands
                last[thread.ident] = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return sum(last.values())


@dataclass
class PipelineResult:
    fps: float  # all stations together
    cpu_ms_per_frame: float  # process CPU time per inferred pair, every thread of the pipeline
    own_ms_per_frame: float  # the pipeline's own work: capture and sink threads' CPU, loop prepare + alerts
    frames: int  # timed inferences
    stage_ms: dict[str, float]  # the loop's own mean prepare / infer / alerts times per pair
    pairs: int
    singles: int
    station_fps: dict[str, float]  # per station, over the same window
    latency_ms: dict[str, float]  # capture-to-result (source read to result), p50 and p99 over all stations
    calls: int  # backend calls
    padded: int  # batch rows run without a pair
    batch: int  # pairs per call


class _Timing:
    """Result times per station and when each frame left its source, read back per result."""

    def __init__(self) -> None:
        self.results: list[tuple[float, float, float, str]] = []  # (wall, process cpu, threads cpu, station)
        self.latencies: list[float] = []
        self.read_at: dict[tuple[str, str, int], float] = {}  # (station, gas, frame index) -> perf_counter
        self._threads: dict[int, float] = {}

    def hook(self, station: str) -> Callable[[Pair, Prediction], None]:
        def on_result(pair: Pair, prediction: Prediction) -> None:
            now = time.perf_counter()
            read = [
                self.read_at[(station, gas, f.index)]
                for gas, f in zip(GASES, pair.frames, strict=True)
                if f is not None
            ]
            self.latencies.append(now - max(read))
            self.results.append((now, time.process_time(), pipeline_thread_cpu(self._threads), station))

        return on_result


class _StampingReader(MemoryReader):
    """A `MemoryReader` that notes when it hands out each frame (the capture time of a bench frame)."""

    def __init__(
        self,
        name: str,
        frames: list[np.ndarray],
        count: int,
        stamps: dict[tuple[str, str, int], float],
        key: tuple[str, str],
    ) -> None:
        super().__init__(name, frames, count)
        self.stamps, self.key = stamps, key

    def read(self) -> tuple[np.ndarray, float] | None:
        index = self.index
        got = super().read()
        self.stamps[self.key + (index,)] = time.perf_counter()
        return got


def _station(
    station_id: str,
    frames: dict[str, list[np.ndarray]],
    total: int,
    timing: _Timing,
    config: RunConfig,
    backend: Backend,
    doorbell: threading.Event,
) -> Station:
    hub = FrameHub(GASES, config.sources.ring_size, lossless=True, doorbell=doorbell)
    streams = {}
    for gas in GASES:
        reader = _StampingReader(f"memory:{station_id}:{gas}", frames[gas], total, timing.read_at, (station_id, gas))
        streams[gas] = CameraStream(
            gas,
            reader,
            reopen=functools.partial(MemoryReader, reader.name, frames[gas], 0),
            hub=hub,
            paced=False,
            time_offset_s=0.0,
            reconnect_s=(config.sources.reconnect_min_s, config.sources.reconnect_max_s),
        )
    inputs = ModelInputs(GASES, dict.fromkeys(GASES, backend.contract.preprocessing))
    station = Station(
        station_id,
        streams,
        hub,
        inputs,
        tolerance_s=config.sync.tolerance((FPS, FPS)),
        silent_after_s=config.sync.silent_after_s,
        on_result=timing.hook(station_id),
    )
    return station


def run_pipeline(
    model: Path,
    frames: dict[str, list[np.ndarray]],
    count: int,
    warmup: int,
    *,
    device: str = "auto",
    threads: int | None = None,
    stations: int = 1,
) -> PipelineResult:
    """Run the loop over `warmup + count` stored pairs per station, `stations` stations batched into one call per
    tick. Figures over the window from the end of every station's warmup to the first station running out of
    frames, so every station competes for the model throughout."""
    timing = _Timing()
    total = warmup + count
    names = [f"station-{k + 1}" for k in range(stations)]
    with tempfile.TemporaryDirectory(prefix="fume-edge-bench-pipeline-") as tmp:
        database = Override("sinks.sqlite.path", str(Path(tmp) / "alerts.db"), "the benchmark's database")
        config, merged = load_run_config(None, [database], synthetic=True)
        with load_backend(model, device=device, threads=threads) as backend:
            doorbell = threading.Event()
            loop_stations = [_station(name, frames, total, timing, config, backend, doorbell) for name in names]
            service = AlertService(
                config.alerts,
                config.sinks,
                device_id="bench",
                model_sha=None,
                run_config={"benchmark": "pipeline", **merged},
                stations=dict.fromkeys(names, config.alerts),
            )
            pipeline = Pipeline(
                loop_stations,
                backend,
                service,
                tick_s=config.pipeline.tick_s,
                stats_interval_s=config.pipeline.stats_interval_s,
                doorbell=doorbell,
            )
            service.start()
            reason = "error"
            try:
                reason = pipeline.run(lambda: False)
            finally:
                service.close(pipeline.stats(), reason)
            stats = pipeline.stats()
    return _summarize(timing, names, warmup, stats, model)


def _summarize(timing: _Timing, names: list[str], warmup: int, stats: dict[str, Any], model: Path) -> PipelineResult:
    results = timing.results
    totals = {name: stats["stations"][name]["inferences"] for name in names}
    seen = dict.fromkeys(names, 0)
    start = end = None
    for i, (_, _, _, station) in enumerate(results):
        seen[station] += 1
        if start is None and min(seen.values()) > warmup:
            start = i  # every station past its warmup
        if seen[station] == totals[station]:
            end = i  # the first station out of frames: the others would run with less competition from here
            break
    if start is None or end is None or end - start < 2:
        raise FumeEdgeError(
            f"{model}: the pipeline inferred only {len(results)} pairs; "
            "run `fume-edge run --co2 synthetic --ch4 synthetic` to see why"
        )
    (wall0, cpu0, own0, _), (wall1, cpu1, own1, _) = results[start], results[end]
    window = results[start + 1 : end + 1]
    timed = len(window)
    per = {name: sum(1 for r in window if r[3] == name) / (wall1 - wall0) for name in names}
    loop_ms = stats["prepare_ms"] + stats["alerts_ms"]
    latencies = np.array(timing.latencies) * 1000
    return PipelineResult(
        fps=timed / (wall1 - wall0),
        cpu_ms_per_frame=1000 * (cpu1 - cpu0) / timed,
        own_ms_per_frame=1000 * (own1 - own0) / timed + loop_ms,
        frames=timed,
        stage_ms={k: round(stats[f"{k}_ms"], 3) for k in ("prepare", "infer", "alerts")},
        pairs=stats["pairs"],
        singles=stats["singles"],
        station_fps=per,
        latency_ms={"p50": float(np.percentile(latencies, 50)), "p99": float(np.percentile(latencies, 99))},
        calls=stats["calls"],
        padded=stats["padded"],
        batch=stats["batch"],
    )
