"""A roofline upper bound on model-only FPS on a Jetson, from the ONNX graph and the device's dense peaks.

Per node, at a precision (fp16: 2 bytes per float element; int8: 1 byte, integer tensors keep their own size):
- FLOPs: Conv 2·out·(Cin/groups)·kh·kw, MatMul/Gemm 2·out·K, any other op one per element of its largest tensor;
- bytes moved: the node's activation inputs, outputs and weights, once each; pointwise ops (ReLU, Clip, Add, Mul,
  Sigmoid, ...) count no bytes, since TensorRT fuses them into the producing kernel; pure shape ops count nothing;
- time: max(FLOPs / peak, bytes / bandwidth), where Conv/MatMul/Gemm run at the tensor-core peak of the precision
  (int8 or fp16) and every other op at the fp16 peak.
The bound is the sum of node times: no real kernel is faster than its roofline, so no engine beats this FPS. It is
always printed as an upper bound, never as a measurement. The "expected" figure is a range built from the
efficiency (achieved FLOPs / dense peak) a published small CNN reached on a Jetson (`devices.yaml: reference`):
at best this model's FLOPs run at that efficiency (capped by the bound); at worst the whole roofline, memory
traffic included, runs at it. This model is memory-bound on every Jetson, so the truth lies between.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from fume_edge.config import ConfigModel, TopConfig, load_config, validate, yaml_layer
from fume_edge.errors import FumeEdgeError

PRECISIONS = ("fp16", "int8")
STATION_FPS = 30.0  # what one station's cameras deliver: the unit of `stations_at_30fps`
TENSOR_OPS = {"Conv", "MatMul", "Gemm"}
POINTWISE = {
    "Relu",
    "Clip",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Cast",
    "LeakyRelu",
    "Tanh",
    "Exp",
    "Sqrt",
    "Neg",
    "Abs",
    "BatchNormalization",
    "Min",
    "Max",
    "QuantizeLinear",
    "DequantizeLinear",
}
SHAPE_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Shape", "Constant", "ConstantOfShape", "Concat", "Identity"}


@dataclass(frozen=True)
class Device:
    key: str
    name: str
    int8_dense_tops: float
    fp16_dense_tflops: float
    bandwidth_gbs: float
    source: str

    def tensor_peak(self, precision: str) -> float:
        """Dense ops/s of the tensor cores at a precision."""
        return 1e12 * (self.int8_dense_tops if precision == "int8" else self.fp16_dense_tflops)


@dataclass(frozen=True)
class NodeCost:
    name: str
    op: str
    flops: float
    bytes: dict[str, float]  # per precision


Peak = Annotated[float, Field(gt=0, le=1e6)]  # TOPS, TFLOPS or GB/s
Millis = Annotated[float, Field(gt=0, le=1e6)]


class DeviceSpec(TopConfig):
    """One Jetson module in `fume_edge/bench/devices.yaml`, or a user's device YAML (`--estimate board.yaml`, where
    name and source may be left out)."""

    defaults_name = None

    name: str | None = None
    int8_dense_tops: Peak
    fp16_dense_tflops: Peak
    bandwidth_gbs: Peak
    source: str | None = None


class Reference(ConfigModel):
    """The published measurement the "expected" figure is scaled from."""

    model: str
    device: str
    gflops: Peak
    fp16_ms: Millis
    int8_ms: Millis
    source: str


class DeviceTable(ConfigModel):
    """`fume_edge/bench/devices.yaml`."""

    devices: dict[str, DeviceSpec]
    reference: Reference


@functools.cache
def _table() -> DeviceTable:
    text = resources.files("fume_edge.bench").joinpath("devices.yaml").read_text(encoding="utf-8")
    return validate(DeviceTable, yaml_layer(text, "fume_edge/bench/devices.yaml", "default"), "devices.yaml")


def _device(key: str, spec: DeviceSpec, source: str) -> Device:
    return Device(
        key, spec.name or key, spec.int8_dense_tops, spec.fp16_dense_tflops, spec.bandwidth_gbs, spec.source or source
    )


def known_devices() -> dict[str, Device]:
    return {key: _device(key, spec, "devices.yaml") for key, spec in _table().devices.items()}


def reference() -> dict[str, Any]:
    return _table().reference.model_dump()


def load_devices(spec: str) -> list[Device]:
    """`all`, a known device key, or a YAML file with one device's keys."""
    devices = known_devices()
    if spec == "all":
        return list(devices.values())
    if spec in devices:
        return [devices[spec]]
    path = Path(spec)
    if path.suffix.lower() in (".yaml", ".yml"):
        return [_device(path.stem, load_config(DeviceSpec, path), f"user file {path}")]
    raise FumeEdgeError(
        f"--estimate {spec!r}: choose {', '.join(devices)}, all, or a device YAML "
        f"(int8_dense_tops, fp16_dense_tflops, bandwidth_gbs)"
    )


def _elements(shape: list[int] | None) -> int:
    return int(np.prod(shape)) if shape else 0


