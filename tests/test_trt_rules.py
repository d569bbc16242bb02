"""TensorRT parser rules per version, checked on the CPU: the bundled model's FP32, FP16 and TensorRT-target INT8
graphs pass for 8.6, 10 and 11, and each kind of violation is refused with its node (and tensor) named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fume_edge.assets import default_model_path
from fume_edge.deploy.tensorrt.engine_onnx import fp16_model, is_qdq
from fume_edge.deploy.onnx.onnx_export import export_onnx
from fume_edge.deploy.onnx.trt_rules import IO_TYPES, VERSIONS, check_onnx, check_tensorrt_compatible, operator_table
from fume_edge.errors import FumeEdgeError

SIZE = (128, 96)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fume_edge", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "250"},
    )


@pytest.fixture(scope="module")
def bundled_graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundled model as FP32, FP16 (what TensorRT 11 builds from) and TensorRT-target INT8 (real quantize)."""
    work = tmp_path_factory.mktemp("bundled_graphs")
    fp16 = work / "fume.fp16.onnx"
    onnx.save(fp16_model(onnx.load(str(default_model_path()))), str(fp16))
    for args in (
        ("synth", "syn", "--pairs", "24", "--seed", "5", "--workers", "2"),
        ("pair", "syn/annotations.csv", "-o", "paired"),
        ("calibrate", "--data", "paired/paired_train.csv", "-o", "calib", "--count", "10"),
        ("quantize", str(default_model_path()), "--calib", "calib", "-o", "int8.onnx", "--force"),
    ):
        done = _cli(*args, cwd=work)
        assert done.returncode == 0, done.stdout + done.stderr
    return {"fp32": default_model_path(), "fp16": fp16, "int8": work / "int8.onnx"}


