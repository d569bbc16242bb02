"""The bundled default model (what `run` and `info` use when no model is given) and its model card."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fume_edge.errors import FumeEdgeError

DEFAULT_MODEL_NAMES = ("fume_default.onnx", "fume_default.pt")


def default_model_path() -> Path:
    """The bundled model file: the ONNX export when present, else the checkpoint."""
    folder = Path(str(resources.files("fume_edge.assets")))
    for name in DEFAULT_MODEL_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise FumeEdgeError(f"{folder}: no bundled model found; pass a model file explicitly")
