"""Does a batch-N INT8 model make a pair cheaper on this CPU? Model only, ONNX Runtime's CPU provider.

Exports the checkpoint at batch 1 and at batch N, quantizes both for the CPU target as `fume-edge bench` does
(cached, synthetic calibration pairs unless --calib), and times one pair through the batch-1 model against N pairs
through the batch-N model, in alternating blocks so a change in machine load hits both alike. Usage:
    python benchmarks/int8_batch.py CHECKPOINT.pt --batch 3 [--blocks 8] [--calls 5] [--threads 2] [--calib DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from fume_edge.bench.backends import onnx_preprocessing
from fume_edge.bench.int8 import cache_dir, cpu_int8_model
from fume_edge.deploy.onnx.onnx_export import export_onnx
from fume_edge.hashing import sha256_file
from fume_edge.runtime.onnx_backend import open_session, run_session


def int8_at_batch(checkpoint: Path, batch: int, calib: Path | None) -> Path:
    """The checkpoint exported at `batch` (cached beside bench's exports) and quantized for the CPU."""
    fp32 = cache_dir() / "bench" / f"{sha256_file(checkpoint)[:16]}.b{batch}.onnx"
    if not fp32.is_file():
        fp32.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(checkpoint, fp32, batch=batch)
    return cpu_int8_model(fp32, onnx_preprocessing(fp32), calib)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--calls", type=int, default=5, help="timed calls per block")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--calib", type=Path, default=None, help="calibration folder (default: synthetic pairs)")
    args = parser.parse_args()
    paths = {rows: int8_at_batch(args.checkpoint, rows, args.calib) for rows in (1, args.batch)}
    sessions = {rows: open_session(path, device="cpu", threads=args.threads) for rows, path in paths.items()}
    width, height = onnx_preprocessing(paths[1]).input_size
    feeds = {
        rows: (
            np.random.default_rng(0).random((rows, 1, height, width), dtype=np.float32),
            np.ones((rows, 2), np.float32),
        )
        for rows in sessions
    }
    times: dict[int, list[float]] = {rows: [] for rows in sessions}
    for _ in range(args.blocks):
        for rows, session in sessions.items():
            frame, mask = feeds[rows]
            run_session(session, frame, frame, mask)  # untimed: the other model ran last
            for _ in range(args.calls):
                t0 = time.perf_counter()
                run_session(session, frame, frame, mask)
                times[rows].append(time.perf_counter() - t0)
    for rows, samples in times.items():
        ms = 1000 * statistics.median(samples)
        print(f"INT8 batch {rows}: {ms:.1f} ms a call, {ms / rows:.1f} ms a pair, {1000 * rows / ms:.1f} pairs/s")


if __name__ == "__main__":
    main()