@pytest.mark.parametrize("form", ["fp32", "fp16", "int8"])
def test_bundled_model_graphs_pass_every_version(bundled_graphs: dict[str, Path], form: str, tmp_path: Path) -> None:
    path = bundled_graphs[form]
    model = onnx.load(str(path))
    assert is_qdq(model) == (form == "int8")
    for version in VERSIONS:
        assert check_onnx(model, version).findings == (), version
    done = _cli("check", str(path), cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.count("passes the parser rules") == 3, done.stdout + done.stderr


def test_int8_places_qdq_as_tensorrt_fuses_it(bundled_graphs: dict[str, Path]) -> None:
    """Every Conv and residual Add reads dequantized inputs; Conv weights are per output channel (axis 0)."""
    model = onnx.load(str(bundled_graphs["int8"]))
    producer = {out: node for node in model.graph.node for out in node.output}
    weights = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Conv" or (node.op_type == "Add" and not set(node.input) & weights):
            assert all(producer[i].op_type == "DequantizeLinear" for i in node.input[:2]), node.name
        if node.op_type == "Conv":
            dq = producer[node.input[1]]
            assert dq.input[0] in weights and helper.get_attribute_value(dq.attribute[0]) == 0, node.name


def test_int8_leaves_non_weighted_ops_float_for_tensorrt_to_fuse(bundled_graphs: dict[str, Path]) -> None:
    """NVIDIA's Q/DQ placement: only weighted layers and residual Adds read dequantized tensors; Softmax, Sigmoid,
    Resize, ReduceMean, Mul, ArgMax (which ORT's default quantizes too) read float ones."""
    model = onnx.load(str(bundled_graphs["int8"]))
    dequantized = {node.output[0] for node in model.graph.node if node.op_type == "DequantizeLinear"}
    readers = {node.op_type for node in model.graph.node if set(node.input) & dequantized}
    assert {"Conv", "Gemm", "MatMul", "Add"} <= readers, readers
    assert not readers & {"Softmax", "Sigmoid", "Resize", "ReduceMean", "Mul", "ArgMax", "Relu", "Clip"}, readers


def test_export_at_a_small_size_passes(imported_checkpoint: Path, tmp_path: Path) -> None:
    path = export_onnx(imported_checkpoint, tmp_path / "fume.onnx", size=SIZE).path
    assert check_tensorrt_compatible(onnx.load(path), "8.6") == []


def test_operator_tables_cite_onnx_tensorrt_and_grow_with_the_version() -> None:
    tables = [operator_table(v) for v in VERSIONS]
    for table in tables:
        assert "onnx/onnx-tensorrt" in table.source and "docs/operators.md" in table.source
        assert {"Conv", "Resize", "ArgMax", "QuantizeLinear", "DequantizeLinear"} <= table.operators
    assert tables[0].operators < tables[1].operators <= tables[2].operators
    assert [(t.opset_min, t.opset_max) for t in tables] == [(9, 17), (9, 20), (9, 24)]
    assert operator_table("10.3.0.26") == tables[1] and operator_table("8.6.2") == tables[0]
    with pytest.raises(FumeEdgeError, match="knows TensorRT 8.6, 10, 11"):
        operator_table("9.3")


# ----- one graph per violation kind -----


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[TensorProto] | tuple[TensorProto, ...] = (),
    opset: int = 17,
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _value(name: str, shape: tuple[int | str, ...] = (1, 4), dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, list(shape))


def _const(name: str, value: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(value, name)


def _qdq(zero_point: TensorProto | None) -> onnx.ModelProto:
    inits = [_const("s", np.array(0.1, np.float32))] + ([zero_point] if zero_point is not None else [])
    zp = [zero_point.name] if zero_point is not None else []
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", *zp], ["q"], name="q0"),
        helper.make_node("DequantizeLinear", ["q", "s", *zp], ["y"], name="dq0"),
    ]
    return _model(nodes, [_value("x")], [_value("y")], inits)


def _weight_dq(axis: int, consumer: str) -> onnx.ModelProto:
    """Int8 weight (4 out, 2 in, 1, 1) dequantized per channel along `axis`, feeding a Conv or ConvTranspose."""
    channels = 4 if axis == 0 else 2
    inits = [
        _const("w_q", np.ones((4, 2, 1, 1), np.int8)),
        _const("w_s", np.full(channels, 0.1, np.float32)),
        _const("w_zp", np.zeros(channels, np.int8)),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_zp"], ["w"], name="w_dq", axis=axis),
        helper.make_node(consumer, ["x", "w"], ["y"], name="layer"),
    ]
    out = (1, 4, 4, 4) if consumer == "Conv" else (1, 2, 4, 4)
    return _model(nodes, [_value("x", (1, 2 if consumer == "Conv" else 4, 4, 4))], [_value("y", out)], inits)


def _activation_per_channel() -> onnx.ModelProto:
    inits = [_const("s", np.full(4, 0.1, np.float32)), _const("zp", np.zeros(4, np.int8))]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="act_q", axis=1),
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="act_dq", axis=1),
    ]
    return _model(nodes, [_value("x")], [_value("y")], inits)


def _runtime_inputs() -> onnx.ModelProto:
    inputs = [_value("x", (1, 1, 4, 4)), _value("w", (1, 1, 1, 1)), _value("axes", (1,), TensorProto.INT64)]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Slice", ["c", "starts", "ends", "axes"], ["y"], name="slice"),
    ]
    return _model(
        nodes,
        inputs,
        [_value("y", (1, 1, 2, 4))],
        [_const("starts", np.array([0], np.int64)), _const("ends", np.array([2], np.int64))],
    )


