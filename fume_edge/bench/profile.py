"""Where ONNX Runtime spends a model's time: its own profiler (`SessionOptions.enable_profiling`), by op type.

ORT writes one JSON trace event per kernel run (`cat: "Node"`, `args.op_name`, `dur` in µs); summing them per op
type over the timed runs shows, for an FP32 model against its INT8 one, which operators the quantization sped up,
which stayed in float, and what the layout reorders (`ReorderInput`/`ReorderOutput`) and Q/DQ nodes added.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def profile_ops(path: Path, runs: int = 20, warmup: int = 3, threads: int | None = None) -> dict[str, Any]:
    """Mean µs per inference for each op type (and the node count) of one model on the CPU provider."""
    import onnxruntime as ort

    from fume_edge.runtime.onnx_backend import session_options

    with tempfile.TemporaryDirectory(prefix="fume-edge-profile-") as tmp:
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        shape = session.get_inputs()[0].shape
        rng = np.random.default_rng(0)
        feeds = {
            "co2": rng.random(shape, dtype=np.float32),
            "ch4": rng.random(shape, dtype=np.float32),
            "modality_mask": np.ones((1, 2), np.float32),
        }
        for _ in range(warmup + runs):
            session.run(None, feeds)
        trace = json.loads(Path(session.end_profiling()).read_text())
    events = [e for e in trace if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    per_run: dict[str, float] = defaultdict(float)
    nodes: dict[str, set[str]] = defaultdict(set)
    seen: dict[str, int] = defaultdict(int)
    for event in events:  # in time order; each node's first `warmup` runs are skipped
        seen[event["name"]] += 1
        if seen[event["name"]] <= warmup:
            continue
        op = event["args"].get("op_name", "?")
        per_run[op] += event["dur"]
        nodes[op].add(event["name"])
    ops = {
        op: {"us_per_run": round(us / runs, 1), "nodes": len(nodes[op])}
        for op, us in sorted(per_run.items(), key=lambda kv: -kv[1])
    }
    total = sum(v["us_per_run"] for v in ops.values())
    for value in ops.values():
        value["share"] = round(value["us_per_run"] / total, 4) if total else 0.0
    return {"model": str(path), "runs": runs, "kernel_us_per_run": round(total, 1), "ops": ops}


def compare_profiles(fp32: dict[str, Any], int8: dict[str, Any], top: int = 12) -> list[dict[str, Any]]:
    """Per op type: FP32 and INT8 µs per run, the op types costly in either model first."""
    names = sorted(
        set(fp32["ops"]) | set(int8["ops"]),
        key=lambda op: -max(m["ops"].get(op, {}).get("us_per_run", 0.0) for m in (fp32, int8)),
    )
    rows = []
    for op in names[:top]:
        a = fp32["ops"].get(op, {}).get("us_per_run", 0.0)
        b = int8["ops"].get(op, {}).get("us_per_run", 0.0)
        rows.append(
            {
                "op": op,
                "fp32_us": a,
                "int8_us": b,
                "int8_nodes": int8["ops"].get(op, {}).get("nodes", 0),
                "fp32_nodes": fp32["ops"].get(op, {}).get("nodes", 0),
            }
        )
    return rows
