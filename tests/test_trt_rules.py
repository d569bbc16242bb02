"""TensorRT parser rules, checked on the CPU: the lead's FP32/FP16 exports pass, and each broken graph is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fume_edge.deploy.onnx_export import export_onnx
from fume_edge.deploy.trt_rules import check_tensorrt_compatible

SIZE = (128, 96)


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
def test_exports_parse_in_tensorrt(imported_checkpoint: Path, tmp_path: Path, fp16: bool) -> None:
    path = export_onnx(imported_checkpoint, tmp_path / "fume.onnx", size=SIZE, fp16=fp16).path
    assert check_tensorrt_compatible(onnx.load(path)) == []


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           initializers: tuple[TensorProto, ...] | list[TensorProto] = (), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _x(shape: tuple[int | str, ...] = (1, 4)) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))


def _qdq(zero_point: TensorProto | None) -> onnx.ModelProto:
    scale = numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s")
    inits = [scale] + ([zero_point] if zero_point is not None else [])
    zp = [zero_point.name] if zero_point is not None else []
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", *zp], ["q"], name="q0"),
             helper.make_node("DequantizeLinear", ["q", "s", *zp], ["y"], name="dq0")]
    return _model(nodes, [_x()], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)


def test_symmetric_int8_qdq_passes() -> None:
    assert check_tensorrt_compatible(_qdq(numpy_helper.from_array(np.array(0, dtype=np.int8), "zp"))) == []


@pytest.mark.parametrize(
    ("zero_point", "expected"),
    [
        (numpy_helper.from_array(np.array(3, dtype=np.int8), "zp"), "nonzero zero point"),
        (numpy_helper.from_array(np.array(0, dtype=np.uint8), "zp"), "zero point is uint8"),
        (None, "has no zero point"),
    ],
    ids=["nonzero", "uint8", "missing"],
)
def test_bad_zero_points_are_named(zero_point: TensorProto | None, expected: str) -> None:
    problems = check_tensorrt_compatible(_qdq(zero_point))
    assert len(problems) == 2 and all(expected in p for p in problems), problems


def test_dynamic_shape_and_int64_output_are_named() -> None:
    model = _model([helper.make_node("ArgMax", ["x"], ["y"], axis=1)], [_x(("batch", 4))],
                   [helper.make_tensor_value_info("y", TensorProto.INT64, ["batch", 1])])
    problems = check_tensorrt_compatible(model)
    assert any("input 'x' has a dynamic shape" in p for p in problems)
    assert any("output 'y' is int64" in p for p in problems)


def test_unsupported_operator_foreign_domain_and_opset_are_named() -> None:
    nodes = [helper.make_node("Hardmax", ["x"], ["h"]), helper.make_node("Gelu", ["h"], ["y"], domain="com.microsoft")]
    model = _model(nodes, [_x()], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], opset=18)
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    problems = check_tensorrt_compatible(model)
    assert any(p.startswith("opset 18") for p in problems)
    assert any("operator Hardmax (1 node(s))" in p for p in problems)
    assert any("domain 'com.microsoft'" in p for p in problems)


def test_runtime_slice_axes_and_conv_weights_are_named() -> None:
    inputs = [_x((1, 1, 4, 4)), helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 1, 1, 1]),
              helper.make_tensor_value_info("axes", TensorProto.INT64, [1])]
    consts = [numpy_helper.from_array(np.array([0], dtype=np.int64), "starts"),
              numpy_helper.from_array(np.array([2], dtype=np.int64), "ends")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Slice", ["c", "starts", "ends", "axes"], ["y"], name="slice")]
    model = _model(nodes, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 4])], consts)
    problems = check_tensorrt_compatible(model)
    assert any(p.startswith("Conv 'conv': input 1") for p in problems)
    assert any(p.startswith("Slice 'slice': input 3") for p in problems)


def test_cubic_resize_is_named() -> None:
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="cubic")
    model = _model([node], [_x((1, 1, 4, 4))], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])],
                   [scales])
    assert check_tensorrt_compatible(model) == [
        "Resize 'up': Resize mode 'cubic' with 'half_pixel' coordinates is not supported by TensorRT"
    ]
