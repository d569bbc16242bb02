"""Model-only latency per backend, batch 1, at the model's input size, with pre- and postprocessing timed apart.

Each backend becomes a `Runner`: `pre` (camera frames → model inputs, the loop's own `ModelInputs`), `model` (the
backend's model call on those inputs) and `post` (raw outputs → `Prediction`, with its gas areas). Backends take
turns in blocks of calls (`measure`): load from other processes hits all of them alike, so ratios between rows
come from one run. Blocks, not single calls, because ONNX Runtime's and torch's idle thread pools spin for a while
after a call and would slow the next backend's call on a small CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fume_edge.runtime.base import Prediction


@dataclass
class Runner:
    """One backend ready to run: three timed phases and what to close afterwards."""

    name: str
    precision: str
    device: str
    note: str
    pre: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]]
    model: Callable[[tuple[np.ndarray, np.ndarray, np.ndarray]], Any]
    post: Callable[[Any], Prediction]
    close: Callable[[], None] = lambda: None
    model_file: Path | None = None  # what the end-to-end loop loads for this row (None: it cannot)
    extra_timings: Callable[[], dict[str, float]] | None = None  # e.g. GPU compute and copies on TensorRT


@dataclass
class Samples:
    """Every timed call of one runner, in milliseconds, and the process CPU time its model calls took."""

    pre_ms: list[float] = field(default_factory=list)
    model_ms: list[float] = field(default_factory=list)
    post_ms: list[float] = field(default_factory=list)
    model_cpu_ms: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)


def latency_stats(values_ms: list[float]) -> dict[str, float]:
    """mean / p50 / p90 / p99 / max in ms and the FPS of the median call."""
    ms = np.asarray(values_ms, dtype=np.float64)
    p50 = float(np.percentile(ms, 50))
    return {
        "mean_ms": round(float(ms.mean()), 3),
        "p50_ms": round(p50, 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
        "fps": round(1000.0 / p50, 2) if p50 > 0 else math.inf,
    }


def _call(runner: Runner, samples: Samples | None) -> None:
    t0 = time.perf_counter()
    inputs = runner.pre()
    t1, c1 = time.perf_counter(), time.process_time()
    raw = runner.model(inputs)
    t2, c2 = time.perf_counter(), time.process_time()
    runner.post(raw)
    t3 = time.perf_counter()
    if samples is None:
        return
    samples.pre_ms.append(1000 * (t1 - t0))
    samples.model_ms.append(1000 * (t2 - t1))
    samples.post_ms.append(1000 * (t3 - t2))
    samples.model_cpu_ms.append(1000 * (c2 - c1))
    for key, value in (runner.extra_timings() if runner.extra_timings else {}).items():
        samples.extra.setdefault(key, []).append(value)


def block_size(iterations: int) -> int:
    """Timed calls per block: about five rounds over the backends, at least one call, at most 20."""
    return max(1, min(20, math.ceil(iterations / 5)))


def measure(
    runners: list[Runner], iterations: int, warmup: int, tick: Callable[[str], None] | None = None
) -> dict[str, Samples]:
    """`warmup` untimed calls per runner, then `iterations` timed ones each, in alternating blocks.

    Before every later block each runner gets one more untimed call, so thread pools that went idle while
    another backend ran are awake again when timing starts. `tick(name)` is called after every timed call.
    """
    samples = {r.name: Samples() for r in runners}
    for runner in runners:
        for _ in range(warmup):
            _call(runner, None)
    block = block_size(iterations)
    done = 0
    while done < iterations:
        count = min(block, iterations - done)
        for runner in runners:
            if done:
                _call(runner, None)
            for _ in range(count):
                _call(runner, samples[runner.name])
                if tick:
                    tick(runner.name)
        done += count
    return samples


def summarize(samples: Samples) -> dict[str, Any]:
    """Per-phase statistics and every sample, JSON-ready."""
    total = [a + b + c for a, b, c in zip(samples.pre_ms, samples.model_ms, samples.post_ms, strict=True)]
    return {
        "model": latency_stats(samples.model_ms),
        "pre": latency_stats(samples.pre_ms),
        "post": latency_stats(samples.post_ms),
        "pre_model_post": latency_stats(total),
        "model_cpu_ms_per_call": round(float(np.median(samples.model_cpu_ms)), 3),
        "extra": {k: latency_stats(v) for k, v in samples.extra.items()},
        "samples_ms": {
            "pre": [round(v, 4) for v in samples.pre_ms],
            "model": [round(v, 4) for v in samples.model_ms],
            "post": [round(v, 4) for v in samples.post_ms],
            **{k: [round(x, 4) for x in v] for k, v in samples.extra.items()},
        },
    }
