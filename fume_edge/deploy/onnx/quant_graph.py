"""Graph-level helpers of INT8 quantization: checking the FP32 input, choosing float nodes, writing the result.

Pure functions on `onnx.ModelProto` (and one atomic file write), kept apart from the calibration machinery in
`quantize.py`.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path

import onnx

from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.contract import INPUT_NAMES, ModelContract
from fume_edge.runtime.pre import Preprocessing


def load_fp32(path: Path) -> onnx.ModelProto:
    """The FP32 export to quantize; a missing or unreadable file is one clear error."""
    if not path.is_file():
        raise FumeEdgeError(f"{path}: ONNX file not found; export one with `fume-edge export`")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError, onnx its own types
        raise FumeEdgeError(
            f"{path}: not a readable ONNX file ({type(exc).__name__}); re-export it with `fume-edge export`"
        ) from None


def model_preprocessing(model: onnx.ModelProto, path: Path) -> Preprocessing:
    """The preprocessing a fume-edge FP32 graph declares (its calibration and validation inputs must be made so)."""
    inputs = {i.name: i for i in model.graph.input}
    missing = [n for n in INPUT_NAMES if n not in inputs]
    if missing:
        raise FumeEdgeError(
            f"{path}: not a fume-edge model, inputs {', '.join(missing)} are missing; export one "
            "with `fume-edge export`"
        )
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("fume_edge.precision", "fp32") != "fp32":
        raise FumeEdgeError(f"{path}: not an FP32 export; quantize the FP32 model from `fume-edge export`")
    contract = ModelContract.from_metadata(meta, str(path))
    dims = [d.dim_value for d in inputs["co2"].type.tensor_type.shape.dim]
    if contract.dynamic_batch and len(dims) == 4:
        dims[0] = 1  # `export --dynamic-batch`: only the batch is free; calibration feeds one pair a row
    if len(dims) != 4 or min(dims) <= 0:
        raise FumeEdgeError(
            f"{path}: input co2 has no static shape; export a static shape with `fume-edge export --size`"
        )
    preprocessing = contract.preprocessing
    if preprocessing.input_size != (dims[3], dims[2]):
        raise FumeEdgeError(
            f"{path}: metadata says input size {preprocessing.input_size}, the graph takes "
            f"{dims[3]}x{dims[2]}; re-export it with `fume-edge export`"
        )
    return preprocessing


def resolve_exclusions(model: onnx.ModelProto, patterns: Sequence[str]) -> list[str]:
    """Node names matching each pattern (a name, an op type or an fnmatch pattern); an unmatched one is an error."""
    names: list[str] = []
    for pattern in patterns:
        found = [
            n.name
            for n in model.graph.node
            if n.name and (n.op_type == pattern or fnmatch.fnmatchcase(n.name, pattern))
        ]
        if not found:
            raise FumeEdgeError(
                f"--exclude {pattern!r}: no node or op type matches it in the model "
                "(names look like /model/fusion/cross_att/Softmax; patterns like '/model/fusion/*' work)"
            )
        names += [n for n in found if n not in names]
    return names


def pooling_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMuls with a constant operand: the export-safe adaptive pooling (R_h · x · R_wᵀ, model/pooling.py).

    They stay float: their weights are exact bin averages (1/n), their compute is negligible (15×20 maps), and ORT
    would quantize a constant *left* operand per-channel along the reduction axis, which no int8 GEMM can factor out.
    """
    constants = constant_names(model)
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and any(i in constants for i in n.input)]


def constant_names(model: onnx.ModelProto) -> set[str]:
    """Initializers and Constant outputs: the tensors known at build time."""
    return {t.name for t in model.graph.initializer} | {
        o for n in model.graph.node if n.op_type == "Constant" for o in n.output
    }


def non_residual_adds(model: onnx.ModelProto) -> list[str]:
    """Adds with a constant operand (a bias): NVIDIA's Q/DQ placement quantizes residual Adds (two activations)
    only; TensorRT fuses the others into the layer before them."""
    constants = constant_names(model)
    return [n.name for n in model.graph.node if n.op_type == "Add" and any(i in constants for i in n.input)]


def strip_unused_opsets(model: onnx.ModelProto) -> None:
    """Drop the opset imports the optimizer adds for domains no node uses."""
    used = {n.domain for n in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used or (o.domain == "ai.onnx" and "" in used)]
    del model.opset_import[:]
    model.opset_import.extend(kept)


def set_metadata(model: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace or add metadata props, keeping the FP32 export's others (class names, input size, ...)."""
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.extend(onnx.StringStringEntryProto(key=k, value=v) for k, v in props.items())


def write_atomically(model: onnx.ModelProto, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.partial-{os.getpid()}")
    try:
        onnx.save(model, str(tmp))
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
