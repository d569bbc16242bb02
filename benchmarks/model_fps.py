"""Model-only CPU speed of FUME-FastSCNN at 640×480, batch 1: eager PyTorch vs ONNX Runtime FP32 vs ORT INT8.

    python benchmarks/model_fps.py [--checkpoint MODEL.pt] [--calib calibration/NAME] [--rounds 5] [--block 12]

Measures, in one process on this machine: (a) the eager PyTorch model in float32 (`torch.inference_mode`, torch's
default threads; also with the graph's argmax added, for reference), (b) its FP32 ONNX export in ONNX Runtime (CPU, all graph optimisations, ORT's default threads),
(c) the `fume-edge quantize --target cpu` QDQ INT8 model in ONNX Runtime. The three take turns in blocks of calls
(see `measure`), so a change in machine load hits all three alike. Timings are per call (inputs prepared
beforehand); the JSON in benchmarks/results/ records median/p90 latency, FPS, the machine (CPU model, cores,
VNNI) and the library versions. Targets (issue 5): ONNX FP32 ≥ 2× eager PyTorch; CPU INT8 ≥ 1.5× ONNX FP32 on a
CPU with VNNI.

The INT8 model's speed does not depend on the calibration ranges, so without `--calib` a small synthetic
calibration set is made; its accuracy report is then recorded but means little. Without `--checkpoint` the
research fixture (random weights, the real architecture) is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "upstream_fume" / "upstream_fume_fastscnn_shared.pth"
SIZE = (640, 480)
TARGETS = {"onnx_fp32_vs_torch": 2.0, "int8_vs_onnx_fp32": 1.5}


def cpu_info() -> dict[str, object]:
    """CPU model, logical/physical cores, the ISA flags that decide int8 speed, from /proc/cpuinfo."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    processors = [dict(re.findall(r"^([^:\n]+?)\s*:\s*(.*)$", block, re.M)) for block in text.split("\n\n") if block.strip()]
    first = processors[0] if processors else {}
    flags = set(first.get("flags", "").split())
    cores = {(p.get("physical id"), p.get("core id")) for p in processors if "core id" in p}
    return {
        "model": first.get("model name", platform.processor()),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "physical_cores": len(cores) or None,
        "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
        "avx512_vnni": "avx512_vnni" in flags, "avx_vnni": "avx_vnni" in flags, "amx_int8": "amx_int8" in flags,
        "vnni": bool({"avx512_vnni", "avx_vnni"} & flags),
    }


def busy_seconds() -> float:
    """CPU seconds all processes spent busy since boot (/proc/stat, every core), to tell our load from others'."""
    fields = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def versions() -> dict[str, str]:
    import onnxruntime
    import torch

    from fume_edge import __version__

    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "fume_edge": __version__, "os": platform.platform()}


@dataclass
class Models:
    checkpoint: Path
    onnx_fp32: Path
    onnx_int8: Path
    int8_report: dict[str, object]


def prepare_models(work: Path, checkpoint: Path | None, calib: Path | None) -> Models:
    """The checkpoint (imported fixture by default), its FP32 ONNX export and its CPU INT8 model."""
    from fume_edge.deploy.checkpoint import save_checkpoint
    from fume_edge.deploy.onnx_export import export_onnx
    from fume_edge.deploy.quantize import QuantizeOptions, quantize_onnx
    from fume_edge.deploy.upstream_import import import_research_checkpoint

    if checkpoint is None:
        checkpoint = save_checkpoint(import_research_checkpoint(FIXTURE).checkpoint, work / "fixture.pt")
    fp32 = export_onnx(checkpoint, work / "fume.onnx", size=SIZE).path
    if calib is None:
        calib = synthetic_calibration(work)
    result = quantize_onnx(fp32, calib, work / "fume.cpu.int8.onnx", QuantizeOptions(target="cpu", force=True))
    return Models(checkpoint, fp32, result.output, result.report.to_dict())


def synthetic_calibration(work: Path, pairs: int = 40) -> Path:
    """A small 640×480 synthetic calibration set (speed does not depend on the ranges)."""
    from fume_edge.data.calibration import CalibrationRequest, build_calibration_set
    from fume_edge.data.config import load_data_config
    from fume_edge.data.pairing import run_pairing
    from fume_edge.data.synth_dataset import plan_sessions, write_synthetic_dataset

    config = load_data_config()
    plans = plan_sessions(config.synthetic, config.ph_classes, pairs, seed=0)
    annotations = write_synthetic_dataset(work / "synth", plans, config.synthetic, seed=0)
    run_pairing(annotations, work / "synth", config.pairing, config.ph_classes)
    build_calibration_set(CalibrationRequest(work / "synth" / "paired_train.csv", work / "calib", pairs, 0, SIZE))
    return work / "calib"


