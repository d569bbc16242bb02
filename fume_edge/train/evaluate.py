"""`fume-edge eval MODEL --data paired_test.csv`: score any model file the runtime can load on one split.

Inference goes through `runtime.base.load_backend`, the same path deployment uses, so a checkpoint, its ONNX
export and a TensorRT engine are scored on the same split by the same code, one pair at a time at the model's own
input size: the numbers say what each precision really delivers.

Frames are made by the model's own preprocessing (its contract), and every pair is also scored with one camera
masked out (CO2 only, CH4 only), so the report says what the device delivers in degraded mode, not only with both.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from fume_edge.console import console, print_next
from fume_edge.data.calibration import MODALITY_CASES, LabelledInput
from fume_edge.data.config import load_data_config
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import GASES
from fume_edge.runtime.base import Backend, Prediction, load_backend
from fume_edge.metrics import MetricAccumulator
from fume_edge.train.tracking import metric_text, metrics_table


@dataclass
class EvalReport:
    model: str
    backend: str
    data: str
    samples: int
    input_size: tuple[int, int]
    seconds: float
    metrics: dict[str, float]
    confusion_matrix: list[list[int]] | None
    by_modality: dict[str, dict[str, float]] = field(default_factory=dict)  # MODALITY_CASES name -> metrics
    modality_samples: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        """JSON with NaN (an undefined metric, e.g. a class absent from the split) written as null."""
        body: dict[str, Any] = dict(vars(self))
        body["metrics"] = _nulls(self.metrics)
        body["by_modality"] = {case: _nulls(m) for case, m in self.by_modality.items()}
        return json.dumps(body, indent=2)


def _nulls(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: None if math.isnan(v) else v for k, v in metrics.items()}


def modality_inputs(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The sample in every modality case it can be scored in: a pair in all three, a single gas in its own."""
    present = tuple(float(v) > 0 for v in item["modality_mask"])
    cases = MODALITY_CASES if all(present) else {n: c for n, c in MODALITY_CASES.items() if c == present}
    out = {}
    for name, (use_co2, use_ch4) in cases.items():
        keep = np.array([use_co2, use_ch4], np.float32)
        out[name] = {
            **item,
            "co2": item["co2"] * keep[0],
            "ch4": item["ch4"] * keep[1],
            "modality_mask": item["modality_mask"] * keep,
        }
    return out


def score_prediction(accumulator: MetricAccumulator, prediction: Prediction, item: dict[str, Any]) -> None:
    """Add one sample's backend prediction (class ids) to the split's confusion matrices."""
    if prediction.ph_class is not None:
        accumulator.update_ph(np.array([int(item["ph_class"])]), np.array([prediction.ph_class]))
    for column, gas in enumerate(GASES):
        predicted = prediction.seg.get(gas)
        if predicted is not None and float(item["modality_mask"][column]) > 0:
            accumulator.update_seg(gas, np.asarray(item[f"{gas}_mask"]), predicted)


