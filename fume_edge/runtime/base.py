"""The contract every inference backend meets: `Backend.infer(co2, ch4, modality_mask) -> Prediction`.

Backends (torch, ONNX Runtime, TensorRT) take model-ready float32 inputs (1,1,H,W) in [0,1] and a (1,2) modality
mask, and return the same `Prediction` for the same input; `pre.py` makes those inputs from camera frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from fume_edge.errors import FumeEdgeError
from fume_edge.labels import GAS_CLASS_ID, PH_CLASS_NAMES


@dataclass(frozen=True)
class Prediction:
    """One fused inference result. A head the model lacks (a baseline) leaves its fields None."""

    ph_probs: np.ndarray | None  # (3,) float32, softmax of ph_logits
    co2_seg: np.ndarray | None  # (H, W) int32 class ids
    ch4_seg: np.ndarray | None  # (H, W) int32 class ids
    ph_logits: np.ndarray | None = None  # (3,) float32
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. raw seg logits from a --logits export

    @property
    def ph_class(self) -> int | None:
        return None if self.ph_probs is None else int(np.argmax(self.ph_probs))

    @property
    def ph_class_name(self) -> str | None:
        return None if self.ph_class is None else PH_CLASS_NAMES[self.ph_class]

    @cached_property  # read by the policy, the status panel and snapshots: count the pixels once
    def co2_gas_area(self) -> float | None:
        """Fraction of CO2 pixels labelled gas."""
        return gas_area_fraction(self.co2_seg)

    @cached_property
    def ch4_gas_area(self) -> float | None:
        """Fraction of CH4 pixels labelled gas."""
        return gas_area_fraction(self.ch4_seg)


def gas_area_fraction(seg: np.ndarray | None) -> float | None:
    return None if seg is None else float(np.count_nonzero(seg == GAS_CLASS_ID)) / float(seg.size)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def prediction_from_outputs(outputs: dict[str, np.ndarray]) -> Prediction:
    """Build a Prediction from batch-1 graph outputs named as in DESIGN §4 (`ph_logits`, `co2_seg`, `ch4_seg`)."""
    logits = outputs.get("ph_logits")
    ph_logits = None if logits is None else np.asarray(logits, dtype=np.float32).reshape(-1)
    segs = {k: (None if outputs.get(k) is None
                else np.asarray(outputs[k]).reshape(outputs[k].shape[-2:]).astype(np.int32, copy=False))
            for k in ("co2_seg", "ch4_seg")}
    extras = {k: np.asarray(v) for k, v in outputs.items() if k not in ("ph_logits", "co2_seg", "ch4_seg")}
    return Prediction(
        ph_probs=None if ph_logits is None else softmax(ph_logits),
        co2_seg=segs["co2_seg"],
        ch4_seg=segs["ch4_seg"],
        ph_logits=ph_logits,
        extras=extras,
    )


@runtime_checkable
class Backend(Protocol):
    """A loaded model that runs one fused inference. Backends own resources, so they are context managers."""

    name: str
    input_size: tuple[int, int]  # (width, height) the model was built for

    def infer(self, co2: np.ndarray, ch4: np.ndarray, modality_mask: np.ndarray) -> Prediction: ...

    def close(self) -> None: ...

    def __enter__(self) -> "Backend": ...

    def __exit__(self, *exc: object) -> None: ...


def load_backend(path: str | Path, device: str = "auto", **options: object) -> Backend:
    """Pick the backend by file suffix: `.pt` torch, `.onnx` ONNX Runtime (`.engine`/`.plan`: TensorRT, to come).

    Imports stay local so a device without torch (or TensorRT) can still load the others.
    """
    path = Path(path)
    if not path.exists():
        raise FumeEdgeError(f"{path}: model file not found; pass a .pt, .onnx or .engine file")
    suffix = path.suffix.lower()
    if suffix == ".pt":
        from fume_edge.runtime.torch_backend import TorchBackend

        return TorchBackend(path, device=device, **options)  # type: ignore[arg-type]
    if suffix == ".onnx":
        from fume_edge.runtime.onnx_backend import OnnxBackend

        return OnnxBackend(path, device=device, **options)  # type: ignore[arg-type]
    if suffix in (".engine", ".plan"):
        raise FumeEdgeError(
            f"{path}: this fume-edge version does not run TensorRT engines yet; run the .onnx export instead "
            "(ONNX Runtime's TensorRT provider uses TensorRT where it is installed)"
        )
    raise FumeEdgeError(f"{path}: unknown model type {suffix!r}; expected .pt, .onnx, .engine or .plan")
