"""A short tick on a static batch-N model: pad it (what `fume-edge run` does) or run a smaller batch?

Times, model only on ONNX Runtime, one call of: the batch-1 export with one pair; the batch-N export with one pair
and N-1 padded rows; the batch-N export full. Usage:
    python benchmarks/batch_pad.py CHECKPOINT.pt --batch 3 [--iterations 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from fume_edge.deploy.onnx.onnx_export import export_onnx
from fume_edge.runtime.onnx_backend import open_session, run_session


def _median_ms(session: object, rows: int, size: tuple[int, int], iterations: int) -> float:
    width, height = size
    frame = np.random.default_rng(0).random((rows, 1, height, width), dtype=np.float32)
    mask = np.ones((rows, 2), np.float32)
    run_session(session, frame, frame, mask)  # warm up
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        run_session(session, frame, frame, mask)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = export_onnx(args.checkpoint, Path(tmp) / "b1.onnx").path
        many = export_onnx(args.checkpoint, Path(tmp) / f"b{args.batch}.onnx", batch=args.batch).path
        size = (640, 480)
        b1 = _median_ms(open_session(one, "cpu", args.threads), 1, size, args.iterations)
        bn = _median_ms(open_session(many, "cpu", args.threads), args.batch, size, args.iterations)
    print(f"batch-1 model, 1 pair:                {b1:7.2f} ms")
    print(
        f"batch-{args.batch} model, 1 pair + {args.batch - 1} padded rows: {bn:7.2f} ms (a padded call costs a "
        "full one)"
    )
    print(
        f"batch-{args.batch} model, {args.batch} pairs:              {bn:7.2f} ms = {bn / args.batch:.2f} ms per pair "
        f"({b1 * args.batch / bn:.2f}x the pairs per second of batch 1)"
    )
    print(f"short tick of 1 pair: pad {bn:.2f} ms vs run smaller {b1:.2f} ms")


if __name__ == "__main__":
    main()
