"""The contract every inference backend meets: `Backend.infer_batch(co2, ch4, modality_mask) -> [Prediction]`.

Backends (torch, ONNX Runtime, TensorRT) take model-ready float32 inputs (N,1,H,W) in [0,1] and an (N,2) modality
mask, one row per station's pair, and return one `Prediction` per row, the same for the same input whatever the
batch, in fume-edge's class order whatever the model's own; `pre.py` makes those inputs from camera frames by the
preprocessing the model's contract carries. A static-batch model (`export --batch N`, `max_batch` N) takes exactly
N rows: the caller pads a short tick; `infer` runs one pair (padded by repetition). A dynamic-batch model
(`export --batch N --dynamic-batch`, its contract's `dynamic_batch`) takes 1 to N rows; `call_rows` says which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fume_edge.errors import FumeEdgeError
from fume_edge.labels import GAS_CLASS_ID, GASES, PH_CLASS_NAMES
from fume_edge.runtime.contract import HEAD_OUTPUTS, SEG_OUTPUTS, ModelContract, check_finite


@dataclass(frozen=True)
class Prediction:
    """One fused inference result, shared by threads: its mappings are read-only. Per-gas data is keyed by
    `labels.GASES`; a head the model lacks (a baseline) leaves `ph_probs` None or its gas out of `seg`."""

    ph_probs: np.ndarray | None  # (3,) float32, softmax of ph_logits
    seg: Mapping[str, np.ndarray]  # gas -> (H, W) int32 class ids
    ph_logits: np.ndarray | None = None  # (3,) float32
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)  # e.g. raw seg logits from a --logits export

    def __post_init__(self) -> None:
        unknown = set(self.seg) - set(GASES)
        if unknown:
            raise ValueError(f"Prediction.seg keys {sorted(unknown)} are not gases {list(GASES)}")
        object.__setattr__(self, "seg", MappingProxyType(dict(self.seg)))
        object.__setattr__(self, "extras", MappingProxyType(dict(self.extras)))

    @property
    def ph_class(self) -> int | None:
        return None if self.ph_probs is None else int(np.argmax(self.ph_probs))

    @property
    def finite(self) -> bool:
        """False when the pH probabilities hold NaN/inf: such a result is dropped and counted, never fed to the
        policy."""
        return self.ph_probs is None or bool(np.isfinite(self.ph_probs).all())

    @cached_property  # read by the policy, the status panel and snapshots: count the pixels once
    def gas_area(self) -> Mapping[str, float]:
        """Fraction of each gas's pixels labelled gas, keyed as `seg`."""
        return MappingProxyType({gas: gas_area_fraction(seg) for gas, seg in self.seg.items()})


def gas_area_fraction(seg: np.ndarray) -> float:
    return float(np.count_nonzero(seg == GAS_CLASS_ID)) / float(seg.size)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _canonical_seg(seg: np.ndarray, contract: ModelContract | None) -> np.ndarray:
    """Seg ids in fume-edge's class order; a model with the same order (the usual case) costs nothing."""
    lut = None if contract is None else contract.seg_lut
    return seg if lut is None else lut[seg]


def predictions_from_batch(outputs: dict[str, np.ndarray], contract: ModelContract | None = None) -> list[Prediction]:
    """One Prediction per row of batch-N graph outputs (rows are views: nothing is copied)."""
    rows = len(next(iter(outputs.values())))
    return [prediction_from_outputs({k: v[i : i + 1] for k, v in outputs.items()}, contract) for i in range(rows)]


