"""Process CPU per frame of ONNX Runtime with and without intra-op spinning, frames paced as a camera paces them.

ONNX Runtime's intra-op threads spin between calls; in a loop that waits for the next camera frame that spinning
costs CPU the device needs for capture, the web page and MQTT. This measures both settings the same way: one
inference, then `idle_s` of sleep (0: back to back, as the lossless loop runs), process CPU time over the frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fume_edge.runtime.onnx_backend import OnnxBackend, run_session

CAMERA_IDLE_S = 0.020  # the camera-paced case: 20 ms between the end of one inference and the next frame


@dataclass(frozen=True)
class PacedCpu:
    spinning: bool
    idle_ms: float
    latency_ms: float  # median inference time
    cpu_ms_per_frame: float  # process CPU time (every thread) per frame, idle time included


def paced_cpu(
    path: Path,
    spinning: bool,
    frames: int = 30,
    idle_s: float = CAMERA_IDLE_S,
    device: str = "cpu",
    threads: int | None = None,
) -> PacedCpu:
    """Run `frames` inferences `idle_s` apart (after 3 warm-up ones) and measure latency and process CPU."""
    with OnnxBackend(path, device=device, threads=threads, spinning=spinning) as backend:
        width, height = backend.input_size
        frame = np.full((1, 1, height, width), 0.5, np.float32)
        mask = np.ones((1, 2), np.float32)
        for _ in range(3):
            run_session(backend.session, frame, frame, mask)
        latencies = []
        cpu0 = time.process_time()
        for _ in range(frames):
            start = time.perf_counter()
            run_session(backend.session, frame, frame, mask)
            latencies.append(time.perf_counter() - start)
            time.sleep(idle_s)
        cpu = time.process_time() - cpu0
    return PacedCpu(spinning, 1000 * idle_s, 1000 * float(np.median(latencies)), 1000 * cpu / frames)


def spinning_comparison(
    path: Path, frames: int, device: str = "cpu", threads: int | None = None
) -> tuple[PacedCpu, PacedCpu]:
    """(spinning on, spinning off), camera-paced, measured the same way one after the other."""
    return paced_cpu(path, True, frames, device=device, threads=threads), paced_cpu(
        path, False, frames, device=device, threads=threads
    )


def comparison_line(on: PacedCpu, off: PacedCpu) -> str:
    """One line for the bench report."""
    return (
        f"ONNX Runtime, frames {on.idle_ms:.0f} ms apart: process CPU per frame {on.cpu_ms_per_frame:.1f} ms "
        f"with intra-op spinning ({on.latency_ms:.1f} ms latency), {off.cpu_ms_per_frame:.1f} ms without "
        f"({off.latency_ms:.1f} ms; fume-edge's setting)"
    )
