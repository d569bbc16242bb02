"""Will TensorRT's ONNX parser take this graph, and build it as intended? Checked on the CPU (`fume-edge check`).

The operator list and opset range of each TensorRT version are package data (`trt_ops/trt<VERSION>.txt`), each
taken from onnx-tensorrt's `docs/operators.md` of that release (the file's header cites it). Beyond those:

- every graph input and output has a static shape (but for the batch of an `export --dynamic-batch` model, which
  `build-engine` gives an optimization profile) and a type TensorRT binds as I/O in that version (`IO_TYPES`,
  from each version's `DataType` list: INT64 and BF16 from 10.0 on; never double);
- QuantizeLinear / DequantizeLinear carry an explicit int8 zero point that is all zeros (TensorRT's explicit
  quantization is symmetric int8; an omitted zero point means uint8 in ONNX, which it refuses too); a per-channel
  scale quantizes weights along their output-channel axis (Conv: 0, ConvTranspose: 1, MatMul/Gemm: the last axis),
  activations per tensor only;
- Conv/ConvTranspose weights are constants (an initializer, or the DequantizeLinear of one in a QDQ graph);
- inputs the parser needs at build time (Slice axes, Squeeze/Unsqueeze axes, TopK K, CumSum axis, Pad pads/axes,
  Reduce* axes from opset 18, ReduceSum's from 13) are constants;
- Resize uses a mode and coordinate transformation TensorRT implements, no antialias, and the "stretch" aspect
  ratio policy (onnx-tensorrt's docs/operators.md lists the others as unsupported).

`check_onnx(model, version)` returns a `RuleReport` of findings, each naming its node (and tensor); `fume-edge check`,
`export`, `quantize` and `build-engine` stop on errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.contract import META

VERSIONS = ("8.6", "10", "11")
DEFAULT_VERSION = "8.6"  # the oldest supported (JetPack 6.0): what parses there parses everywhere

CONSTANT_INPUTS: dict[str, tuple[int, ...]] = {
    "Slice": (3,),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "TopK": (1,),
    "CumSum": (1,),
    "Conv": (1,),
    "ConvTranspose": (1,),
    "Pad": (1, 3),
    "ReduceSum": (1,),
}
# Reduce* take `axes` as an input (instead of an attribute) from opset 18; TensorRT needs it as an initializer.
REDUCE_OPS = frozenset(
    {
        "ReduceMean",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceSumSquare",
    }
)
RESIZE_MODES = frozenset({"nearest", "linear"})
RESIZE_COORDINATE_MODES = frozenset(
    {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
)
# ONNX types TensorRT binds as engine inputs/outputs, per version (its DataType list: UINT8 I/O from 8.5, INT64 and
# BF16 from 10.0; FP8/INT4/FP4 are internal types, not I/O here).
_IO_8_6: dict[int, str] = {
    TensorProto.FLOAT: "float32",
    TensorProto.FLOAT16: "float16",
    TensorProto.INT8: "int8",
    TensorProto.INT32: "int32",
    TensorProto.BOOL: "bool",
    TensorProto.UINT8: "uint8",
}
_IO_10 = _IO_8_6 | {TensorProto.INT64: "int64", TensorProto.BFLOAT16: "bfloat16"}
IO_TYPES: dict[str, dict[int, str]] = {"8.6": _IO_8_6, "10": _IO_10, "11": _IO_10}


@dataclass(frozen=True)
class OperatorTable:
    version: str
    opset_min: int
    opset_max: int
    operators: frozenset[str]
    source: str  # the header lines citing onnx-tensorrt's docs/operators.md


def version_key(version: str) -> str:
    """'8.6.2.3' → '8.6', '10.3.0' → '10', '11.4' → '11' (the tables in trt_ops/)."""
    parts = version.split(".")
    key = ".".join(parts[:2]) if parts[0] == "8" else parts[0]
    if key not in VERSIONS:
        raise FumeEdgeError(f"--trt {version}: fume-edge knows TensorRT {', '.join(VERSIONS)}")
    return key


@cache
def operator_table(version: str) -> OperatorTable:
    key = version_key(version)
    # joined one part at a time: Python 3.10's Traversable.joinpath takes a single part
    text = (resources.files("fume_edge.deploy.onnx") / "trt_ops" / f"trt{key}.txt").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    opset = next(line for line in lines if line.startswith("opset:")).split()[1:]
    return OperatorTable(
        key,
        int(opset[0]),
        int(opset[1]),
        frozenset(line for line in lines if not line.startswith(("#", "opset:"))),
        "\n".join(line for line in lines if line.startswith("#")),
    )


@dataclass(frozen=True)
class Finding:
    rule: str  # opset, io, domain, operator, zero-point, qdq-axis, constant-input, resize
    message: str  # names the node (and tensor) it is about
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.message}; {self.fix}" if self.fix else self.message


@dataclass(frozen=True)
class RuleReport:
    version: str
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def raise_on_errors(self, path: Path) -> None:
        if self.findings:
            more = (
                f" (+{len(self.findings) - 1} more; `fume-edge check {path}` lists them)"
                if len(self.findings) > 1
                else ""
            )
            raise FumeEdgeError(f"{path}: TensorRT {self.version} would refuse it: {self.findings[0]}{more}")


def _opset(model: onnx.ModelProto) -> int | None:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def _io_findings(model: onnx.ModelProto, version: str) -> Iterator[Finding]:
    allowed = IO_TYPES[version]
    meta = {p.key: p.value for p in model.metadata_props}
    free = 1 if meta.get(META + "dynamic_batch") == "true" else 0  # leading dims that may be dynamic
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            tensor_type = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim]
            if not tensor_type.HasField("shape") or any(not isinstance(d, int) or d <= 0 for d in dims[free:]):
                yield Finding(
                    "io",
                    f"{kind} {value.name!r} has a dynamic shape {dims}",
                    "export a static shape (fume-edge export --size WxH)",
                )
            if tensor_type.elem_type not in allowed:
                kind_name = TensorProto.DataType.Name(tensor_type.elem_type).lower()
                yield Finding(
                    "io",
                    f"{kind} {value.name!r} is {kind_name}",
                    f"TensorRT {version} I/O must be {'/'.join(allowed.values())}: cast it in the graph",
                )


class _Graph:
    """Build-time constants (initializers, Constant outputs, DequantizeLinear of either) and tensor consumers."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.values: dict[str, TensorProto] = {t.name: t for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self.values[node.output[0]] = attr.t
        self.dequantized = {
            node.output[0] for node in graph.node if node.op_type == "DequantizeLinear" and node.input[0] in self.values
        }
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def is_constant(self, name: str) -> bool:
        return name in self.values or name in self.dequantized