def runners(models: Models, threads: int | None) -> dict[str, Callable[[], object]]:
    """One zero-argument call per configuration, inputs prepared outside the timed call; `threads` None: defaults.

    `torch_eager_fp32` is the model's forward (logits), the research code's output and the targets' baseline;
    `torch_eager_fp32_argmax` adds what the ONNX graph also computes (`DeploymentWrapper`: int32 argmax masks), for
    reference: torch's argmax over the 3-class axis of a 640×480 map is a slow strided reduction.
    """
    import onnxruntime as ort
    import torch

    from fume_edge.deploy.checkpoint import load_checkpoint
    from fume_edge.deploy.onnx_export import DeploymentWrapper

    if threads:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    co2, ch4 = (rng.random((1, 1, SIZE[1], SIZE[0]), dtype=np.float32) for _ in range(2))
    mask = np.ones((1, 2), np.float32)
    tensors = tuple(torch.from_numpy(a) for a in (co2, ch4, mask))
    model = load_checkpoint(models.checkpoint).build_model().eval()

    def eager(module: torch.nn.Module) -> Callable[[], object]:
        def call() -> object:
            with torch.inference_mode():
                return module(*tensors)
        return call

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    feeds = {"co2": co2, "ch4": ch4, "modality_mask": mask}
    calls = {"torch_eager_fp32": eager(model), "torch_eager_fp32_argmax": eager(DeploymentWrapper(model).eval())}
    for name, path in (("onnx_fp32", models.onnx_fp32), ("onnx_int8", models.onnx_int8)):
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        calls[name] = lambda session=session: session.run(None, feeds)
    return calls


def measure(calls: dict[str, Callable[[], object]], warmup: int, rounds: int, block: int) -> dict[str, dict[str, float]]:
    """Blocked round-robin: each round runs a block of timed calls per configuration, after `warmup` untimed ones.

    Blocks, not single calls, because ORT's and torch's idle thread pools spin for a while after a call: on a
    2-core machine one configuration's spinning threads would slow the next call of another (we saw eager torch
    go from ~60 ms to seconds). Rounds spread slow drifts in machine load over all configurations alike.
    """
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
        stats[name] = {"median_ms": round(median, 3), "p90_ms": round(float(np.percentile(ms, 90)), 3),
                       "mean_ms": round(float(ms.mean()), 3), "min_ms": round(float(ms.min()), 3),
                       "fps_median": round(1000.0 / median, 2), "samples": len(values)}
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="fume-edge checkpoint [default: the imported research fixture]")
    parser.add_argument("--calib", type=Path, help="640x480 calibration folder [default: a small synthetic one]")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over all configurations")
    parser.add_argument("--block", type=int, default=12, help="timed calls per configuration per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before each block")
    parser.add_argument("--threads", type=int, help="threads for torch and ORT [default: each library's default]")
    parser.add_argument("--out", type=Path, help="JSON to write [default: benchmarks/results/model_fps_<cpu>.json]")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from fume_edge.hashing import sha256_file

    cpu = cpu_info()
    with tempfile.TemporaryDirectory(prefix="fume-edge-bench-") as tmp:
        models = prepare_models(Path(tmp), args.checkpoint, args.calib)
        checkpoint_sha256 = sha256_file(models.checkpoint)
        calls = runners(models, args.threads)
        wall, busy, own = time.perf_counter(), busy_seconds(), time.process_time()
        stats = measure(calls, args.warmup, args.rounds, args.block)
        wall, busy, own = time.perf_counter() - wall, busy_seconds() - busy, time.process_time() - own
    others = max(0.0, busy - own) / wall  # cores' worth of CPU other processes used while we measured
    ratios = {
        "onnx_fp32_vs_torch": round(stats["torch_eager_fp32"]["median_ms"] / stats["onnx_fp32"]["median_ms"], 3),
        "int8_vs_onnx_fp32": round(stats["onnx_fp32"]["median_ms"] / stats["onnx_int8"]["median_ms"], 3),
        "onnx_fp32_vs_torch_argmax": round(  # same outputs on both sides; for reference, no target
            stats["torch_eager_fp32_argmax"]["median_ms"] / stats["onnx_fp32"]["median_ms"], 3),
    }
    slug = re.sub(r"[^a-z0-9]+", "-", str(cpu["model"]).lower()).strip("-") or socket.gethostname()
    suffix = f"-{args.threads}t" if args.threads else ""
    out = args.out or ROOT / "benchmarks" / "results" / f"model_fps_{slug}-{cpu['usable_cores']}c{suffix}.json"
    result = {
        "benchmark": "model-only latency, batch 1, 640x480, same random input, blocked round-robin",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "hostname": socket.gethostname(),
        "cpu": cpu, "versions": versions(),
        "other_processes_cores_busy": round(others, 2),
        "threads": {"torch": torch.get_num_threads(),
                    "onnxruntime": args.threads or "default (one per physical core)"},
        "onnxruntime_providers": ort.get_available_providers(),
        "checkpoint": str(args.checkpoint or "tests/fixtures/upstream_fume (random weights)"),
        "checkpoint_sha256": checkpoint_sha256,
        "calibration": str(args.calib or "synthetic, 40 pairs"), "int8_report": models.int8_report,
        "rounds": args.rounds, "block": args.block, "warmup_per_block": args.warmup, "results": stats, "ratios": ratios,
        "targets": {k: {"target": v, "met": ratios[k] >= v} for k, v in TARGETS.items()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for name, s in stats.items():
        print(f"{name:26s} median {s['median_ms']:8.2f} ms  p90 {s['p90_ms']:8.2f} ms  {s['fps_median']:7.2f} FPS")
    vnni = "with VNNI" if cpu["vnni"] else "without VNNI"
    for key, value in ratios.items():
        verdict = f" (target {TARGETS[key]}x: {'met' if value >= TARGETS[key] else 'MISSED'})" if key in TARGETS else ""
        print(f"{key}: {value:.2f}x{verdict}")
    print(f"{cpu['model']}, {cpu['usable_cores']} usable cores, {vnni}; wrote {out}")
    if others > 0.1:
        print(f"warning: other processes kept {others:.2f} cores busy during the measurement; "
              "rerun on a quiet machine before quoting these numbers")


if __name__ == "__main__":
    main()
