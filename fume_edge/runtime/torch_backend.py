"""PyTorch backend: runs a fume-edge checkpoint (`.pt`) eagerly; the reference every other backend is held to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fume_edge.model.checkpoint import load_checkpoint
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import PH_LOGITS, SEG_LOGITS
from fume_edge.runtime.base import Prediction, predictions_from_batch
from fume_edge.runtime.contract import SEG_OUTPUTS


def resolve_device(device: str) -> torch.device:
    """auto, cpu, cuda[:N] (gpu is cuda); anything else is one line saying what a checkpoint can run on."""
    kind, _, index = device.partition(":")
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind not in ("cpu", "cuda", "gpu") or (index and not index.isdigit()):
        hint = (
            " (TensorRT runs exported models: `fume-edge export` it, then run the .onnx with --device tensorrt)"
            if kind == "tensorrt"
            else ""
        )
        raise FumeEdgeError(f"--device {device}: a .pt checkpoint runs in PyTorch on auto, cpu or cuda[:N]{hint}")
    if kind in ("cuda", "gpu") and not torch.cuda.is_available():
        raise FumeEdgeError(f"--device {device}: CUDA is not available to PyTorch here; use --device cpu")
    return torch.device("cpu" if kind == "cpu" else f"cuda{':' + index if index else ''}")


class TorchBackend:
    """A checkpoint's model in eval mode. Argmax runs on the device so only class ids are copied back."""

    name = "torch"

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None) -> None:
        self.checkpoint = load_checkpoint(path)
        self.device = resolve_device(device)
        if threads:
            torch.set_num_threads(threads)
        self.model = self.checkpoint.build_model().to(self.device)
        self.contract = self.checkpoint.contract(str(path), self.model)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.contract.input_size

    @property
    def max_batch(self) -> None:
        return None  # eager PyTorch takes any batch

    def infer(self, co2: np.ndarray, ch4: np.ndarray, modality_mask: np.ndarray) -> Prediction:
        return self.infer_batch(co2, ch4, modality_mask)[0]

    @torch.inference_mode()
    def infer_batch(self, co2: np.ndarray, ch4: np.ndarray, modality_mask: np.ndarray) -> list[Prediction]:
        tensors = [
            torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)
            for a in (co2, ch4, modality_mask)
        ]
        out = self.model(*tensors)
        outputs: dict[str, np.ndarray] = {}
        if PH_LOGITS in out:
            outputs["ph_logits"] = out[PH_LOGITS].float().cpu().numpy()
        for gas, name in SEG_OUTPUTS.items():
            if SEG_LOGITS[gas] in out:
                outputs[name] = out[SEG_LOGITS[gas]].argmax(dim=1).to(torch.int32).cpu().numpy()
        return predictions_from_batch(outputs, self.contract)

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]

    def __enter__(self) -> TorchBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
