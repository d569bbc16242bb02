"""Does the INT8 model decide what the FP32 model decides? Measured on labelled inputs, judged against fixed limits.

Both graphs run in ONNX Runtime on the CPU over the same inputs. Against the truth, each model gets the split
metrics of `fume_edge.metrics` (gas IoU, mIoU, balanced accuracy, sklearn-exact); against each other, the share of
inputs whose pH class is the same. The limits (issue 5): gas IoU may drop at most 1 point and the pH class must
agree on at least 98 % of inputs; `Int8Report.failures` says which limit a model breaks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort
from rich.table import Table

from fume_edge.data.calibration import LabelledInput
from fume_edge.runtime.contract import INPUT_NAMES, SEG_OUTPUTS, rows_per_call
from fume_edge.runtime.onnx_backend import ModelSource, open_session, run_session
from fume_edge.metrics import MetricAccumulator

MAX_GAS_IOU_DROP_POINTS = 1.0
MIN_PH_AGREEMENT = 0.98

Progress = Callable[[int, int], None]


def cpu_session(model: ModelSource) -> ort.InferenceSession:
    """A CPU session on a file or on serialized bytes (the INT8 model is judged before it is written)."""
    return open_session(model, device="cpu")


def session_rows(session: ort.InferenceSession) -> int:
    """Inputs per call the session takes (`rows_per_call` of its first input's batch dimension)."""
    return rows_per_call(session.get_inputs()[0].shape[0])


def stack(items: Sequence[LabelledInput]) -> dict[str, np.ndarray]:
    """The model inputs of `items` stacked row by row, by input name: one call's feed for a batch-N graph."""
    return {name: np.concatenate([getattr(item, name) for item in items]) for name in INPUT_NAMES}


def run(session: ort.InferenceSession, items: Sequence[LabelledInput]) -> list[dict[str, np.ndarray]]:
    """All graph outputs of each input, by name, one row each (batch axis kept), in calls of the session's batch.

    A batch-N graph gets N inputs stacked per call; a last partial call is filled with its last input and the
    filler rows are dropped, so every input is judged once whatever the batch.
    """
    rows = session_rows(session)
    outputs: list[dict[str, np.ndarray]] = []
    for start in range(0, len(items), rows):
        group = list(items[start : start + rows])
        real = len(group)
        group += [group[-1]] * (rows - real)
        result = run_session(session, *stack(group).values())
        outputs += [{name: value[k : k + 1] for name, value in result.items()} for k in range(real)]
    return outputs


def _points(fp32: float, int8: float) -> float:
    """FP32 minus INT8 in percentage points; 0 when neither model has the class anywhere (both undefined)."""
    if math.isnan(fp32) and math.isnan(int8):
        return 0.0
    return 100.0 * (fp32 - int8)


@dataclass
class Int8Report:
    """FP32 and INT8 metrics over the same inputs, and how often the two agree."""

    samples: int
    fp32: dict[str, float]
    int8: dict[str, float]
    ph_agreement: float
    pixel_agreement: float  # over the present modalities' pixels
    source: str = ""  # which data: "paired_val.csv", "held-back calibration pairs", ...
    notes: list[str] = field(default_factory=list)

    @staticmethod
    def miou(metrics: dict[str, float]) -> float:
        values = [metrics[k] for k in ("co2_miou", "ch4_miou") if k in metrics and not math.isnan(metrics[k])]
        return float(np.mean(values)) if values else math.nan

    @property
    def gas_iou_drop(self) -> float:
        """Points of mean gas IoU (over CO2 and CH4) lost to INT8."""
        return _points(self.fp32.get("gas_iou", math.nan), self.int8.get("gas_iou", math.nan))

    @property
    def miou_drop(self) -> float:
        return _points(self.miou(self.fp32), self.miou(self.int8))

    def failures(self) -> list[str]:
        if not self.samples:
            return ["no validation inputs to judge the INT8 model on"]
        out = []
        if self.gas_iou_drop > MAX_GAS_IOU_DROP_POINTS:
            out.append(f"gas IoU drops {self.gas_iou_drop:.2f} points (limit {MAX_GAS_IOU_DROP_POINTS:g})")
        if self.ph_agreement < MIN_PH_AGREEMENT:
            out.append(f"pH agreement {self.ph_agreement:.2%} (limit {MIN_PH_AGREEMENT:.0%})")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures()

    def to_dict(self) -> dict[str, object]:
        """The summary stored in the INT8 model's metadata."""
        return {
            "source": self.source,
            "samples": self.samples,
            "ph_agreement": round(self.ph_agreement, 6),
            "gas_iou_drop_points": round(self.gas_iou_drop, 4),
            "miou_drop_points": round(self.miou_drop, 4),
            "balanced_accuracy": {
                "fp32": self.fp32.get("balanced_accuracy"),
                "int8": self.int8.get("balanced_accuracy"),
            },
        }


def _accumulate(acc: MetricAccumulator, item: LabelledInput, out: dict[str, np.ndarray]) -> int:
    """Add one prediction to `acc`; returns the predicted pH class."""
    predicted = int(np.argmax(out["ph_logits"]))
    acc.update_ph(np.array([item.ph_class]), np.array([predicted]))
    for gas, truth in (("co2", item.co2_mask), ("ch4", item.ch4_mask)):
        if truth is not None and SEG_OUTPUTS[gas] in out:
            acc.update_seg(gas, truth, out[SEG_OUTPUTS[gas]][0])
    return predicted


def compare_int8(
    fp32: ModelSource,
    int8: ModelSource,
    items: Iterable[LabelledInput],
    total: int | None = None,
    source: str = "",
    progress: Progress | None = None,
) -> Int8Report:
    """Run both models over `items` (each with its own modality mask) and compare them and the truth; a batch-N
    INT8 model is fed N items per call (`run`)."""
    sessions = (cpu_session(fp32), cpu_session(int8))
    accumulators = (MetricAccumulator(), MetricAccumulator())
    samples = same_ph = same_pixels = pixels = 0
    rows, remaining = session_rows(sessions[1]), iter(items)
    while group := list(itertools.islice(remaining, rows)):
        per_model = [run(session, group) for session in sessions]
        for item, outputs in zip(group, zip(*per_model, strict=True), strict=True):
            classes = [_accumulate(acc, item, out) for acc, out in zip(accumulators, outputs, strict=True)]
            same_ph += classes[0] == classes[1]
            for gas, truth in (("co2", item.co2_mask), ("ch4", item.ch4_mask)):
                name = SEG_OUTPUTS[gas]
                if truth is not None and name in outputs[0]:
                    same_pixels += int(np.count_nonzero(outputs[0][name] == outputs[1][name]))
                    pixels += truth.size
        samples += len(group)
        if progress:
            progress(samples, total or samples)
    return Int8Report(
        samples=samples,
        fp32=accumulators[0].compute(),
        int8=accumulators[1].compute(),
        ph_agreement=same_ph / samples if samples else math.nan,
        pixel_agreement=same_pixels / pixels if pixels else math.nan,
        source=source,
    )


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}"


