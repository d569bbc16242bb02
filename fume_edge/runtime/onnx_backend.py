"""ONNX Runtime backend: runs an exported fume-edge graph (`.onnx`) on TensorRT EP, CUDA EP or the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.base import Prediction, prediction_from_outputs

REQUIRED_INPUTS = ("co2", "ch4", "modality_mask")
_PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_PROVIDER_ALIASES = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


def choose_providers(device: str = "auto") -> list[str]:
    """`auto`: the best available of TensorRT EP, CUDA EP, CPU. Otherwise the named one (and the CPU behind it)."""
    available = ort.get_available_providers()
    if device == "auto":
        return [p for p in _PROVIDER_PREFERENCE if p in available]
    name = _PROVIDER_ALIASES.get(device.split(":")[0], device)
    if name not in available:
        raise FumeEdgeError(f"device {device!r}: ONNX Runtime provider {name} is not available here (have: {', '.join(available)})")
    return [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]


def session_options(threads: int | None = None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return options


def open_session(path: str | Path, device: str = "auto", threads: int | None = None) -> ort.InferenceSession:
    """An ORT session for a model file; a missing, corrupt or foreign file is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise FumeEdgeError(f"{path}: ONNX file not found")
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(threads), providers=choose_providers(device))
    except Exception as exc:  # ORT raises its own exception types (InvalidProtobuf, Fail, ...)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FumeEdgeError(f"{path}: ONNX Runtime cannot load it ({text[:200]}); re-export with `fume-edge export`") from None


class OnnxBackend:
    """An exported graph in ONNX Runtime; input size and class names come from the graph's metadata."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, device, threads)
        inputs = {i.name: i for i in self.session.get_inputs()}
        missing = [n for n in REQUIRED_INPUTS if n not in inputs]
        if missing:
            raise FumeEdgeError(f"{self.path}: not a fume-edge model, inputs {', '.join(missing)} are missing (has {', '.join(inputs)})")
        height, width = inputs["co2"].shape[-2:]
        if not isinstance(height, int) or not isinstance(width, int):
            raise FumeEdgeError(f"{self.path}: input co2 has a dynamic shape; export a static shape with `fume-edge export --size`")
        self.input_size = (width, height)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.providers = self.session.get_providers()
        self.output_names = [o.name for o in self.session.get_outputs()]

    @property
    def class_names(self) -> list[str] | None:
        raw = self.metadata.get("fume_edge.class_names")
        return None if raw is None else list(json.loads(raw))

    def infer(self, co2: np.ndarray, ch4: np.ndarray, modality_mask: np.ndarray) -> Prediction:
        feeds = {
            "co2": np.ascontiguousarray(co2, dtype=np.float32),
            "ch4": np.ascontiguousarray(ch4, dtype=np.float32),
            "modality_mask": np.ascontiguousarray(modality_mask, dtype=np.float32),
        }
        values = self.session.run(self.output_names, feeds)
        return prediction_from_outputs(dict(zip(self.output_names, values)))

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]

    def __enter__(self) -> "OnnxBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
