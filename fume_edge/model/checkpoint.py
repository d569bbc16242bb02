"""fume-edge checkpoints: the model's architecture, weights, labels, input contract and provenance in one file.

Files are always read with `torch.load(weights_only=True)`: a checkpoint can never run code on load. Only the
harmless globals such files really contain (numpy scalars, dtypes and arrays) are allowed; anything else is refused
by name before unpickling.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fume_edge import __version__
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import PH_CLASS_NAMES, SEG_CLASS_NAMES
from fume_edge.model.registry import create_model
from fume_edge.runtime.contract import ModelContract
from fume_edge.runtime.pre import Preprocessing

FORMAT = "fume-edge-checkpoint"
FORMAT_VERSION = 1

# Globals a weights file may legitimately need beyond tensors and plain containers.
_SAFE_NUMPY_GLOBALS = {
    "numpy._core.multiarray.scalar",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray._reconstruct",
    "numpy.ndarray",
    "numpy.dtype",
}


# Each head's module name and the deployed output it becomes (docs/models.md, "Export contract").
_HEAD_MODULES = (("cls_head", "ph_logits"), ("co2_seg_head", "co2_seg"), ("ch4_seg_head", "ch4_seg"))


def model_heads(model: nn.Module) -> tuple[str, ...]:
    """The deployed outputs a model has (a baseline lacks some heads)."""
    return tuple(output for module, output in _HEAD_MODULES if hasattr(model, module))


@dataclass
class Checkpoint:
    """Everything needed to rebuild and deploy a model, and to say where it came from."""

    architecture: str
    arch_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    class_names: list[str] = field(default_factory=lambda: list(PH_CLASS_NAMES))
    seg_class_names: list[str] = field(default_factory=lambda: list(SEG_CLASS_NAMES))
    preprocessing: Preprocessing = field(default_factory=Preprocessing)  # input size, scaling, resize method
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the trainer's resume state

    def build_model(self) -> nn.Module:
        """The model with these weights, strictly loaded, in eval mode."""
        model = create_model(self.architecture, **self.arch_kwargs)
        result = model.load_state_dict(self.state_dict, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise FumeEdgeError(describe_key_mismatch(self.architecture, result.missing_keys, result.unexpected_keys))
        return model.eval()

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) the model was trained for and is exported at by default."""
        return self.preprocessing.input_size

    def contract(self, source: str, model: nn.Module | None = None) -> ModelContract:
        """The model contract this checkpoint's model (built here unless given) meets; its export declares it."""
        heads = model_heads(model if model is not None else create_model(self.architecture, **self.arch_kwargs))
        return ModelContract(self.preprocessing, tuple(self.class_names), tuple(self.seg_class_names), heads, source)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "architecture": self.architecture,
            "arch_kwargs": dict(self.arch_kwargs),
            "state_dict": self.state_dict,
            "class_names": list(self.class_names),
            "seg_class_names": list(self.seg_class_names),
            "input_size": list(self.input_size),
            "preprocessing": self.preprocessing.to_dict(),
            "provenance": dict(self.provenance),
            "extra": dict(self.extra),
        }


def describe_key_mismatch(architecture: str, missing: list[str], unexpected: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s), e.g. {', '.join(missing[:3])}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s), e.g. {', '.join(unexpected[:3])}")
    return f"state dict does not fit {architecture}: {'; '.join(parts)}"


def _resolve(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _numpy_globals() -> list[Any]:
    """Every allowlisted numpy global, resolved, plus the concrete dtype classes a dtype is rebuilt through."""
    import numpy.dtypes

    resolved = []
    for name in _SAFE_NUMPY_GLOBALS:
        try:
            resolved.append(_resolve(name))
        except (ImportError, AttributeError):  # numpy 1.x has numpy.core, 2.x numpy._core
            continue
    return resolved + [getattr(numpy.dtypes, n) for n in dir(numpy.dtypes) if n.endswith("DType")]


def _refuse_unsafe_globals(path: Path) -> None:
    """Name the first non-weight global a zip checkpoint needs, before anything is unpickled."""
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as exc:  # torch raises several types for corrupt archives
        raise FumeEdgeError(
            f"{path}: not a readable PyTorch checkpoint (truncated or corrupt: {_first_line(exc)})"
        ) from None
    refused = [name for name in needed if name not in _SAFE_NUMPY_GLOBALS and not name.startswith("numpy.dtypes.")]
    if refused:
        raise FumeEdgeError(
            f"{path}: refused, the file holds non-weight objects ({', '.join(refused[:3])}); "
            "re-save it as a plain state dict (torch.save(model.state_dict(), ...))"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_weights_file(path: str | Path) -> Any:
    """Load any weights file safely (weights_only, numpy allowlist); user errors are one line."""
    path = Path(path)
    if not path.is_file():
        raise FumeEdgeError(f"{path}: file not found")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"PK":
        if not zipfile.is_zipfile(path):
            raise FumeEdgeError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt zip archive)")
        _refuse_unsafe_globals(path)
    elif magic[:1] != b"\x80":  # neither torch's zip format nor its legacy pickle format
        raise FumeEdgeError(f"{path}: not a PyTorch checkpoint (expected a file written by torch.save)")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise FumeEdgeError(f"{path}: refused, the file holds non-weight objects ({_first_line(exc)[:120]})") from None
    except Exception as exc:  # torch raises several types for corrupt archives
        raise FumeEdgeError(f"{path}: cannot load checkpoint, truncated or corrupt ({_first_line(exc)})") from None


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> Path:
    """Write atomically (temp file, then rename) so an interrupted save never leaves a broken checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    provenance = {"fume_edge_version": __version__, "saved_at": dt.datetime.now(dt.timezone.utc).isoformat()}
    checkpoint.provenance = {**provenance, **checkpoint.provenance}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint.to_dict(), tmp)
    tmp.replace(path)
    return path


def is_fume_edge_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def checkpoint_from_dict(obj: dict[str, Any], source: str | Path) -> Checkpoint:
    version = obj.get("format_version")
    if version != FORMAT_VERSION:
        raise FumeEdgeError(
            f"{source}: checkpoint format version {version} is not supported (expected {FORMAT_VERSION})"
        )
    try:
        width, height = (int(v) for v in obj["input_size"])
        if "preprocessing" in obj:
            preprocessing = Preprocessing.from_dict(obj["preprocessing"], str(source))
        else:  # saved before the contract was recorded: 8-bit scale from `normalization`, full 16-bit range
            preprocessing = Preprocessing((width, height), uint8_scale=float(obj["normalization"]["scale"]))
        return Checkpoint(
            architecture=str(obj["architecture"]),
            arch_kwargs=dict(obj["arch_kwargs"]),
            state_dict=dict(obj["state_dict"]),
            class_names=list(obj["class_names"]),
            seg_class_names=list(obj["seg_class_names"]),
            preprocessing=preprocessing,
            provenance=dict(obj.get("provenance", {})),
            extra=dict(obj.get("extra", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FumeEdgeError(f"{source}: malformed fume-edge checkpoint (field {exc})") from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a fume-edge checkpoint; a research checkpoint is pointed to `fume-edge import`."""
    obj = load_weights_file(path)
    if not is_fume_edge_checkpoint(obj):
        raise FumeEdgeError(
            f"{path}: not a fume-edge checkpoint; convert a FUME research checkpoint with `fume-edge import {path}`"
        )
    return checkpoint_from_dict(obj, path)
