"""FP32 ONNX → QDQ INT8 ONNX with onnxruntime.quantization, for TensorRT or for ONNX Runtime on the CPU.

Targets:
- `tensorrt`: int8 activations and weights, symmetric (every zero point 0: TensorRT's explicit quantization refuses
  anything else), per-channel weights, float biases (TensorRT quantizes biases itself and its parser takes int8
  DequantizeLinear only). Q/DQ go where NVIDIA's placement guidance puts them: the inputs of weighted layers (Conv,
  ConvTranspose, Gemm, MatMul) and of residual Adds; Softmax, Sigmoid, Resize, ReduceMean, Mul, ... stay float, for
  TensorRT to fuse (Q/DQ around them only make it insert reformatting layers). The result is checked against
  `trt_rules` before it is written.
- `cpu`: uint8 activations (asymmetric, so ReLU outputs use the whole range) and int8 symmetric per-channel weights:
  the form ONNX Runtime's VNNI/AVX2 kernels run fast; symmetric int8 activations ran slower than FP32 there.

Calibration feeds every held-in pair with both cameras, and each pair once more with one camera off (CO2 and CH4
alternately): a device runs degraded mode through the same graph, and a zeroed stream changes the ranges the fusion
block and the classifier see. Both-present stays half the feeds because it is the normal case. A part of the set
(`HOLDOUT`) is never calibrated on: it drives the sensitivity search and, without `--val`, the accuracy report.
A `--batch N` export is calibrated, searched and judged N pairs a call (`CalibrationFeeds`, `int8_report.run`),
and keeps its metadata, `fume_edge.batch` included.

The adaptive-pooling MatMuls always stay float (`quant_graph.pooling_matmuls` says why); more nodes can be kept
float by name or op type, or by the measured `sensitivity` search. Ranges are computed once and cached (ORT's
calibration cache), so that search rebuilds models in milliseconds. Nothing is written unless the report is within
limits (or `force`), and then atomically.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import onnxruntime
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from fume_edge import __version__
from fume_edge.data.calibration import CalibrationSet, LabelledInput, csv_inputs, load_calibration
from fume_edge.deploy.int8.int8_report import Int8Report, compare_int8, stack
from fume_edge.deploy.onnx.quant_graph import (
    load_fp32,
    model_preprocessing,
    non_residual_adds,
    pooling_matmuls,
    resolve_exclusions,
    set_metadata,
    strip_unused_opsets,
    write_atomically,
)
from fume_edge.deploy.int8.sensitivity import SensitivityResult, expose_logits, quantized_nodes, sensitivity_search
from fume_edge.deploy.onnx.trt_rules import check_tensorrt_compatible
from fume_edge.errors import FumeEdgeError
from fume_edge.hashing import sha256_file
from fume_edge.runtime.contract import rows_per_call

METHODS = {
    "entropy": CalibrationMethod.Entropy,
    "minmax": CalibrationMethod.MinMax,
    "percentile": CalibrationMethod.Percentile,
}
HOLDOUT = 0.2
CASES = ("both", "co2 only", "ch4 only")

# (stage name) -> progress callback (done, total), or None for no progress display
StageProgress = Callable[[str], Callable[[int, int], None] | None]


@dataclass(frozen=True)
class QuantizeOptions:
    target: str = "tensorrt"
    method: str = "minmax"
    exclude: tuple[str, ...] = ()  # node names, op types or fnmatch patterns of names
    sensitivity: bool = False
    max_float: int = 16  # most nodes the sensitivity search may keep in float
    sensitivity_inputs: int = 8  # inputs the per-node ranking measures on
    sensitivity_ops: tuple[str, ...] = ()  # op types the search ranks (default: every quantized node)
    modalities: str = "all"  # "all": also calibrate single-camera cases; "both": pairs only
    force: bool = False

    def validate(self) -> None:
        if self.target not in TARGET_SETTINGS:
            raise FumeEdgeError(f"--target {self.target!r}: choose one of {', '.join(TARGET_SETTINGS)}")
        if self.method not in METHODS:
            raise FumeEdgeError(f"--method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.modalities not in ("all", "both"):
            raise FumeEdgeError(f"--modalities {self.modalities!r}: choose all or both")

    @property
    def settings(self) -> TargetSettings:
        return TARGET_SETTINGS[self.target]


@dataclass(frozen=True)
class TargetSettings:
    """What quantize_static is told for one target (per-channel int8 weights for both)."""

    activation_type: QuantType
    weight_type: QuantType
    extra_options: dict[str, object]
    description: str
    op_types: tuple[str, ...] | None = None  # the op types whose inputs get Q/DQ (None: every one ORT quantizes)


# NVIDIA's Q/DQ placement (TensorRT developer guide, "Q/DQ Layer-Placement Recommendations"): weighted layers and
# residual Adds (`quant_graph.non_residual_adds` leaves bias Adds out).
TENSORRT_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add")

TARGET_SETTINGS = {
    # Outputs stay float (TensorRT fuses Conv+ReLU+Q at the next layer's input); a dedicated Q/DQ pair per consumer
    # keeps a tensor's float readers (Softmax, Resize, ...) float.
    "tensorrt": TargetSettings(
        QuantType.QInt8,
        QuantType.QInt8,
        {
            "ActivationSymmetric": True,
            "WeightSymmetric": True,
            "QuantizeBias": False,
            "OpTypesToExcludeOutputQuantization": list(TENSORRT_OP_TYPES),
            "DedicatedQDQPair": True,
        },
        "int8 symmetric activations, int8 symmetric per-channel weights, float biases",
        TENSORRT_OP_TYPES,
    ),
    "cpu": TargetSettings(
        QuantType.QUInt8,
        QuantType.QInt8,
        {"WeightSymmetric": True},
        "uint8 asymmetric activations, int8 symmetric per-channel weights",
    ),
}


class CalibrationFeeds(CalibrationDataReader):
    """The calibration inputs as ORT's reader: pairs both-present, then (modalities "all") one camera off each.

    Each feed holds `rows` inputs stacked, the batch of the graph being calibrated (`graph_rows`). A last partial
    group is filled by repeating inputs from the start of the plan rather than dropped: a repeated input adds no
    value a min/max has not already seen, so the default minmax ranges are those of the batch-1 export exactly,
    while dropping would lose up to rows − 1 inputs and their extremes (the histogram methods count the repeats
    once more, a weight of at most rows − 1 inputs in the whole set).
    """

    def __init__(
        self,
        cset: CalibrationSet,
        indices: Sequence[int],
        modalities: str,
        progress: Callable[[int, int], None] | None = None,
        rows: int = 1,
    ) -> None:
        self.cset, self.rows = cset, rows
        plan = [(i, "both") for i in indices]
        if modalities == "all":
            plan += [(i, CASES[1 + n % 2]) for n, i in enumerate(indices)]
        groups = -(-len(plan) // rows)
        padded = list(itertools.islice(itertools.cycle(plan), groups * rows)) if plan else []
        self.groups = [padded[g * rows : (g + 1) * rows] for g in range(groups)]
        self.progress = progress
        self.position, self.end, self.done = 0, len(self.groups), 0

    def get_next(self) -> dict | None:
        if self.position >= self.end:
            return None
        items = [self.cset.item(*entry) for entry in self.groups[self.position]]
        self.position += 1
        self.done += 1
        if self.progress:
            self.progress(self.done, len(self.groups))
        return stack(items)

    def __len__(self) -> int:
        return len(self.groups)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.position, self.end = start_index, min(end_index, len(self.groups))


def graph_rows(model: onnx.ModelProto) -> int:
    """Inputs per call the graph takes (`rows_per_call` of its first input's batch dimension; 0: symbolic)."""
    return rows_per_call(model.graph.input[0].type.tensor_type.shape.dim[0].dim_value)


def calibration_stride(feeds: int, largest: int = 8) -> int:
    """Feeds per calibration batch: ORT needs a divisor of the total; small batches bound histogram memory (a feed
    of N stacked inputs counts N toward `largest`, see `Quantizer.calibrate`)."""
    return max(d for d in range(1, largest + 1) if feeds % d == 0)


@dataclass
class QuantizeResult:
    output: Path
    written: bool
    report: Int8Report
    excluded: list[str]
    quantized_nodes: int
    sensitivity: SensitivityResult | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class Quantizer:
    """Owns the working folder: the pre-processed model, the logits probe and the cached calibration ranges."""

    def __init__(self, fp32_path: Path, options: QuantizeOptions) -> None:
        self.options = options
        self._tmp = tempfile.TemporaryDirectory(prefix="fume-edge-quant-")
        self.work = Path(self._tmp.name)
        self.pre = self.work / "pre.onnx"
        self.probe = self.work / "probe.onnx"
        self.ranges = self.work / "ranges.json"
        quant_pre_process(str(fp32_path), str(self.pre), skip_symbolic_shape=True)
        self.pre_model = onnx.load(str(self.pre))
        self.probe_model = expose_logits(self.pre_model)
        self.placement_exclusions = non_residual_adds(self.pre_model) if options.settings.op_types else []
        onnx.save(self.probe_model, str(self.probe))

    def calibrate(self, feeds: CalibrationFeeds) -> onnx.ModelProto:
        """Compute and cache every tensor's range; returns the model with every quantizable node quantized."""
        stride = calibration_stride(len(feeds), max(1, 8 // feeds.rows))
        extra = {**self.options.settings.extra_options, "CalibStridedMinMax": stride}
        return self._quantize(self.pre, None, [], feeds, extra)

    def build(self, nodes: Sequence[str] | None, exclude: Sequence[str], probe: bool = False) -> onnx.ModelProto:
        """A QDQ model from the cached ranges: only `nodes` quantized (None: all) minus `exclude`."""
        return self._quantize(self.probe if probe else self.pre, nodes, exclude, None, None)

    def _quantize(
        self,
        source: Path,
        nodes: Sequence[str] | None,
        exclude: Sequence[str],
        feeds: CalibrationFeeds | None,
        extra: dict[str, object] | None,
    ) -> onnx.ModelProto:
        settings = self.options.settings
        out = self.work / "out.onnx"
        quantize_static(
            str(source),
            str(out),
            feeds,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=settings.activation_type,
            weight_type=settings.weight_type,
            nodes_to_quantize=list(nodes) if nodes is not None else None,
            nodes_to_exclude=[*exclude, *self.placement_exclusions],
            op_types_to_quantize=list(settings.op_types) if settings.op_types else None,
            calibrate_method=METHODS[self.options.method],
            extra_options=extra or settings.extra_options,
            calibration_cache_path=str(self.ranges),
        )
        model = onnx.load(str(out))
        strip_unused_opsets(model)
        return model

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> Quantizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quantization_metadata(
    options: QuantizeOptions, cset: CalibrationSet, fp32_path: Path, excluded: Sequence[str]
) -> dict[str, str]:
    return {
        "fume_edge.precision": "int8",
        "fume_edge.quant.target": options.target,
        "fume_edge.quant.method": options.method,
        "fume_edge.quant.types": options.settings.description,
        "fume_edge.quant.calibration": cset.folder.name,
        "fume_edge.quant.calibration_manifest_sha256": cset.manifest_sha256,
        "fume_edge.quant.modalities": options.modalities,
        "fume_edge.quant.excluded_nodes": json.dumps(list(excluded)),
        "fume_edge.quant.source_onnx_sha256": sha256_file(fp32_path),
        "fume_edge.quant.onnxruntime_version": onnxruntime.__version__,
        "fume_edge.version": __version__,
    }


def _no_progress(stage: str) -> None:
    return None


def _quantize_with_search(
    quantizer: Quantizer,
    cset: CalibrationSet,
    calib_idx: Sequence[int],
    held: list[LabelledInput],
    fp32_path: Path,
    stage: StageProgress,
) -> tuple[onnx.ModelProto, list[str], SensitivityResult | None]:
    """Calibrate, optionally search for the nodes to keep in float, and build the final QDQ model."""
    options = quantizer.options
    excluded = pooling_matmuls(quantizer.pre_model)
    excluded += [n for n in resolve_exclusions(quantizer.pre_model, options.exclude) if n not in excluded]
    rows = graph_rows(quantizer.pre_model)
    full = quantizer.calibrate(CalibrationFeeds(cset, calib_idx, options.modalities, stage("calibrating"), rows))
    if not options.sensitivity:
        return quantizer.build(None, excluded), excluded, None
    search = sensitivity_search(
        quantizer,
        full,
        lambda m: compare_int8(fp32_path, m.SerializeToString(), held),
        held[: options.sensitivity_inputs],
        excluded,
        options.max_float,
        options.sensitivity_ops,
        stage,
    )
    excluded += search.kept_float
    return quantizer.build(None, excluded), excluded, search


def quantize_onnx(
    fp32_path: str | Path,
    calibration: str | Path,
    output: str | Path,
    options: QuantizeOptions = QuantizeOptions(),
    val_csv: str | Path | None = None,
    progress: StageProgress | None = None,
) -> QuantizeResult:
    """Quantize `fp32_path` with the calibration folder, judge it, and write `output` if it passes (or `force`).

    The report runs on every sample of the paired CSV `val_csv` (each with its own modality mask, made by the
    model's own preprocessing); without it, on the held-back calibration pairs in all three modality cases.
    `progress(stage)` returns the callback (done, total) for each long stage.
    """
    options.validate()
    fp32_path, output = Path(fp32_path), Path(output)
    source = load_fp32(fp32_path)
    preprocessing = model_preprocessing(source, fp32_path)
    cset = load_calibration(calibration, preprocessing)
    calib_idx, held_idx = cset.split(HOLDOUT)
    held = [cset.item(i, case) for i in held_idx for case in CASES]
    if val_csv is None:
        count, items = len(held), iter(held)
        description = f"{len(held_idx)} held-back calibration pairs × {len(CASES)} modality cases"
    else:
        count, items = csv_inputs(val_csv, preprocessing)  # read and checked before the long work
        description = str(val_csv)
    stage = progress or _no_progress
    with Quantizer(fp32_path, options) as quantizer:
        model, excluded, search = _quantize_with_search(quantizer, cset, calib_idx, held, fp32_path, stage)
    metadata = {p.key: p.value for p in source.metadata_props} | quantization_metadata(
        options, cset, fp32_path, excluded
    )
    set_metadata(model, metadata)
    if options.target == "tensorrt":
        problems = check_tensorrt_compatible(model)
        if problems:
            raise FumeEdgeError(
                f"{fp32_path}: its INT8 model would not parse in TensorRT: {problems[0]}"
                + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
            )
    report = compare_int8(fp32_path, model.SerializeToString(), items, count, description, stage("accuracy report"))
    set_metadata(model, {"fume_edge.quant.report": json.dumps(report.to_dict())})
    written = report.passed or options.force
    if written:
        write_atomically(model, output)
    return QuantizeResult(
        output,
        written,
        report,
        excluded,
        len(quantized_nodes(model)),
        search,
        {p.key: p.value for p in model.metadata_props},
    )