def graph_costs(model: Any, batch: int = 1) -> list[NodeCost]:
    """FLOPs and bytes of every node of a static-shape ONNX model (`onnx.ModelProto`), run at `batch` times the
    graph's own batch: activations and FLOPs scale with it, weights are read once per call."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    info: dict[str, tuple[list[int], int]] = {}  # name -> (shape, elem_type)
    for value in list(graph.value_info) + list(graph.input) + list(graph.output):
        tensor = value.type.tensor_type
        info[value.name] = ([d.dim_value for d in tensor.shape.dim], tensor.elem_type)
    weights = {t.name: (list(t.dims), t.data_type) for t in graph.initializer}
    constant_outputs = {o for n in graph.node if n.op_type == "Constant" for o in n.output}

    def nbytes(name: str, precision: str) -> float:
        shape, dtype = weights.get(name) or info.get(name) or ([], 0)
        floaty = dtype in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
        size = (
            (1 if precision == "int8" else 2)
            if floaty
            else onnx.helper.tensor_dtype_to_np_dtype(dtype).itemsize
            if dtype
            else 0
        )
        return float(_elements(shape) * size * (1 if name in weights else batch))

    costs = []
    for node in graph.node:
        inputs = [i for i in node.input if i and i not in constant_outputs]
        if node.op_type in SHAPE_OPS:
            continue
        out_shape = info.get(node.output[0], ([], 0))[0]
        if node.op_type == "Conv":
            w = weights[node.input[1]][0] if node.input[1] in weights else info[node.input[1]][0]
            flops = 2.0 * _elements(out_shape) * int(np.prod(w[1:]))
        elif node.op_type in ("MatMul", "Gemm"):
            a = (weights.get(node.input[0]) or info[node.input[0]])[0]
            transposed = node.op_type == "Gemm" and any(at.name == "transA" and at.i for at in node.attribute)
            flops = 2.0 * _elements(out_shape) * (a[-2] if transposed else a[-1])
        else:
            flops = float(max([_elements(out_shape)] + [_elements(info.get(i, ([], 0))[0]) for i in inputs]))
        if node.op_type in POINTWISE:
            moved = {p: 0.0 for p in PRECISIONS}
        else:
            moved = {p: sum(nbytes(t, p) for t in [*inputs, *node.output]) for p in PRECISIONS}
        costs.append(NodeCost(node.name or node.op_type, node.op_type, flops * batch, moved))
    return costs


def roofline(costs: list[NodeCost], device: Device, precision: str) -> dict[str, float]:
    """Bound time (s) and FPS, and how much of it is memory-bound, for one device and precision."""
    bandwidth = device.bandwidth_gbs * 1e9
    total = memory_bound = 0.0
    for cost in costs:
        peak = device.tensor_peak(precision if cost.op in TENSOR_OPS else "fp16")
        compute_s, memory_s = cost.flops / peak, cost.bytes[precision] / bandwidth
        total += max(compute_s, memory_s)
        memory_bound += memory_s if memory_s > compute_s else 0.0
    return {"bound_ms": 1000 * total, "bound_fps": 1.0 / total, "memory_bound_share": memory_bound / total}


def efficiency(precision: str) -> float:
    """Achieved FLOPs / dense peak of the reference measurement (`devices.yaml: reference`)."""
    ref = _table().reference
    device = known_devices()[ref.device]
    achieved = ref.gflops * 1e9 / ((ref.int8_ms if precision == "int8" else ref.fp16_ms) / 1000)
    return achieved / device.tensor_peak(precision)


def estimate(model_path: Path, devices: list[Device], batch: int = 1) -> dict[str, Any]:
    """The bound and expected FPS (pairs per second) of a model on each device at FP16 and INT8, one call taking
    `batch` pairs (one per station), with the graph's totals and how many 30-FPS stations that carries."""
    import onnx

    try:
        model = onnx.load(str(model_path))
    except Exception as exc:  # protobuf DecodeError and onnx's own errors
        raise FumeEdgeError(f"{model_path}: not a readable ONNX file ({type(exc).__name__})") from None
    costs = graph_costs(model, batch)
    flops = sum(c.flops for c in costs)
    rows = []
    for device in devices:
        for precision in PRECISIONS:
            bound = roofline(costs, device, precision)
            eff = efficiency(precision)
            # High end: the reference's FLOP efficiency on this model's FLOPs (never above the bound); low end: the
            # whole roofline held to that same fraction, as if memory traffic reached no better share of bandwidth.
            high_s = max(bound["bound_ms"] / 1000, flops / (device.tensor_peak(precision) * eff))
            low_s = bound["bound_ms"] / 1000 / eff
            rows.append(
                {
                    "device": device.key,
                    "device_name": device.name,
                    "precision": precision,
                    "bound_fps": round(batch * bound["bound_fps"], 1),
                    "bound_ms": round(bound["bound_ms"], 3),
                    "memory_bound_share": round(bound["memory_bound_share"], 3),
                    "expected_fps": [round(batch / low_s, 1), round(batch / high_s, 1)],
                    "stations_at_30fps": [int(batch / low_s // STATION_FPS), int(batch / high_s // STATION_FPS)],
                    "efficiency": round(eff, 4),
                    "peak": device.tensor_peak(precision) / 1e12,
                    "bandwidth_gbs": device.bandwidth_gbs,
                    "source": device.source,
                }
            )
    return {
        "model": str(model_path),
        "batch": batch,
        "gflops": round(flops / batch / 1e9, 3),
        "nodes": len(costs),
        "mb_moved": {p: round(sum(c.bytes[p] for c in costs) / batch / 1e6, 2) for p in PRECISIONS},
        "reference": reference(),
        "rows": rows,
    }
