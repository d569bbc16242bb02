"""Engine files for the TensorRT tests that run without a GPU: a sidecar for the bundled model and plan bytes."""

from __future__ import annotations

import os
from pathlib import Path

from fume_edge.assets import default_model_path
from fume_edge.deploy.tensorrt.engine_meta import make_sidecar
from fume_edge.deploy.tensorrt.trt_settings import EngineBuildOptions, build_plan
from fume_edge.runtime.cuda_mem import DeviceInfo
from fume_edge.runtime.engine_sidecar import Sidecar, TensorInfo, write_sidecar

FRAME = (1, 1, 480, 640)
IO = (
    TensorInfo("co2", "float32", FRAME, "input"),
    TensorInfo("ch4", "float32", FRAME, "input"),
    TensorInfo("modality_mask", "float32", (1, 2), "input"),
    TensorInfo("ph_logits", "float32", (1, 3), "output"),
    TensorInfo("co2_seg", "int32", (1, 480, 640), "output"),
    TensorInfo("ch4_seg", "int32", (1, 480, 640), "output"),
)
ORIN = DeviceInfo(0, "Orin", "8.7", "12.6", 8)  # Orin Nano 8 GB: 8 SMs (AGX Orin 64 GB: 16)


def bundled_sidecar(version: str = "10.3.0", options: EngineBuildOptions = EngineBuildOptions()) -> Sidecar:
    """The sidecar a build of the bundled model with TensorRT `version` on an Orin would write."""
    onnx_path = default_model_path()
    return make_sidecar(onnx_path, onnx_path, version, ORIN, IO, build_plan(version, options), options)


def fake_engine(folder: Path, built_with: str, version_compatible: bool = False) -> Path:
    """Random plan bytes with a real sidecar: if TensorRT ever deserialised them, the error would be another one."""
    engine = folder / "fume.engine"
    engine.write_bytes(os.urandom(4096))
    write_sidecar(engine, bundled_sidecar(built_with, EngineBuildOptions(version_compatible=version_compatible)))
    return engine