def _delta(points_lost: float) -> str:
    """INT8 minus FP32, in points."""
    if math.isnan(points_lost):
        return "n/a"
    return "0.00" if abs(points_lost) < 0.005 else f"{-points_lost:+.2f}"


def report_table(report: Int8Report) -> Table:
    """FP32 vs INT8, metric by metric, with the limits' verdicts."""
    table = Table(title=f"INT8 vs FP32 on {report.samples} input(s)")
    for column, justify in (("metric", "left"), ("FP32 %", "right"), ("INT8 %", "right"), ("Δ points", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    rows = [
        ("gas IoU (mean)", "gas_iou"),
        ("CO2 gas IoU", "co2_iou_gas"),
        ("CH4 gas IoU", "ch4_iou_gas"),
        ("CO2 mIoU", "co2_miou"),
        ("CH4 mIoU", "ch4_miou"),
        ("pH balanced accuracy", "balanced_accuracy"),
        ("pH accuracy", "accuracy"),
    ]
    for label, key in rows:
        a, b = report.fp32.get(key, math.nan), report.int8.get(key, math.nan)
        table.add_row(label, _percent(a), _percent(b), _delta(_points(a, b)))
    table.add_row(
        "mIoU (mean of gases)",
        _percent(report.miou(report.fp32)),
        _percent(report.miou(report.int8)),
        _delta(report.miou_drop),
    )
    table.add_row("pH class agreement", "", _percent(report.ph_agreement), "")
    table.add_row("pixel label agreement", "", _percent(report.pixel_agreement), "")
    verdict = "[green]within limits[/]" if report.passed else "[red]" + "; ".join(report.failures()) + "[/]"
    table.caption = (
        f"limits: gas IoU drop ≤ {MAX_GAS_IOU_DROP_POINTS:g} point, pH agreement ≥ {MIN_PH_AGREEMENT:.0%} — {verdict}"
    )
    return table
