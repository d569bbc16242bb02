"""A short tick on a batch-N model: pad it to N (a static export) or run only its pairs (`export --dynamic-batch`)?

Times, model only, one call of: the batch-1 export with 1 pair; the static batch-N export with 1 pair and N-1
padded rows; the dynamic batch-N export with 1 pair; the static export full (N pairs); the dynamic export full.
On ONNX Runtime (CPU), or with --tensorrt on FP16 engines built from the three exports (the dynamic one with its
profile 1/N/N; buffers on the GPU, uploads and downloads included, as `run` calls them), or with --int8 on each
export quantized for the CPU as `fume-edge bench` does (synthetic calibration pairs, cached). The cases take turns
call by call (a change in machine load hits all alike); medians. The dynamic export must not cost throughput at full
batch: the last line gives its ratio to the static one. Usage:
    python benchmarks/batch_pad.py CHECKPOINT.pt --batch 3 [--iterations 30] [--threads 2] [--size 640x480] [--int8]
    python benchmarks/batch_pad.py CHECKPOINT.pt --batch 3 --tensorrt     (on a GPU with TensorRT)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fume_edge.deploy.onnx.onnx_export import export_onnx
from fume_edge.runtime.onnx_backend import open_session, run_session

Call = Callable[[tuple[np.ndarray, ...]], object]


def _inputs(rows: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`rows` different pairs (a padded call repeats its one pair, as `runtime.base.padded` does)."""
    width, height = size
    frame = np.random.default_rng(rows).random((rows, 1, height, width), dtype=np.float32)
    return frame, frame[::-1].copy(), np.ones((rows, 2), np.float32)


def _medians_ms(cases: dict[str, tuple[Call, tuple[np.ndarray, ...]]], iterations: int) -> dict[str, float]:
    """Each case's median call time; the cases take turns, after one untimed warm-up call each."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for call, feeds in cases.values():
        call(feeds)
    for _ in range(iterations):
        for name, (call, feeds) in cases.items():
            t0 = time.perf_counter()
            call(feeds)
            times[name].append(time.perf_counter() - t0)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def _ort(path: Path, threads: int | None) -> Call:
    session = open_session(path, "cpu", threads)
    return lambda feeds: run_session(session, *feeds)


def _int8(path: Path) -> Path:
    """The export quantized for the CPU target as `bench`'s onnxruntime-int8 row does."""
    from fume_edge.bench.backends import onnx_preprocessing
    from fume_edge.bench.int8 import cpu_int8_model

    return cpu_int8_model(path, onnx_preprocessing(path), None)[0]


def _tensorrt(path: Path, folder: Path) -> Call:
    from fume_edge.deploy.tensorrt.tensorrt_build import EngineBuildOptions, build_engine
    from fume_edge.runtime.trt_backend import TensorRTBackend

    engine = TensorRTBackend(build_engine(path, folder / f"{path.stem}.engine", EngineBuildOptions()).engine)
    return lambda feeds: engine.infer_batch(*feeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT the models are exported at")
    parser.add_argument("--tensorrt", action="store_true", help="FP16 TensorRT engines instead of ONNX Runtime CPU")
    parser.add_argument("--int8", action="store_true", help="ONNX Runtime CPU on the exports quantized to INT8")
    args = parser.parse_args()
    n = args.batch
    width, height = (int(v) for v in args.size.lower().split("x"))
    size = (width, height)
    with tempfile.TemporaryDirectory() as tmp:
        one = export_onnx(args.checkpoint, Path(tmp) / "b1.onnx", size=size).path
        static = export_onnx(args.checkpoint, Path(tmp) / f"b{n}.onnx", size=size, batch=n).path
        dynamic = export_onnx(args.checkpoint, Path(tmp) / f"d{n}.onnx", size=size, batch=n, dynamic_batch=True).path
        calls = {
            path: _tensorrt(path, Path(tmp))
            if args.tensorrt
            else _ort(_int8(path) if args.int8 else path, args.threads)
            for path in (one, static, dynamic)
        }
        pair, full = _inputs(1, size), _inputs(n, size)
        padded = tuple(np.repeat(a, n, axis=0) for a in pair)
        ms = _medians_ms(
            {
                "batch-1 model, 1 pair": (calls[one], pair),
                f"static batch-{n}, 1 pair + {n - 1} padded": (calls[static], padded),
                f"dynamic batch-{n}, 1 pair": (calls[dynamic], pair),
                f"static batch-{n}, {n} pairs": (calls[static], full),
                f"dynamic batch-{n}, {n} pairs": (calls[dynamic], full),
            },
            args.iterations,
        )
    for name, value in ms.items():
        print(f"{name:<34} {value:8.2f} ms")
    values = list(ms.values())
    b1, pad, dyn1, static_full, dynamic_full = values
    print(f"short tick of 1 pair: pad {pad:.2f} ms, dynamic {dyn1:.2f} ms ({pad / dyn1:.2f}x faster than padding)")
    print(
        f"full tick of {n} pairs: dynamic / static = {dynamic_full / static_full:.3f} "
        f"({1000 * n / dynamic_full:.2f} vs {1000 * n / static_full:.2f} pairs/s; batch 1: {1000 / b1:.2f})"
    )


if __name__ == "__main__":
    main()
