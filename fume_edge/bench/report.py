"""The bench result as a rich table (a verdict per row against the target FPS), ratios, and the JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from fume_edge.console import COMPACT_BELOW, report_table

# Row names below COMPACT_BELOW columns: short, and FP32 and INT8 still told apart.
SHORT_NAMES = {
    "onnxruntime": "ORT fp32",
    "onnxruntime-int8": "ORT int8",
    "tensorrt-fp16": "TRT fp16",
    "tensorrt-int8": "TRT int8",
}
# (faster, baseline) pairs whose ratio is printed when both rows were measured in the run.
RATIO_PAIRS = (
    ("onnxruntime", "torch"),
    ("onnxruntime-int8", "onnxruntime"),
    ("tensorrt-fp16", "onnxruntime"),
    ("tensorrt-int8", "tensorrt-fp16"),
)


def verdict(fps: float, target: float, compact: bool = False) -> str:
    if fps >= target:
        return "meets" if compact else f"meets {target:g} FPS"
    return f"below ({100 * fps / target:.0f} %)" if compact else f"below {target:g} FPS ({100 * fps / target:.0f} %)"


def short_device(device: str) -> str:
    """`CPUExecutionProvider` → `CPU`, for a narrow table."""
    return device.replace("ExecutionProvider", "")


def ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Model-only p50 latency ratios between rows of the same run (how many times faster the first is)."""
    p50 = {r["backend"]: r["model"]["p50_ms"] for r in rows if r["status"] == "measured"}
    return {f"{a} vs {b}": round(p50[b] / p50[a], 3) for a, b in RATIO_PAIRS if a in p50 and b in p50}


def row_name(backend: str, compact: bool) -> str:
    """The backend's name in a table: the full name, or below COMPACT_BELOW columns a short one (ORT int8)."""
    return SHORT_NAMES.get(backend, backend) if compact else backend


def print_report(result: dict[str, Any], console: Console) -> None:
    target = result["settings"]["target_fps"]
    compact = console.width < COMPACT_BELOW
    table = report_table(
        f"fume-edge bench · {result['model']['name']} · {result['model']['input_size']} · "
        f"batch 1 · {result['machine_label']}",
        console.width,
    )
    table.add_column("backend", no_wrap=True)
    table.add_column("dev" if compact else "device", no_wrap=True)
    timings = ("pre", "p50", "p99", "post") if compact else ("pre ms", "model p50", "p90", "p99", "post ms")
    for column in (*timings, "FPS"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=compact)
    blank = [""] * (len(timings) + 1)
    for row in result["rows"]:
        if row["status"] != "measured":
            table.add_row(row_name(row["backend"], compact), "", *blank, "[yellow]not measured")
            continue
        m = row["model"]
        colour = "green" if m["fps"] >= target else "red"
        model_ms = (m["p50_ms"], m["p99_ms"]) if compact else (m["p50_ms"], m["p90_ms"], m["p99_ms"])
        times = (row["pre"]["p50_ms"], *model_ms, row["post"]["p50_ms"])
        table.add_row(
            row_name(row["backend"], compact),
            short_device(row["device"]),
            *(f"{t:.2f}" for t in times),
            f"{m['fps']:.1f}",
            f"[{colour}]{verdict(m['fps'], target, compact=compact)}",
        )
    for run in result.get("pipeline", []):
        colour = "green" if run["fps"] >= target else "red"
        name = f"{row_name(run['backend'], compact)} {'loop' if compact else 'end to end'}"
        table.add_row(
            name,
            short_device(run["device"]),
            *blank[:-1],
            f"{run['fps']:.1f}",
            f"[{colour}]{verdict(run['fps'], target, compact=compact)}",
        )
    console.print(table)
    for row in result["rows"]:
        text = row.get("note") if row["status"] == "measured" else f"{row['reason']}; fix: {row.get('fix')}"
        if text:
            console.print(f"  {row_name(row['backend'], compact)}: {text}", style="dim", highlight=False)
    for name, value in result["ratios"].items():
        console.print(f"{name}: {value:.2f}x (model-only p50, same run)", highlight=False)
    for run in result.get("pipeline", []):
        console.print(
            f"{run['backend']} end to end {run['fps']:.1f} FPS = {run['ratio_to_model_only']:.2f}x "
            f"model-only; the pipeline's own work {run['pipeline_own_ms_per_frame']:.2f} ms/frame (capture and "
            f"sink threads' CPU, prepare {run['stage_ms']['prepare']:.2f} ms, alerts "
            f"{run['stage_ms']['alerts']:.2f} ms); process CPU beyond the model "
            f"{run['pipeline_cpu_ms_per_frame']:.2f} ms/frame",
            highlight=False,
        )
        if run.get("stations", 1) > 1:
            per = ", ".join(f"{k} {v:.1f}" for k, v in run["station_fps"].items())
            console.print(
                f"  {run['stations']} stations ({run['loop_model']}, batch {run['batch']}, {run['calls']} "
                f"calls, {run['padded']} padded rows): per station FPS {per}; fairness min/max "
                f"{run['fairness_min_over_max']:.2f}; capture-to-result p50 {run['latency_ms']['p50']:.1f} "
                f"ms, p99 {run['latency_ms']['p99']:.1f} ms",
                highlight=False,
            )
    busy = result.get("other_processes_cores_busy")
    if busy is not None and busy > 0.1:
        console.print(
            f"warning: other processes kept {busy:.2f} cores busy while this ran; rerun on a quiet machine "
            "before quoting these numbers",
            style="yellow",
        )


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
