"""TensorRT engines of the bundled model on this GPU: build time, batch-1 FPS and parity with ONNX Runtime.

    python benchmarks/trt_engines.py --calib calibration/NAME [--rounds 5] [--block 50]

Builds FP16 and INT8 (QDQ; and, on TensorRT 8.6/10.x, the entropy calibrator) engines of
fume_edge/assets/fume_default.onnx into a scratch folder, times each build, then measures per-call latency of
`TensorRTBackend.infer` (uploads, engine, int32 mask downloads, one sync) with the plain path and CUDA-graph replay,
taking turns in blocks, and the agreement with ONNX Runtime FP32 on the calibration
pairs. The JSON in benchmarks/results/ records the GPU, TensorRT/CUDA versions, JetPack power mode when on a Jetson.
An INT8 engine slower than the FP16 one is flagged: it means Q/DQ placement stops TensorRT's fusions.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fume_edge.assets import default_model_path
from fume_edge.data.calibration import load_calibration
from fume_edge.deploy.tensorrt.tensorrt_build import EngineBuildOptions, build_engine
from fume_edge.labels import GASES
from fume_edge.runtime.onnx_backend import OnnxBackend
from fume_edge.runtime.trt_backend import TensorRTBackend

ROOT = Path(__file__).resolve().parent.parent


def measure(
    calls: dict[str, Callable[[], object]], warmup: int, rounds: int, block: int
) -> dict[str, dict[str, float]]:
    """Per-call latency, the configurations taking turns in blocks so drifts in clocks or load hit all alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            for _ in range(warmup):
                call()
            for _ in range(block):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    stats = {}
    for name, values in times.items():
        ms = np.array(values) * 1000.0
        median = float(np.median(ms))
        stats[name] = {
            "median_ms": round(median, 3),
            "p90_ms": round(float(np.percentile(ms, 90)), 3),
            "fps_median": round(1000.0 / median, 1),
            "samples": len(values),
        }
    return stats


def power_mode() -> str | None:
    """`nvpmodel -q` on a Jetson (speeds depend on it; benchmark at -m 0 with jetson_clocks)."""
    try:
        done = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return " ".join(done.stdout.split()) or None


def agreement(engine: Path, calib: Path) -> dict[str, float]:
    cset = load_calibration(calib)
    same_class, agree, total = 0, 0, 0
    with TensorRTBackend(engine) as model, OnnxBackend(default_model_path(), device="cpu") as reference:
        for index in range(len(cset)):
            item = cset.item(index)
            got, want = (
                model.infer(item.co2, item.ch4, item.modality_mask),
                reference.infer(item.co2, item.ch4, item.modality_mask),
            )
            same_class += int(got.ph_class == want.ph_class)
            for gas in GASES:
                a, b = got.seg[gas], want.seg[gas]
                agree += int(np.count_nonzero(a == b))
                total += int(np.asarray(a).size)
    return {
        "ph_class_agreement": round(same_class / len(cset), 4),
        "mask_label_agreement": round(agree / total, 5),
        "pairs": len(cset),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib", type=Path, required=True, help="calibration folder (fume-edge calibrate)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    import tensorrt as trt

    work = Path(tempfile.mkdtemp(prefix="trt_bench_"))
    configs = {"fp16": EngineBuildOptions(precision="fp16"), "int8-qdq": EngineBuildOptions(precision="int8")}
    if int(trt.__version__.split(".")[0]) < 11:
        configs["int8-entropy"] = EngineBuildOptions(precision="int8", calibrator="entropy")
    builds, results = {}, {}
    for name, options in configs.items():
        builds[name] = build_engine(default_model_path(), work / f"{name}.engine", options, calib=args.calib)
        results[name] = {"build_seconds": round(builds[name].seconds, 1), **agreement(builds[name].engine, args.calib)}
    item = load_calibration(args.calib).item(0)
    backends = {
        f"{name}{suffix}": TensorRTBackend(build.engine, cuda_graph=graph)
        for name, build in builds.items()
        for suffix, graph in (("", False), ("+graph", True))
    }
    calls = {
        name: (lambda b=backend: b.infer(item.co2, item.ch4, item.modality_mask)) for name, backend in backends.items()
    }
    timing = measure(calls, warmup=10, rounds=args.rounds, block=args.block)
    for backend in backends.values():
        backend.close()
    info = builds["fp16"].info
    report = {
        "machine": {
            "gpu": info.gpu_name,
            "compute_capability": info.compute_capability,
            "cuda": info.cuda_version,
            "tensorrt": info.tensorrt_version,
            "jetpack": info.jetpack,
            "power_mode": power_mode(),
            "host": platform.node(),
        },
        "builds": results,
        "latency_batch1": timing,
        "int8_slower_than_fp16": timing["int8-qdq"]["median_ms"] > timing["fp16"]["median_ms"],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = "".join(c if c.isalnum() else "-" for c in info.gpu_name).strip("-").lower()
    path = args.out / f"trt_engines_{gpu}_trt{info.tensorrt_version}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