def evaluate_file(
    model: str | Path,
    data: str | Path,
    device: str = "auto",
    data_settings: str | Path | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """Metrics of the model file `model` on the paired CSV `data` (frames resized to the model's input size)."""
    data = Path(data)
    if not data.is_file():
        raise FumeEdgeError(f"{data}: paired CSV not found; pass a split written by `fume-edge pair`")
    with load_backend(model, device=device) as backend:
        from fume_edge.data.dataset import PairedFrameDataset  # torch: the training reader, as validation scores

        dataset = PairedFrameDataset(
            data, train=False, config=load_data_config(data_settings), preprocessing=backend.contract.preprocessing
        )
        count = len(dataset) if limit is None else min(limit, len(dataset))
        items = ({k: v.numpy() for k, v in dataset[index].items()} for index in range(count))
        return evaluate_items(backend, str(model), data, count, items, progress)


def labelled_item(sample: LabelledInput) -> dict[str, Any]:
    """A calibration reader's sample (numpy/OpenCV only, no torch) as an evaluation item."""
    height, width = sample.co2.shape[-2:]
    empty = np.zeros((height, width), np.uint8)
    return {
        "co2": sample.co2[0],
        "ch4": sample.ch4[0],
        "modality_mask": sample.modality_mask[0],
        "ph_class": sample.ph_class,
        "co2_mask": empty if sample.co2_mask is None else sample.co2_mask,
        "ch4_mask": empty if sample.ch4_mask is None else sample.ch4_mask,
    }


def evaluate_items(
    backend: Backend,
    model: str,
    data: Path,
    count: int,
    items: Iterable[dict[str, Any]],
    progress: Progress | None = None,
    on_prediction: Callable[[Prediction], None] | None = None,
) -> EvalReport:
    """Metrics of a loaded backend on `count` items of the split `data` (co2/ch4 (1,H,W), masks, modality_mask,
    ph_class); `on_prediction` sees every result (the model-update gate counts non-finite outputs with it)."""
    started = time.perf_counter()
    accumulator = MetricAccumulator()
    by_case = {case: MetricAccumulator() for case in MODALITY_CASES}
    case_samples = dict.fromkeys(MODALITY_CASES, 0)
    size = backend.input_size
    task = progress.add_task("evaluating", total=count) if progress is not None else None
    for item in items:
        for case, case_item in modality_inputs(item).items():
            prediction = backend.infer(case_item["co2"][None], case_item["ch4"][None], case_item["modality_mask"][None])
            if on_prediction is not None:
                on_prediction(prediction)
            score_prediction(by_case[case], prediction, case_item)
            case_samples[case] += 1
            if np.array_equal(case_item["modality_mask"], item["modality_mask"]):  # the sample as recorded
                score_prediction(accumulator, prediction, item)
        if progress is not None and task is not None:
            progress.advance(task)
    return EvalReport(
        model=model,
        backend=backend.name,
        data=str(data),
        samples=count,
        input_size=(size[0], size[1]),
        seconds=round(time.perf_counter() - started, 3),
        metrics=accumulator.compute(),
        confusion_matrix=None if accumulator.ph is None else accumulator.ph.tolist(),
        by_modality={case: acc.compute() for case, acc in by_case.items() if case_samples[case]},
        modality_samples=case_samples,
    )


# Rows of the per-modality table: what a reader compares across cases.
MODALITY_ROWS = ("balanced_accuracy", "macro_f1", "accuracy", "gas_iou", "co2_iou_gas", "ch4_iou_gas")


def modality_table(report: EvalReport) -> Table:
    """Headline metrics per modality case beside the overall ones (samples as recorded)."""
    table = Table(title="by modality (each pair also scored with one camera masked out)")
    table.add_column("metric", no_wrap=True)
    columns = [("as recorded", report.metrics, report.samples)] + [
        (case, report.by_modality[case], report.modality_samples[case]) for case in report.by_modality
    ]
    for name, _, n in columns:
        table.add_column(f"{name}\nn={n}", justify="right")
    for row in MODALITY_ROWS:
        values = [m.get(row, math.nan) for _, m, _ in columns]
        if all(math.isnan(v) for v in values):
            continue
        table.add_row(row, *(metric_text(row, v) for v in values))
    return table


def eval_command(
    model: Path, data: Path, json_path: Path | None, device: str, data_settings: Path | None, limit: int | None
) -> EvalReport:
    """Score, print the metrics table, write the JSON (to `json_path`, or stdout when it is `-`)."""
    json_to_stdout = json_path is not None and str(json_path) == "-"
    bars = Progress(
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=json_to_stdout,
        transient=True,
    )
    with bars:
        report = evaluate_file(model, data, device=device, data_settings=data_settings, limit=limit, progress=bars)
    if json_to_stdout:
        print(report.to_json())
        return report
    console.print(
        metrics_table(
            report.metrics,
            f"{Path(model).name} on {data.name} ({report.samples} samples, "
            f"{report.backend}, {report.input_size[0]}x{report.input_size[1]})",
        )
    )
    console.print(modality_table(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(report.to_json() + "\n", encoding="utf-8")
        console.print(f"wrote {json_path}; plots: {', '.join(str(p) for p in write_plots(report, json_path))}")
    print_next(next_command(model, data))
    return report


def write_plots(report: EvalReport, json_path: Path) -> list[Path]:
    """The pH confusion matrix and the per-modality bars beside the JSON: NAME.confusion.png, NAME.modalities.png."""
    from fume_edge.train import plots

    stem = json_path.with_suffix("")
    written = []
    if report.confusion_matrix is not None:
        written.append(plots.plot_confusion(np.array(report.confusion_matrix), f"{stem}.confusion.png"))
    cases = {"as recorded": report.metrics, **report.by_modality}
    written.append(plots.plot_modalities(cases, MODALITY_ROWS, f"{stem}.modalities.png"))
    return written


def next_command(model: Path, data: Path) -> str:
    """After scoring: a checkpoint is exported next; an ONNX or engine runs (on the split's own frames)."""
    if model.suffix.lower() in (".pt", ".pth"):  # a run's best.pt is named after its run folder
        name = model.parent.name if model.name in ("best.pt", "last.pt") else model.stem
        return f"fume-edge export {model} -o engines/{name}.onnx"
    return f"fume-edge run --model {model} --co2 synthetic --ch4 synthetic"