def _where(node: onnx.NodeProto) -> str:
    return f"{node.op_type} {node.name or node.output[0]!r}"


def _attribute(node: onnx.NodeProto, name: str, default: str | int) -> str | int:
    for attr in node.attribute:
        if attr.name == name:
            return attr.s.decode() if attr.type == onnx.AttributeProto.STRING else int(attr.i)
    return default


def _zero_point_findings(node: onnx.NodeProto, graph: _Graph) -> Iterator[Finding]:
    fix = "quantize with fume-edge quantize --target tensorrt (symmetric int8)"
    if len(node.input) < 3 or not node.input[2]:
        yield Finding("zero-point", f"{_where(node)} has no zero point (ONNX then means uint8)", fix)
        return
    tensor = graph.values.get(node.input[2])
    if tensor is None:
        yield Finding("zero-point", f"{_where(node)}: zero point {node.input[2]!r} is not a constant", fix)
    elif tensor.data_type != TensorProto.INT8:
        kind = TensorProto.DataType.Name(tensor.data_type).lower()
        yield Finding("zero-point", f"{_where(node)}: zero point is {kind}, TensorRT needs int8", fix)
    elif np.any(numpy_helper.to_array(tensor) != 0):
        yield Finding(
            "zero-point",
            f"{_where(node)}: zero point {node.input[2]!r} is nonzero; TensorRT takes symmetric quantization only",
            fix,
        )


def _accepted_axes(consumer: onnx.NodeProto, rank: int) -> set[int]:
    """The output-channel axis of a weight for `consumer` (TensorRT quantizes weights per output channel)."""
    if consumer.op_type == "Conv":
        return {0}
    if consumer.op_type == "ConvTranspose":
        return {1}
    if consumer.op_type == "Gemm" and _attribute(consumer, "transB", 0):
        return {0}
    return {rank - 1, -1}


