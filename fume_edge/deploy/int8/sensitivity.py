"""Which nodes must stay in float? Measured, one node at a time, then kept in float greedily until accuracy holds.

1. Rank: for every node the full INT8 model quantizes, build a model where *only that node* is quantized and
   measure how far its outputs move from FP32 on a few inputs: the noise-to-signal ratio ‖y_q − y‖² / ‖y‖² of the
   pH logits and of each gas's segmentation logits (exposed for the search: the deployed graph emits argmax ids),
   averaged over the outputs. One-at-a-time isolates each node's own quantization noise; with the calibration
   ranges cached, a build costs tens of milliseconds, so the measurement is cheap.
2. Keep: exclude the top 0, 1, 2, 4, … ranked nodes from quantization until the INT8 report on the search inputs
   is within limits (or `max_float` is reached); the first passing set is kept, so no node stays float without need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import onnx
from onnx import helper

from fume_edge.data.calibration import LabelledInput
from fume_edge.deploy.int8.int8_report import Int8Report, cpu_session, run


class Builder(Protocol):
    """Makes QDQ models from cached ranges (`quantize.Quantizer`)."""

    probe_model: onnx.ModelProto  # the FP32 model with its segmentation logits exposed

    def build(self, nodes: Sequence[str] | None, exclude: Sequence[str], probe: bool = False) -> onnx.ModelProto:
        """Only `nodes` quantized (None: all) minus `exclude`; from the probe model when `probe`."""
        ...


Judge = Callable[[onnx.ModelProto], Int8Report]
Progress = Callable[[int, int], None]

_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class NodeSensitivity:
    name: str
    op_type: str
    error: float  # mean output noise-to-signal ratio with only this node quantized


@dataclass(frozen=True)
class SearchStep:
    kept_float: int
    gas_iou_drop: float
    ph_agreement: float
    passed: bool


@dataclass
class SensitivityResult:
    ranking: list[NodeSensitivity]
    kept_float: list[str]
    steps: list[SearchStep] = field(default_factory=list)


_INPUT_QUANTIZED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Add"})


def quantized_nodes(qdq: onnx.ModelProto) -> list[tuple[str, str]]:
    """(name, op type) of the nodes running quantized: they read a DequantizeLinear and feed a QuantizeLinear, or
    (the TensorRT target, which quantizes inputs only) are a weighted layer or an Add reading one.

    A float node may still read a DequantizeLinear (its producer's output is quantized), so reading one alone
    does not make a node quantized.
    """
    dequantized = {n.output[0] for n in qdq.graph.node if n.op_type == "DequantizeLinear"}
    quantized = {n.input[0] for n in qdq.graph.node if n.op_type == "QuantizeLinear"}
    return [
        (n.name, n.op_type)
        for n in qdq.graph.node
        if n.op_type not in _QDQ_OPS
        and n.name
        and any(i in dequantized for i in n.input)
        and (n.op_type in _INPUT_QUANTIZED_OPS or any(o in quantized for o in n.output))
    ]


def expose_logits(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose ArgMax inputs (the segmentation logits) are graph outputs too, so the search can measure them."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    for node in model.graph.node:
        if node.op_type == "ArgMax" and node.input[0] not in outputs:
            probe.graph.output.append(helper.make_tensor_value_info(node.input[0], onnx.TensorProto.FLOAT, None))
            outputs.add(node.input[0])
    return probe


def output_error(reference: list[dict[str, np.ndarray]], outputs: list[dict[str, np.ndarray]]) -> float:
    """Mean over float outputs of ‖y_q − y‖² / ‖y‖², summed over the inputs first."""
    ratios = []
    for name, value in reference[0].items():
        if not np.issubdtype(value.dtype, np.floating):
            continue
        noise = sum(
            float(np.sum((o[name].astype(np.float64) - r[name]) ** 2)) for r, o in zip(reference, outputs, strict=True)
        )
        signal = sum(float(np.sum(r[name].astype(np.float64) ** 2)) for r in reference)
        ratios.append(noise / max(signal, 1e-30))
    return float(np.mean(ratios)) if ratios else 0.0


def rank_nodes(
    builder: Builder,
    candidates: Sequence[tuple[str, str]],
    items: Sequence[LabelledInput],
    progress: Progress | None = None,
) -> list[NodeSensitivity]:
    """Quantize each candidate alone in the logits-exposing probe model; most harmful first."""
    reference_session = cpu_session(builder.probe_model.SerializeToString())
    reference = run(reference_session, items)
    ranking = []
    for done, (name, op_type) in enumerate(candidates, start=1):
        session = cpu_session(builder.build([name], [], probe=True).SerializeToString())
        ranking.append(NodeSensitivity(name, op_type, output_error(reference, run(session, items))))
        if progress:
            progress(done, len(candidates))
    return sorted(ranking, key=lambda s: -s.error)


def keep_float(
    ranking: Sequence[NodeSensitivity],
    builder: Builder,
    judge: Judge,
    excluded: Sequence[str],
    max_float: int,
    progress: Progress | None = None,
) -> tuple[list[str], list[SearchStep]]:
    """Greedy: the fewest top-ranked nodes (0, 1, 2, 4, …, `max_float`) in float that make `judge` pass."""
    harmful = [s.name for s in ranking if s.error > 0]
    sizes = sorted({0, min(max_float, len(harmful))} | {2**i for i in range(16) if 2**i < min(max_float, len(harmful))})
    steps: list[SearchStep] = []
    for done, k in enumerate(sizes, start=1):
        report = judge(builder.build(None, [*excluded, *harmful[:k]]))
        steps.append(SearchStep(k, report.gas_iou_drop, report.ph_agreement, report.passed))
        if report.passed:
            break
        if progress:
            progress(done, len(sizes))
    if progress:
        progress(len(sizes), len(sizes))  # a passing step ends the search early
    return harmful[: steps[-1].kept_float], steps


def sensitivity_search(
    builder: Builder,
    full_int8: onnx.ModelProto,
    judge: Judge,
    items: Sequence[LabelledInput],
    excluded: Sequence[str] = (),
    max_float: int = 16,
    op_types: Sequence[str] = (),
    progress: Callable[[str], Progress | None] | None = None,
) -> SensitivityResult:
    """Rank the quantized nodes of `full_int8` (of `op_types`, default all) on `items`; keep the fewest in float.

    `progress(stage)` returns the callback for one stage ("ranking nodes", "keeping nodes in float").
    """
    stage = progress or (lambda name: None)
    candidates = [
        (name, op)
        for name, op in quantized_nodes(full_int8)
        if name not in set(excluded) and (not op_types or op in op_types)
    ]
    ranking = rank_nodes(builder, candidates, items, stage("ranking nodes"))
    kept, steps = keep_float(ranking, builder, judge, excluded, max_float, stage("keeping nodes in float"))
    return SensitivityResult(ranking, kept, steps)
