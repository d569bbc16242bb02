"""Will TensorRT's ONNX parser take this graph? Checked on the CPU, because no builder installs here (DESIGN §8).

The rules are those of onnx-tensorrt's `docs/operators.md` for TensorRT 8.5 GA, the oldest TensorRT that parses
opset 17 (the opset we export); 8.6 and 10.x parse a superset. Beyond the operator list:

- every graph input and output has a static shape, and none is int64 or double (the engine's I/O bindings);
- QuantizeLinear / DequantizeLinear carry an explicit int8 zero point that is all zeros (TensorRT's explicit
  quantization is symmetric int8; an omitted zero point means uint8 in ONNX, which it refuses too);
- Conv/ConvTranspose weights are constants (an initializer, or the DequantizeLinear of one in a QDQ graph);
- inputs the parser needs at build time (Slice axes, Squeeze/Unsqueeze axes, TopK K, CumSum axis) are constants;
- Resize uses a mode and coordinate transformation TensorRT implements.

`check_tensorrt_compatible(model)` returns a list of problems (empty when the graph is fine), so tests and
`fume-edge quantize` can say everything wrong at once.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

MAX_OPSET = 17

# Operators onnx-tensorrt 8.5 GA marks "Y" (docs/operators.md), restricted to the standard opset-17 domain.
SUPPORTED_OPS: frozenset[str] = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip
Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout
Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm GlobalAveragePool
GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GRU HardSigmoid HardSwish Identity If
InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul
Max MaxPool Mean MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad Pow PRelu
QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2
ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape
Resize ReverseSequence RNN RoiAlign Round Scan ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh
Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK
Transpose Trilu Unsqueeze Where Xor
""".split())

# (op type, input index) that the parser needs as a build-time constant.
CONSTANT_INPUTS: dict[str, tuple[int, ...]] = {
    "Slice": (3,), "Squeeze": (1,), "Unsqueeze": (1,), "TopK": (1,), "CumSum": (1,), "Conv": (1,), "ConvTranspose": (1,),
}
RESIZE_MODES = frozenset({"nearest", "linear"})
RESIZE_COORDINATE_MODES = frozenset({"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"})
IO_REFUSED_TYPES = {TensorProto.INT64: "int64", TensorProto.DOUBLE: "double", TensorProto.UINT64: "uint64"}


def _opset(model: onnx.ModelProto) -> int | None:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return None


def _io_problems(model: onnx.ModelProto) -> Iterable[str]:
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            tensor_type = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim]
            if not tensor_type.HasField("shape") or any(not isinstance(d, int) or d <= 0 for d in dims):
                yield f"{kind} {value.name!r} has a dynamic shape {dims}; export a static shape (--size)"
            if tensor_type.elem_type in IO_REFUSED_TYPES:
                yield f"{kind} {value.name!r} is {IO_REFUSED_TYPES[tensor_type.elem_type]}; TensorRT I/O must be float32/float16/int32/int8/bool"


class _Constants:
    """The graph's build-time constants: initializers and Constant-node outputs, by tensor name."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.values: dict[str, TensorProto] = {t.name: t for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self.values[node.output[0]] = attr.t
        self.dequantized = {node.output[0] for node in graph.node
                            if node.op_type == "DequantizeLinear" and node.input[0] in self.values}

    def is_constant(self, name: str) -> bool:
        return name in self.values or name in self.dequantized


def _zero_point_problem(node: onnx.NodeProto, constants: _Constants) -> str | None:
    where = f"{node.op_type} {node.name or node.output[0]!r}"
    if len(node.input) < 3 or not node.input[2]:
        return f"{where} has no zero point (ONNX then means uint8); quantize with int8 and explicit zero points"
    tensor = constants.values.get(node.input[2])
    if tensor is None:
        return f"{where}: zero point {node.input[2]!r} is not a constant"
    if tensor.data_type != TensorProto.INT8:
        return f"{where}: zero point is {TensorProto.DataType.Name(tensor.data_type).lower()}, TensorRT needs int8"
    if np.any(numpy_helper.to_array(tensor) != 0):
        return f"{where}: nonzero zero point; TensorRT takes symmetric quantization only (--target tensorrt)"
    return None


def _attribute(node: onnx.NodeProto, name: str, default: str) -> str:
    for attr in node.attribute:
        if attr.name == name:
            return attr.s.decode()
    return default


def _node_problems(model: onnx.ModelProto) -> Iterable[str]:
    constants = _Constants(model.graph)
    unsupported: dict[str, int] = {}
    for node in model.graph.node:
        where = f"{node.op_type} {node.name or node.output[0]!r}"
        if node.domain not in ("", "ai.onnx"):
            yield f"{where} is in domain {node.domain!r}; TensorRT parses the standard ONNX domain only"
            continue
        if node.op_type not in SUPPORTED_OPS:
            unsupported[node.op_type] = unsupported.get(node.op_type, 0) + 1
            continue
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            problem = _zero_point_problem(node, constants)
            if problem:
                yield problem
        for index in CONSTANT_INPUTS.get(node.op_type, ()):
            if index < len(node.input) and node.input[index] and not constants.is_constant(node.input[index]):
                yield f"{where}: input {index} ({node.input[index]!r}) must be a constant for TensorRT"
        if node.op_type == "Resize":
            mode, coords = _attribute(node, "mode", "nearest"), _attribute(node, "coordinate_transformation_mode", "half_pixel")
            if mode not in RESIZE_MODES or coords not in RESIZE_COORDINATE_MODES:
                yield f"{where}: Resize mode {mode!r} with {coords!r} coordinates is not supported by TensorRT"
    for op_type, count in sorted(unsupported.items()):
        yield f"operator {op_type} ({count} node(s)) is not in TensorRT's ONNX parser support list (opset {MAX_OPSET})"


def check_tensorrt_compatible(model: onnx.ModelProto) -> list[str]:
    """Every reason TensorRT ≥ 8.5 would refuse to parse `model` (an empty list: it parses)."""
    problems = []
    opset = _opset(model)
    if opset is None or opset > MAX_OPSET:
        problems.append(f"opset {opset} is above {MAX_OPSET}, the newest TensorRT 8.5/8.6 parse; export with opset {MAX_OPSET}")
    problems += _io_problems(model)
    problems += _node_problems(model)
    return problems
