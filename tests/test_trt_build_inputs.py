"""What build-engine does before TensorRT: the ONNX form each precision parses, made on the CPU, and the refusals
that need no TensorRT (the build itself runs in the `gpu` tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from fume_edge.assets import default_model_path
from fume_edge.deploy.tensorrt.engine_onnx import is_fp16, is_qdq, prepare_onnx
from fume_edge.deploy.tensorrt.tensorrt_build import timing_cache_path
from fume_edge.deploy.onnx.trt_rules import check_onnx
from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.cuda_mem import DeviceInfo


def test_float_form_is_the_source_itself(tmp_path: Path) -> None:
    assert prepare_onnx(default_model_path(), "float", tmp_path / "fume.engine", None, None) == default_model_path()


def test_fp16_form_for_tensorrt_11_keeps_float32_io_and_the_masks(tmp_path: Path) -> None:
    path = prepare_onnx(default_model_path(), "fp16", tmp_path / "fume.engine", None, None)
    assert path == tmp_path / "fume_default.fp16.onnx"
    model = onnx.load(str(path))
    assert is_fp16(model) and not is_qdq(model) and check_onnx(model, "11").findings == ()
    io_types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert io_types == {
        "co2": TensorProto.FLOAT,
        "ch4": TensorProto.FLOAT,
        "modality_mask": TensorProto.FLOAT,
        "ph_logits": TensorProto.FLOAT,
        "co2_seg": TensorProto.INT32,
        "ch4_seg": TensorProto.INT32,
    }
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["fume_edge.precision"] == "fp16" and "fume_edge.class_names" in meta
    rng = np.random.default_rng(0)
    feed = {
        "co2": rng.random((1, 1, 480, 640), np.float32),
        "ch4": rng.random((1, 1, 480, 640), np.float32),
        "modality_mask": np.ones((1, 2), np.float32),
    }
    half = ort.InferenceSession(str(path)).run(None, feed)
    full = ort.InferenceSession(str(default_model_path())).run(None, feed)
    assert np.argmax(half[0]) == np.argmax(full[0])
    assert all(np.mean(a == b) >= 0.995 for a, b in zip(half[1:], full[1:], strict=True))


def test_int8_without_calibration_data_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(FumeEdgeError, match="INT8 needs calibration data: --calib calibration/NAME"):
        prepare_onnx(default_model_path(), "qdq", tmp_path / "fume.engine", None, None)


def test_a_qdq_model_is_built_as_is_for_int8_and_refused_for_fp16(tmp_path: Path) -> None:
    from test_trt_rules import _qdq  # a minimal symmetric QDQ graph

    path = tmp_path / "q.onnx"
    onnx.save(_qdq(onnx.numpy_helper.from_array(np.array(0, np.int8), "zp")), str(path))
    assert prepare_onnx(path, "qdq", tmp_path / "q.engine", None, None) == path
    with pytest.raises(FumeEdgeError, match="is an INT8 \\(QDQ\\) model; build it with --int8"):
        prepare_onnx(path, "float", tmp_path / "q.engine", None, None)


def test_timing_cache_is_keyed_by_tensorrt_version_and_gpu(tmp_path: Path) -> None:
    orin = DeviceInfo(0, "Orin (nvgpu)", "8.7", "12.6")
    assert timing_cache_path(tmp_path, "10.3.0", orin).name == "timing_trt10.3.0_orin-nvgpu_sm87.cache"
