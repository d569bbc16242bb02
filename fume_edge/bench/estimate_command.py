"""`fume-edge bench --estimate DEVICE`: the roofline bound and the expected FPS per Jetson, as a table and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from fume_edge.bench.estimate import estimate, load_devices
from fume_edge.bench.report import write_json
from fume_edge.console import COMPACT_BELOW, report_table
from fume_edge.errors import FumeEdgeError


def _onnx_model(models: list[Path]) -> Path:
    if not models:
        from fume_edge.assets import default_model_path

        return default_model_path()
    onnx = [m for m in models if m.suffix.lower() == ".onnx"]
    if not onnx:
        raise FumeEdgeError(f"{models[0]}: --estimate reads an ONNX graph; export one with `fume-edge export`")
    if not onnx[0].is_file():
        raise FumeEdgeError(f"{onnx[0]}: ONNX file not found")
    return onnx[0]


def print_estimate(result: dict[str, Any], target_fps: float, console: Console) -> None:
    table = report_table(f"Roofline UPPER BOUND (not a measurement) · {Path(result['model']).name} · "
                         f"{result['gflops']:.2f} GFLOPs a pair · batch {result['batch']} (FPS: pairs per second)",
                         console.width)
    compact = console.width < COMPACT_BELOW
    names = (("prec", "bound", "mem-bound", "expected", "30-FPS st.") if compact else
             ("precision", "bound FPS", "memory-bound", "expected FPS", "30-FPS stations"))
    for column in ("device", *names, f"vs {target_fps:g} FPS"):
        table.add_column(column, justify="left" if column in ("device", names[0]) else "right",
                         no_wrap=column == "device" or column.startswith("vs "))
    for row in result["rows"]:
        low, high = row["expected_fps"]
        verdict = ("[green]expected to meet" if low >= target_fps else "[yellow]may meet" if high >= target_fps
                   else "[yellow]bound meets, expected below" if row["bound_fps"] >= target_fps else "[red]cannot meet")
        few, many = row["stations_at_30fps"]
        table.add_row(row["device"], row["precision"], f"≤ {row['bound_fps']:.0f}",
                      f"{100 * row['memory_bound_share']:.0f} %", f"{low:.0f}–{high:.0f}", f"{few}–{many}", verdict)
    console.print(table)
    ref = result["reference"]
    console.print(f"bound: every node at its roofline, max(FLOPs / dense peak, bytes / bandwidth), pointwise ops fused; "
                  f"{result['mb_moved']['fp16']:.0f} MB moved per frame at FP16, {result['mb_moved']['int8']:.0f} MB "
                  "at INT8. No engine runs faster.", highlight=False)
    console.print(f"expected: the efficiency (achieved FLOPs / dense peak) {ref['model']} reached on {ref['device']} "
                  f"({ref['fp16_ms']} ms FP16, {ref['int8_ms']} ms INT8; {ref['source']}): high end, this model's FLOPs "
                  "at that efficiency; low end, the whole roofline (memory traffic too) at it.", highlight=False)
    console.print("peaks: dense GPU figures (NVIDIA's headline TOPS are sparse and include the DLAs); sources in "
                  "fume_edge/bench/devices.yaml. Measure on the device: `fume-edge bench --backends tensorrt-fp16,"
                  "tensorrt-int8` at `sudo nvpmodel -m 0 && sudo jetson_clocks`.", style="dim", highlight=False)


def estimate_command(models: list[Path], spec: str, target_fps: float, json_out: Path | None,
                     console: Console, batch: int = 1) -> None:
    devices = load_devices(spec)
    result = estimate(_onnx_model(models), devices, batch)
    print_estimate(result, target_fps, console)
    if json_out is not None:
        write_json({"benchmark": "fume-edge bench --estimate", "kind": "upper bound, not a measurement", **result},
                   json_out)
        console.print(f"wrote {json_out}", highlight=False)