VIOLATIONS = {
    "operator": (
        lambda: _model([helper.make_node("Hardmax", ["x"], ["y"], name="hm")], [_value("x")], [_value("y")]),
        "operator",
        "Hardmax 'hm': operator Hardmax is not in TensorRT 8.6's ONNX parser support list",
    ),
    "opset": (
        lambda: _model([helper.make_node("Relu", ["x"], ["y"])], [_value("x")], [_value("y")], opset=18),
        "opset",
        "model opset 18 is outside 9..17",
    ),
    "domain": (
        lambda: _model(
            [helper.make_node("Gelu", ["x"], ["y"], name="g", domain="com.microsoft")], [_value("x")], [_value("y")]
        ),
        "domain",
        "Gelu 'g' is in domain 'com.microsoft'",
    ),
    "dynamic-shape": (
        lambda: _model(
            [helper.make_node("Relu", ["x"], ["y"])], [_value("x", ("batch", 4))], [_value("y", ("batch", 4))]
        ),
        "io",
        "input 'x' has a dynamic shape ['batch', 4]",
    ),
    "int64-output": (
        lambda: _model(
            [helper.make_node("ArgMax", ["x"], ["y"], name="am", axis=1)],
            [_value("x")],
            [_value("y", (1, 1), TensorProto.INT64)],
        ),
        "io",
        "output 'y' is int64",
    ),
    "runtime-pad-pads": (
        lambda: _model(
            [helper.make_node("Pad", ["x", "pads"], ["y"], name="pad")],
            [_value("x"), _value("pads", (4,), TensorProto.INT64)],
            [_value("y", (1, 6))],
        ),
        "constant-input",
        "Pad 'pad': input 1 ('pads') is computed at run time",
    ),
    "antialias-resize": (
        lambda: _model(
            [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="linear", antialias=1)],
            [_value("x", (1, 1, 4, 4))],
            [_value("y", (1, 1, 2, 2))],
            [_const("scales", np.array([1, 1, 0.5, 0.5], np.float32))],
            opset=17,
        ),
        "resize",
        "Resize 'up': Resize with antialias",
    ),
    "aspect-ratio-resize": (
        lambda: _model(
            [
                helper.make_node(
                    "Resize", ["x", "", "", "sizes"], ["y"], name="up", keep_aspect_ratio_policy="not_larger"
                )
            ],
            [_value("x", (1, 1, 4, 4))],
            [_value("y", (1, 1, 8, 8))],
            [_const("sizes", np.array([1, 1, 8, 8], np.int64))],
        ),
        "resize",
        "Resize 'up': Resize keep_aspect_ratio_policy 'not_larger'",
    ),
    "double-input": (
        lambda: _model(
            [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
            [_value("x", (1, 4), TensorProto.DOUBLE)],
            [_value("y")],
        ),
        "io",
        "input 'x' is double",
    ),
    "nonzero-zero-point": (
        lambda: _qdq(_const("zp", np.array(3, np.int8))),
        "zero-point",
        "QuantizeLinear 'q0': zero point 'zp' is nonzero",
    ),
    "uint8-zero-point": (
        lambda: _qdq(_const("zp", np.array(0, np.uint8))),
        "zero-point",
        "QuantizeLinear 'q0': zero point is uint8, TensorRT needs int8",
    ),
    "missing-zero-point": (lambda: _qdq(None), "zero-point", "QuantizeLinear 'q0' has no zero point"),
    "weight-axis": (
        lambda: _weight_dq(1, "Conv"),
        "qdq-axis",
        "DequantizeLinear 'w_dq': weight 'w_q' of Conv 'layer' is quantized along axis 1",
    ),
    "activation-per-channel": (
        _activation_per_channel,
        "qdq-axis",
        "QuantizeLinear 'act_q': activation 'x' is quantized per channel (axis 1)",
    ),
    "runtime-conv-weight": (_runtime_inputs, "constant-input", "Conv 'conv': input 1 ('w') is computed at run time"),
    "runtime-slice-axes": (
        _runtime_inputs,
        "constant-input",
        "Slice 'slice': input 3 ('axes') is computed at run time",
    ),
    "cubic-resize": (
        lambda: _model(
            [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="cubic")],
            [_value("x", (1, 1, 4, 4))],
            [_value("y", (1, 1, 8, 8))],
            [_const("scales", np.array([1, 1, 2, 2], np.float32))],
        ),
        "resize",
        "Resize 'up': Resize mode 'cubic' with 'half_pixel' coordinates",
    ),
}


