"""The gate a new model must pass on the device before it runs: the bundle's own validation set scored with the
model as built here, within margins of the FP32 metrics recorded at make time; every output finite; and fast
enough (median model call, bench-style, against a target FPS)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fume_edge.bench.model import latency_stats
from fume_edge.data.calibration import csv_inputs
from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.base import Backend, Prediction, load_backend
from fume_edge.train.evaluate import EvalReport, evaluate_items, labelled_item

# The metrics the gate holds a model to, and what each is called in a message.
GATED = {"gas_iou": "gas IoU", "balanced_accuracy": "balanced accuracy"}


@dataclass(frozen=True)
class GateSettings:
    iou_margin: float = 0.01  # the new model may fall this far below the recorded gas IoU (1 point)
    balanced_accuracy_margin: float = 0.01
    min_fps: float = 5.0  # median model call on this device
    fps_calls: int = 20
    device: str = "auto"

    def margin(self, metric: str) -> float:
        return self.iou_margin if metric == "gas_iou" else self.balanced_accuracy_margin


@dataclass
class GateResult:
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def _fps(backend: Any, calls: int) -> float:
    width, height = backend.input_size
    frame = np.full((1, 1, height, width), 0.5, np.float32)
    mask = np.ones((1, 2), np.float32)
    backend.infer(frame, frame, mask)  # warm-up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        backend.infer(frame, frame, mask)
        times.append(1000 * (time.perf_counter() - start))
    return float(latency_stats(times)["fps"])


def score(backend: Backend, val_csv: Path, on_prediction: Callable[[Prediction], None] | None = None) -> EvalReport:
    """`fume-edge eval`'s metrics of a loaded model on a paired CSV, read without torch (so a device can gate);
    `bundle make` records these for the FP32 ONNX, the gate measures them for the model as built on the device."""
    samples, inputs = csv_inputs(val_csv, backend.contract.preprocessing)
    return evaluate_items(
        backend, backend.name, val_csv, samples, map(labelled_item, inputs), on_prediction=on_prediction
    )


def run_gate(model_file: Path, val_csv: Path, recorded: dict[str, float | None], settings: GateSettings) -> GateResult:
    """Score `model_file` on `val_csv`; the result lists every figure and every failed condition."""
    result = GateResult()
    non_finite = 0

    def count(prediction: Prediction) -> None:
        nonlocal non_finite
        non_finite += not prediction.finite

    try:
        with load_backend(model_file, device=settings.device) as backend:
            report = score(backend, val_csv, count)
            fps = _fps(backend, settings.fps_calls)
    except FumeEdgeError as exc:
        result.failures.append(f"the model does not load or run: {exc}")
        return result
    result.figures.update(
        backend=report.backend, samples=report.samples, non_finite=non_finite, fps=fps, min_fps=settings.min_fps
    )
    for metric, label in GATED.items():
        got, want = report.metrics.get(metric), recorded.get(metric)
        result.figures[metric] = got
        result.figures[f"recorded_{metric}"] = want
        if want is None:
            continue  # undefined on this set at make time (e.g. no gas pixels): nothing to hold the model to
        if got is None or not np.isfinite(got) or got < want - settings.margin(metric):
            shown = "n/a" if got is None else f"{got:.4f}"
            result.failures.append(f"{label} {shown} < recorded {want:.4f} - {settings.margin(metric):g}")
    if non_finite:
        result.failures.append(f"{non_finite} non-finite output(s)")
    if fps < settings.min_fps:
        result.failures.append(f"{fps:.1f} FPS < {settings.min_fps:g}")
    return result
