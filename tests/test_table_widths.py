"""Every report table at 80 and 120 columns: whole lines, and no row name cut to `…` (FP32 and INT8 told apart)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from alerts_support import make_event
from rich.console import Console

from fume_edge.alerts.report import _narrow_table, _wide_table
from fume_edge.assets import default_model_path
from fume_edge.bench.estimate import estimate, load_devices
from fume_edge.bench.commands import print_estimate
from fume_edge.bench.report import print_report

WIDTHS = (80, 120)
TARGET_FPS = 100.0


def _row(backend: str, precision: str, device: str, p50: float) -> dict[str, Any]:
    model = {"p50_ms": p50, "p90_ms": p50 * 1.1, "p99_ms": p50 * 1.3, "fps": 1000 / p50}
    return {
        "backend": backend,
        "status": "measured",
        "precision": precision,
        "device": device,
        "note": None,
        "pre": {"p50_ms": 1.21},
        "post": {"p50_ms": 0.4},
        "model": model,
    }


BENCH_RESULT: dict[str, Any] = {
    "model": {"name": "fume_default.onnx", "input_size": "640x480"},
    "machine_label": "AMD EPYC 7B13 (2 cores), no GPU",
    "settings": {"target_fps": TARGET_FPS},
    "rows": [
        _row("torch", "fp32", "cpu", 91.3),
        _row("onnxruntime", "fp32", "CPUExecutionProvider", 31.7),
        _row("onnxruntime-int8", "int8", "CPUExecutionProvider", 8.2),
        {
            "backend": "tensorrt-fp16",
            "status": "not measured",
            "reason": "no GPU; TensorRT not installed",
            "fix": "TensorRT needs an NVIDIA GPU",
        },
        {
            "backend": "tensorrt-int8",
            "status": "not measured",
            "reason": "no GPU; TensorRT not installed",
            "fix": "TensorRT needs an NVIDIA GPU",
        },
    ],
    "pipeline": [
        {
            "backend": backend,
            "device": "CPUExecutionProvider",
            "fps": fps,
            "ratio_to_model_only": 0.9,
            "pipeline_own_ms_per_frame": 2.0,
            "pipeline_cpu_ms_per_frame": 3.0,
            "stage_ms": {"prepare": 1.0, "alerts": 0.1},
        }
        for backend, fps in (("onnxruntime", 28.0), ("onnxruntime-int8", 101.0))
    ],
    "ratios": {},
    "other_processes_cores_busy": None,
}


def _render(width: int, draw) -> list[str]:
    console = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    draw(console)
    return console.export_text().splitlines()


def _row_starts(lines: list[str]) -> list[str]:
    """Each line without the table's left border."""
    return [line.lstrip("┃│ ") for line in lines]


ROW_NAMES = {
    80: ["torch", "ORT fp32", "ORT int8", "TRT fp16", "TRT int8", "ORT fp32 loop", "ORT int8 loop"],
    120: [
        "torch",
        "onnxruntime",
        "onnxruntime-int8",
        "tensorrt-fp16",
        "tensorrt-int8",
        "onnxruntime end to end",
        "onnxruntime-int8 end to end",
    ],
}


@pytest.mark.parametrize("width", WIDTHS)
def test_bench_table(width: int) -> None:
    lines = _render(width, lambda console: print_report(copy.deepcopy(BENCH_RESULT), console))
    assert max(map(len, lines)) <= width
    starts = _row_starts(lines)
    for name in ROW_NAMES[width]:  # whole, distinct (FP32 and INT8 told apart), on one line
        assert any(start.startswith(name + "  ") or start.startswith(name + " │") for start in starts), (name, lines)
    assert not any("…" in line for line in lines)


@pytest.fixture(scope="module")
def estimate_result() -> dict[str, Any]:
    return estimate(default_model_path(), load_devices("all"))


@pytest.mark.parametrize("width", WIDTHS)
def test_estimate_table(width: int, estimate_result: dict[str, Any]) -> None:
    lines = _render(width, lambda console: print_estimate(estimate_result, TARGET_FPS, console))
    assert max(map(len, lines)) <= width
    first_words = {start.split()[0] for start in _row_starts(lines) if start.strip()}
    assert {row["device"] for row in estimate_result["rows"]} <= first_words, lines
    assert not any("…" in line for line in lines)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("wide", [False, True])
def test_alerts_tables(width: int, wide: bool) -> None:
    events = [
        make_event(
            "start",
            "transitional_risk",
            subject="cow-17",
            snapshot="/var/lib/fume-edge/snapshots/2026/11/25/a-long-snapshot-name.png",
        ),
        make_event("end", "camera_degraded", reason="interrupted"),
        make_event("start", "acidosis_risk"),
    ]
    db = Path("/var/lib/fume-edge/alerts.db")
    lines = _render(
        width, lambda console: console.print(_wide_table(events, db, width) if wide else _narrow_table(events, db))
    )
    assert max(map(len, lines)) <= width
    assert not any("…" in line for line in lines), "\n".join(lines)
    for event in events:
        row = next(line for line in lines if event.id[:8] in line)
        assert event.type in row.split(), row  # the row name whole, on the event's own line
    if wide:
        text = " ".join(" ".join(lines).split())
        assert "cow-17" in text and "H.10 T.20 A.70" in text and "co2 5.0%" in text