@pytest.mark.parametrize("kind", list(VIOLATIONS))
def test_each_violation_is_refused_naming_its_node(kind: str) -> None:
    make, rule, message = VIOLATIONS[kind]
    findings = check_onnx(make(), "8.6").findings
    assert any(f.rule == rule and f.message.startswith(message) and f.fix for f in findings), findings


def test_conv_transpose_weights_go_along_axis_one() -> None:
    assert check_onnx(_weight_dq(1, "ConvTranspose"), "10").findings == ()
    assert check_onnx(_weight_dq(0, "Conv"), "10").findings == ()
    assert [f.rule for f in check_onnx(_weight_dq(0, "ConvTranspose"), "10").findings] == ["qdq-axis"]


def test_versions_differ_where_their_lists_do() -> None:
    hardmax = VIOLATIONS["operator"][0]()
    assert check_onnx(hardmax, "8.6").findings and not check_onnx(hardmax, "10").findings
    opset18 = VIOLATIONS["opset"][0]()
    assert check_onnx(opset18, "8.6").findings and not check_onnx(opset18, "11").findings


def test_io_types_follow_each_versions_datatype_list() -> None:
    """INT64 (and BF16) are engine I/O types from TensorRT 10 on; double never is."""
    int64 = VIOLATIONS["int64-output"][0]()
    assert [f.rule for f in check_onnx(int64, "8.6").findings] == ["io"]
    assert check_onnx(int64, "10").findings == () and check_onnx(int64, "11").findings == ()
    double = VIOLATIONS["double-input"][0]()
    assert all(any(f.rule == "io" for f in check_onnx(double, v).findings) for v in VERSIONS)


def test_io_types_of_tensorrt_11_exist_in_the_real_lean_runtime() -> None:
    """The 11.x table names only types the TensorRT 11 API's DataType has (checked against the lean runtime)."""
    lean = pytest.importorskip("tensorrt_lean_bindings")
    names = {
        "float32": "FLOAT",
        "float16": "HALF",
        "bfloat16": "BF16",
        "int8": "INT8",
        "int32": "INT32",
        "int64": "INT64",
        "bool": "BOOL",
        "uint8": "UINT8",
    }
    assert {names[t] for t in IO_TYPES["11"].values()} <= set(lean.DataType.__members__)


def test_reduce_axes_must_be_constant_from_opset_18() -> None:
    def reduce(opset: int) -> onnx.ModelProto:
        inputs = [_value("x", (1, 4)), _value("axes", (1,), TensorProto.INT64)]
        node = helper.make_node(
            "ReduceMean",
            ["x", "axes"] if opset >= 18 else ["x"],
            ["y"],
            name="mean",
            **({} if opset >= 18 else {"axes": [1]}),
        )
        return _model([node], inputs if opset >= 18 else inputs[:1], [_value("y", (1, 1))], opset=opset)

    assert not [f for f in check_onnx(reduce(17), "10").findings if f.rule == "constant-input"]
    findings = [f for f in check_onnx(reduce(18), "10").findings if f.rule == "constant-input"]
    assert findings and findings[0].message.startswith("ReduceMean 'mean': input 1 ('axes') is computed at run time")


def test_check_command_exits_1_with_a_table_naming_the_node(tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    onnx.save(_weight_dq(1, "Conv"), str(path))
    done = _cli("check", str(path), "--trt", "10", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "TensorRT 10 would refuse it" in done.stdout and "DequantizeLinear 'w_dq'" in done.stdout
    assert "output-channel axis 0" in done.stdout and "8.6" not in done.stdout


def test_check_command_unknown_version_and_unreadable_file_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    for args, message in (
        (("junk.onnx",), "not a readable ONNX file"),
        ((str(default_model_path()), "--trt", "7"), "--trt 7: fume-edge knows TensorRT"),
    ):
        done = _cli("check", *args, cwd=tmp_path)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr
