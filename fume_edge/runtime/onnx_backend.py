"""ONNX Runtime backend: runs an exported fume-edge graph (`.onnx`) on TensorRT EP, CUDA EP or the CPU.

`open_session` and `run_session` are the one way fume-edge calls ONNX Runtime: the backend, the export parity
check and the INT8 accuracy report all go through them. Intra-op threads do not spin between calls unless asked
(`spinning=True`): in a camera-paced loop the spinning burns CPU that capture, the web page and MQTT need, at the
same latency (`fume-edge bench` shows CPU per frame both ways).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.base import Prediction, call_rows, padded, predictions_from_batch
from fume_edge.runtime.contract import ModelContract, TensorSpec

_PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "gpu": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(bool)": "bool",
}
# Where ONNX Runtime's TensorRT provider keeps the engines and timing cache it builds, so a restart does not
# rebuild for minutes. FUME_EDGE_ENGINES moves it (the barn service points it at its state directory).
ENGINE_CACHE_ENV = "FUME_EDGE_ENGINES"

ModelSource = str | Path | bytes  # a file, or a serialized model not yet written


def choose_providers(device: str = "auto") -> list[str]:
    """`auto`: the best available of TensorRT EP, CUDA EP, CPU. Otherwise the named one (and the CPU behind it)."""
    available = ort.get_available_providers()
    if device == "auto":
        return [p for p in _PROVIDER_PREFERENCE if p in available]
    name = _PROVIDER_ALIASES.get(device.split(":")[0], device)
    if name not in available:
        raise FumeEdgeError(
            f"--device {device}: ONNX Runtime provider {name} is not available here (have: "
            f"{', '.join(available)}); install onnxruntime-gpu built for this machine, or use --device cpu"
        )
    return [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]


def provider_options(provider: str, quantized: bool) -> dict[str, Any]:
    """TensorRT EP: cached engines and timing cache in engines/ort-trt-cache, FP16 (INT8 for a QDQ model)."""
    if provider != "TensorrtExecutionProvider":
        return {}
    cache = Path(os.environ.get(ENGINE_CACHE_ENV, "engines")) / "ort-trt-cache"
    cache.mkdir(parents=True, exist_ok=True)
    return {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache),
        "trt_fp16_enable": True,
        "trt_int8_enable": quantized,
    }


SPINNING_KEY = "session.intra_op.allow_spinning"


def session_options(threads: int | None = None, spinning: bool = False) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.add_session_config_entry(SPINNING_KEY, "1" if spinning else "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return options


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def open_session(
    model: ModelSource,
    device: str = "auto",
    threads: int | None = None,
    quantized: bool = False,
    spinning: bool = False,
) -> ort.InferenceSession:
    """An ORT session for a model file (or serialized bytes); a missing, corrupt or foreign file is one clear error."""
    if not isinstance(model, bytes) and not Path(model).is_file():
        raise FumeEdgeError(f"{model}: ONNX file not found")
    providers = choose_providers(device)
    try:
        return ort.InferenceSession(
            model if isinstance(model, bytes) else str(model),
            sess_options=session_options(threads, spinning),
            providers=providers,
            provider_options=[provider_options(p, quantized) for p in providers],
        )
    except Exception as exc:  # ORT raises its own exception types (InvalidProtobuf, Fail, ...)
        where = "the model" if isinstance(model, bytes) else str(model)
        raise FumeEdgeError(
            f"{where}: ONNX Runtime cannot load it ({_first_line(exc)}); re-export with `fume-edge export`"
        ) from None


def run_session(
    session: ort.InferenceSession, co2: np.ndarray, ch4: np.ndarray, modality_mask: np.ndarray
) -> dict[str, np.ndarray]:
    """Every output of one fused inference, by name."""
    feeds = {
        "co2": np.ascontiguousarray(co2, dtype=np.float32),
        "ch4": np.ascontiguousarray(ch4, dtype=np.float32),
        "modality_mask": np.ascontiguousarray(modality_mask, dtype=np.float32),
    }
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def tensor_specs(args: list[Any]) -> list[TensorSpec]:
    """ORT's NodeArgs as contract specs (a dynamic dimension keeps its symbolic name)."""
    return [
        TensorSpec(a.name, _ORT_TYPES.get(a.type, a.type), tuple(d if isinstance(d, int) else str(d) for d in a.shape))
        for a in args
    ]


def session_contract(session: ort.InferenceSession, source: str) -> ModelContract:
    """The contract the session's metadata declares, checked against its real inputs and outputs."""
    contract = ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map, source)
    contract.check_io(tensor_specs(session.get_inputs()), tensor_specs(session.get_outputs()))
    return contract


def _needs_int8_engine(path: Path, device: str) -> bool:
    """Whether the TensorRT provider must build INT8: the model is a QDQ export (metadata read by a CPU session,
    only when the TensorRT provider will be used)."""
    if "TensorrtExecutionProvider" not in choose_providers(device):
        return False
    meta = open_session(path, "cpu").get_modelmeta().custom_metadata_map
    return meta.get("fume_edge.precision") == "int8"


class OnnxBackend:
    """An exported graph in ONNX Runtime; its contract (size, classes, preprocessing) comes from its metadata."""

    name = "onnxruntime"

    def __init__(
        self, path: str | Path, device: str = "auto", threads: int | None = None, spinning: bool = False
    ) -> None:
        self.path = Path(path)
        self.session = open_session(
            self.path, device, threads, quantized=_needs_int8_engine(self.path, device), spinning=spinning
        )
        self.contract = session_contract(self.session, str(self.path))
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.providers = self.session.get_providers()

    @property
    def input_size(self) -> tuple[int, int]:
        return self.contract.input_size

    @property
    def class_names(self) -> list[str]:
        return list(self.contract.class_names)

    @property
    def max_batch(self) -> int:
        return self.contract.batch

    def infer(self, co2: np.ndarray, ch4: np.ndarray, modality_mask: np.ndarray) -> Prediction:
        return self.infer_batch(*padded(call_rows(self, 1), co2, ch4, modality_mask))[0]

    def infer_batch(self, co2: np.ndarray, ch4: np.ndarray, modality_mask: np.ndarray) -> list[Prediction]:
        return predictions_from_batch(run_session(self.session, co2, ch4, modality_mask), self.contract)

    def close(self) -> None:
        self.session = None

    def __enter__(self) -> OnnxBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