def _axis_findings(node: onnx.NodeProto, graph: _Graph) -> Iterator[Finding]:
    scale = graph.values.get(node.input[1])
    if scale is None or len(scale.dims) == 0 or int(np.prod(scale.dims)) == 1:
        return  # per-tensor
    axis = int(_attribute(node, "axis", 1))
    source = graph.values.get(node.input[0])
    if source is None:
        yield Finding(
            "qdq-axis",
            f"{_where(node)}: activation {node.input[0]!r} is quantized per channel (axis {axis})",
            "TensorRT quantizes activations per tensor: quantize with per-tensor activation scales",
        )
        return
    for consumer in graph.consumers.get(node.output[0], []):
        accepted = _accepted_axes(consumer, len(source.dims))
        if axis not in accepted:
            yield Finding(
                "qdq-axis",
                f"{_where(node)}: weight {node.input[0]!r} of {_where(consumer)} is quantized along axis {axis}",
                f"TensorRT takes its output-channel axis {min(accepted)}",
            )


def _constant_inputs(op_type: str, opset: int) -> tuple[int, ...]:
    if op_type in REDUCE_OPS:
        return (1,) if opset >= 18 else ()
    return CONSTANT_INPUTS.get(op_type, ())


def _resize_findings(node: onnx.NodeProto) -> Iterator[Finding]:
    where = _where(node)
    mode = _attribute(node, "mode", "nearest")
    coords = _attribute(node, "coordinate_transformation_mode", "half_pixel")
    if mode not in RESIZE_MODES or coords not in RESIZE_COORDINATE_MODES:
        yield Finding(
            "resize",
            f"{where}: Resize mode {mode!r} with {coords!r} coordinates",
            "TensorRT resizes nearest/linear only: use bilinear upsampling",
        )
    if _attribute(node, "antialias", 0):
        yield Finding("resize", f"{where}: Resize with antialias", "TensorRT's parser has no antialiasing: drop it")
    policy = _attribute(node, "keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        yield Finding(
            "resize",
            f"{where}: Resize keep_aspect_ratio_policy {policy!r}",
            "TensorRT takes 'stretch' only: resize to explicit sizes or scales",
        )


def _node_findings(model: onnx.ModelProto, table: OperatorTable) -> Iterator[Finding]:
    graph = _Graph(model.graph)
    opset = _opset(model) or 0
    for node in model.graph.node:
        where = _where(node)
        if node.domain not in ("", "ai.onnx"):
            yield Finding(
                "domain",
                f"{where} is in domain {node.domain!r}",
                "TensorRT parses the standard ONNX domain only: export without custom ops",
            )
            continue
        if node.op_type not in table.operators:
            yield Finding(
                "operator",
                f"{where}: operator {node.op_type} is not in TensorRT {table.version}'s ONNX parser support list",
                "replace it in the model (or build for a TensorRT that has it)",
            )
            continue
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            yield from _zero_point_findings(node, graph)
            yield from _axis_findings(node, graph)
        for index in _constant_inputs(node.op_type, opset):
            if index < len(node.input) and node.input[index] and not graph.is_constant(node.input[index]):
                yield Finding(
                    "constant-input",
                    f"{where}: input {index} ({node.input[index]!r}) is computed at run time",
                    "TensorRT needs it as a constant: fold it (onnxsim) or make it an initializer",
                )
        if node.op_type == "Resize":
            yield from _resize_findings(node)


def check_onnx(model: onnx.ModelProto, version: str = DEFAULT_VERSION) -> RuleReport:
    """Every reason TensorRT `version` would refuse to parse `model` (no findings: it parses)."""
    table = operator_table(version)
    findings: list[Finding] = []
    opset = _opset(model)
    if opset is None or not table.opset_min <= opset <= table.opset_max:
        findings.append(
            Finding(
                "opset",
                f"model opset {opset} is outside {table.opset_min}..{table.opset_max}, "
                f"what TensorRT {table.version} parses",
                f"export with opset {min(17, table.opset_max)}",
            )
        )
    findings += _io_findings(model, table.version)
    findings += _node_findings(model, table)
    return RuleReport(table.version, tuple(findings))


def check_tensorrt_compatible(model: onnx.ModelProto, version: str = DEFAULT_VERSION) -> list[str]:
    """The findings of `check_onnx` as lines (an empty list: it parses)."""
    return [str(f) for f in check_onnx(model, version).findings]
