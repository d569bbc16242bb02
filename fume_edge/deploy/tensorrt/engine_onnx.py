"""The ONNX a TensorRT build parses, made from the one the user names (deploy/tensorrt/trt_settings.py says which form).

- `float`: the FP32 export as is (TensorRT 8.6/10.x FP16 comes from the builder flag).
- `fp16`: strongly typed TensorRT ≥ 11 has no FP16 flag: the graph itself computes in half precision, float32 I/O,
  made here from the float export with ONNX Runtime's converter (written beside the engine, `SOURCE.fp16.onnx`).
- `qdq`: INT8 explicit quantization. A QDQ model builds directly; a float one is calibrated and quantized first
  (`fume-edge quantize --target tensorrt`, its accuracy report and limits included) into `SOURCE.int8.onnx`.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto

from fume_edge.deploy.onnx.quant_graph import load_fp32, set_metadata, write_atomically
from fume_edge.errors import FumeEdgeError

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def is_qdq(model: onnx.ModelProto) -> bool:
    return any(node.op_type in QDQ_OPS for node in model.graph.node)


def is_fp16(model: onnx.ModelProto) -> bool:
    return any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer)


def fp16_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Half-precision compute with float32 inputs and outputs (the I/O contract stays float32)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted: onnx.ModelProto = convert_float_to_float16(model, keep_io_types=True)
    set_metadata(converted, {"fume_edge.precision": "fp16"})
    return converted


def prepare_onnx(source: Path, form: str, engine: Path, calib: Path | None, data: Path | None) -> Path:
    """The ONNX file to parse for `form`, made beside `engine` (SOURCE.int8.onnx, SOURCE.fp16.onnx) when needed."""
    model = load_fp32(source)
    if form == "qdq":
        if is_qdq(model):
            return source
        return quantized_onnx(source, engine.parent / f"{source.stem}.int8.onnx", calib, data)
    if is_qdq(model):
        raise FumeEdgeError(f"{source}: is an INT8 (QDQ) model; build it with --int8, or pass the float export")
    if form == "fp16" and not is_fp16(model):
        output = engine.parent / f"{source.stem}.fp16.onnx"
        write_atomically(fp16_model(model), output)
        return output
    return source


def calibration_folder(source: Path, calib: Path | None, data: Path | None) -> Path:
    """The --calib folder, or one made from the paired CSV --data (reused when it is already there)."""
    from fume_edge.deploy.onnx.quant_graph import model_preprocessing
    from fume_edge.deploy.int8.commands import calibrate_command

    if calib is not None:
        return calib
    if data is None:
        raise FumeEdgeError(
            f"{source}: INT8 needs calibration data: --calib calibration/NAME (from "
            "`fume-edge calibrate`) or --data paired_train.csv"
        )
    folder = Path("calibration") / data.parent.name
    if not (folder / "manifest.json").is_file():
        size = model_preprocessing(load_fp32(source), source).input_size
        calibrate_command(data, folder, 300, 0, size, None, overwrite=False)
    return folder


def quantized_onnx(source: Path, output: Path, calib: Path | None, data: Path | None) -> Path:
    """Calibrate and quantize for TensorRT (`fume-edge quantize --target tensorrt`, accuracy report and limits)."""
    from fume_edge.deploy.int8.quantize import QuantizeOptions
    from fume_edge.deploy.int8.commands import quantize_command

    quantize_command(source, calibration_folder(source, calib, data), output, QuantizeOptions(target="tensorrt"), None)
    return output