def padded(batch: int | None, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Inputs of one pair repeated to a static batch (None, or already that size: unchanged)."""
    if batch is None or len(arrays[0]) == batch:
        return arrays
    return tuple(np.repeat(a[:1], batch, axis=0) for a in arrays)


def infer_rows(backend: Backend, co2: np.ndarray, ch4: np.ndarray, modality_mask: np.ndarray) -> list[Prediction]:
    """One Prediction per row: one batched call, or one call per row for a backend without `infer_batch`."""
    batched = getattr(backend, "infer_batch", None)
    if batched is not None:
        return batched(co2, ch4, modality_mask)
    return [backend.infer(co2[i : i + 1], ch4[i : i + 1], modality_mask[i : i + 1]) for i in range(len(co2))]


def batch_capacity(backend: Backend) -> int | None:
    """Pairs one call takes: the model's batch (the most, when dynamic), None for any (a backend without the
    notion: 1)."""
    return getattr(backend, "max_batch", 1)


def call_rows(backend: Backend, pairs: int) -> int:
    """Rows one call of `pairs` ready pairs runs: all of a static batch (the rows past `pairs` are padding), just
    the pairs where the batch is dynamic (`export --dynamic-batch`) or free (eager PyTorch)."""
    capacity = batch_capacity(backend)
    return pairs if capacity is None or backend.contract.dynamic_batch else capacity


def prediction_from_outputs(outputs: dict[str, np.ndarray], contract: ModelContract | None = None) -> Prediction:
    """A Prediction from batch-1 graph outputs named as in the model contract (`ph_logits`, `SEG_OUTPUTS`).

    With the model's `contract`, logits and seg ids are put into fume-edge's class order (`labels.py`).
    """
    logits = outputs.get("ph_logits")
    ph_logits = None if logits is None else np.asarray(logits, dtype=np.float32).reshape(-1)
    if ph_logits is not None and contract is not None and contract.ph_order != tuple(range(len(ph_logits))):
        ph_logits = ph_logits[list(contract.ph_order)]
    seg = {
        gas: _canonical_seg(
            np.asarray(outputs[name]).reshape(outputs[name].shape[-2:]).astype(np.int32, copy=False), contract
        )
        for gas, name in SEG_OUTPUTS.items()
        if outputs.get(name) is not None
    }
    extras = {k: np.asarray(v) for k, v in outputs.items() if k not in HEAD_OUTPUTS}
    return Prediction(
        ph_probs=None if ph_logits is None else softmax(ph_logits),
        seg=seg,
        ph_logits=ph_logits,
        extras=extras,
    )


@runtime_checkable
class Backend(Protocol):
    """A loaded model that runs one fused inference. Backends own resources, so they are context managers.

    Batching is optional: a backend that batches also has `max_batch` (the batch a call takes, the most when its
    contract's `dynamic_batch`; None: any size) and `infer_batch`; callers go through `infer_rows`, `batch_capacity`
    and `call_rows`."""

    @property
    def name(self) -> str: ...  # onnxruntime, torch, tensorrt: what the run and bench print

    @property
    def contract(self) -> ModelContract: ...  # preprocessing, class names and heads, read from the model file

    @property
    def input_size(self) -> tuple[int, int]: ...  # (width, height) the model was built for

    def infer(self, co2: np.ndarray, ch4: np.ndarray, modality_mask: np.ndarray) -> Prediction: ...

    def close(self) -> None: ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...


def _torch_loader(path: Path, device: str, **options: Any) -> Backend:
    from fume_edge.runtime.torch_backend import TorchBackend

    return TorchBackend(path, device=device, **options)


def _onnx_loader(path: Path, device: str, **options: Any) -> Backend:
    from fume_edge.runtime.onnx_backend import OnnxBackend

    return OnnxBackend(path, device=device, **options)


def _engine_loader(path: Path, device: str, **options: Any) -> Backend:
    from fume_edge.runtime.trt_backend import TensorRTBackend

    options.pop("threads", None)  # CPU threads mean nothing to a GPU engine
    return TensorRTBackend(path, device=device, **options)


# Backends by model file suffix (Polygraphy-style loaders: imports stay inside, so a device without torch or
# TensorRT can still load the others).
LOADERS: dict[str, Callable[..., Backend]] = {
    ".pt": _torch_loader,
    ".onnx": _onnx_loader,
    ".engine": _engine_loader,
    ".plan": _engine_loader,
}


def verify_backend(backend: Backend, source: str) -> None:
    """One inference on a plain mid-gray pair: the outputs the contract promises are there, finite and full size."""
    width, height = backend.input_size
    frame = np.full((1, 1, height, width), 0.5, np.float32)
    prediction = backend.infer(frame, frame, np.ones((1, 2), np.float32))
    contract = backend.contract
    if "ph_logits" in contract.heads:
        if prediction.ph_logits is None or prediction.ph_logits.shape != (len(PH_CLASS_NAMES),):
            got = None if prediction.ph_logits is None else prediction.ph_logits.shape
            raise FumeEdgeError(
                f"{source}: pH head gives {got}, expected {len(PH_CLASS_NAMES)} logits; re-export the model"
            )
        check_finite("ph_logits", prediction.ph_logits, source)
    for gas, name in SEG_OUTPUTS.items():
        seg = prediction.seg.get(gas)
        if name in contract.heads and (seg is None or seg.shape != contract.seg_shape):
            raise FumeEdgeError(
                f"{source}: {name} gives {None if seg is None else seg.shape}, expected "
                f"{contract.seg_shape}; re-export the model"
            )


def load_backend(path: str | Path, device: str = "auto", **options: object) -> Backend:
    """The backend for a model file, picked by suffix from `LOADERS`, its contract checked before first use."""
    path = Path(path)
    if not path.exists():
        raise FumeEdgeError(f"{path}: model file not found; pass a .pt, .onnx or .engine file")
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise FumeEdgeError(f"{path}: unknown model type {path.suffix!r}; expected one of {', '.join(LOADERS)}")
    backend = loader(path, device, **options)
    try:
        verify_backend(backend, str(path))
    except BaseException:
        backend.close()
        raise
    return backend
