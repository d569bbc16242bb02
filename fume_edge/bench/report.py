"""The bench result as a rich table (a verdict per row against the target FPS), ratios, and the JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# (faster, baseline) pairs whose ratio is printed when both rows were measured in the run.
RATIO_PAIRS = (("onnxruntime", "torch"), ("onnxruntime-int8", "onnxruntime"), ("tensorrt-fp16", "onnxruntime"),
               ("tensorrt-int8", "tensorrt-fp16"))


def verdict(fps: float | None, target: float, reason: str | None = None) -> str:
    if fps is None:
        return f"not measured: {reason}"
    if fps >= target:
        return f"meets {target:g} FPS"
    return f"below {target:g} FPS ({100 * fps / target:.0f} %)"


def short_device(device: str) -> str:
    """`CPUExecutionProvider` → `CPU`, for a narrow table."""
    return device.replace("ExecutionProvider", "")


def ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Model-only p50 latency ratios between rows of the same run (how many times faster the first is)."""
    p50 = {r["backend"]: r["model"]["p50_ms"] for r in rows if r["status"] == "measured"}
    return {f"{a} vs {b}": round(p50[b] / p50[a], 3) for a, b in RATIO_PAIRS if a in p50 and b in p50}


def print_report(result: dict[str, Any], console: Console) -> None:
    target = result["settings"]["target_fps"]
    table = Table(title=f"fume-edge bench · {result['model']['name']} · {result['model']['input_size']} · "
                        f"batch 1 · {result['machine_label']}", title_justify="left")
    for column in ("backend", "device"):
        table.add_column(column)
    for column in ("pre ms", "model p50", "p90", "p99", "post ms", "FPS"):
        table.add_column(column, justify="right")
    table.add_column("verdict")
    for row in result["rows"]:
        if row["status"] != "measured":
            table.add_row(row["backend"], "", *[""] * 6, f"[yellow]{verdict(None, target, row['reason'])}")
            continue
        m = row["model"]
        colour = "green" if m["fps"] >= target else "red"
        table.add_row(row["backend"], short_device(row["device"]), f"{row['pre']['p50_ms']:.2f}", f"{m['p50_ms']:.2f}",
                      f"{m['p90_ms']:.2f}", f"{m['p99_ms']:.2f}", f"{row['post']['p50_ms']:.2f}",
                      f"{m['fps']:.1f}", f"[{colour}]{verdict(m['fps'], target)}")
    for run in result.get("pipeline", []):
        colour = "green" if run["fps"] >= target else "red"
        table.add_row(f"{run['backend']} end to end", short_device(run["device"]), "", "", "", "", "", f"{run['fps']:.1f}",
                      f"[{colour}]{verdict(run['fps'], target)}")
    console.print(table)
    for row in result["rows"]:
        text = row.get("note") if row["status"] == "measured" else row.get("fix")
        if text:
            console.print(f"  {row['backend']}: {text}", style="dim", highlight=False)
    for name, value in result["ratios"].items():
        console.print(f"{name}: {value:.2f}x (model-only p50, same run)", highlight=False)
    for run in result.get("pipeline", []):
        console.print(f"{run['backend']} end to end {run['fps']:.1f} FPS = {run['ratio_to_model_only']:.2f}x "
                      f"model-only; the pipeline's own work {run['pipeline_own_ms_per_frame']:.2f} ms/frame (capture and "
                      f"sink threads' CPU, prepare {run['stage_ms']['prepare']:.2f} ms, alerts "
                      f"{run['stage_ms']['alerts']:.2f} ms); process CPU beyond the model "
                      f"{run['pipeline_cpu_ms_per_frame']:.2f} ms/frame", highlight=False)
        if run.get("stations", 1) > 1:
            per = ", ".join(f"{k} {v:.1f}" for k, v in run["station_fps"].items())
            console.print(f"  {run['stations']} stations ({run['loop_model']}, batch {run['batch']}, {run['calls']} "
                          f"calls, {run['padded']} padded rows): per station FPS {per}; fairness min/max "
                          f"{run['fairness_min_over_max']:.2f}; capture-to-result p50 {run['latency_ms']['p50']:.1f} "
                          f"ms, p99 {run['latency_ms']['p99']:.1f} ms", highlight=False)
    busy = result.get("other_processes_cores_busy")
    if busy is not None and busy > 0.1:
        console.print(f"warning: other processes kept {busy:.2f} cores busy while this ran; rerun on a quiet machine "
                      "before quoting these numbers", style="yellow")


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
