"""The optional features of fume-edge, the pip extra that brings each, and the one line that installs it.

The device install has only the base dependencies; every command that needs more, the CLI's missing-module
handler and `doctor` name the extra from this one table, so a hint always installs what it promises.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    """An optional feature: what the user runs, the extra (pyproject.toml) and the top-level modules it imports."""

    command: str
    extra: str
    modules: tuple[str, ...]

    @property
    def hint(self) -> str:
        return install_hint(self.extra)

    def missing(self) -> list[str]:
        """Its modules this install lacks (found by spec, never imported: torch alone takes seconds)."""
        return [module for module in self.modules if not _importable(module)]


FEATURES: tuple[Feature, ...] = (
    Feature("train", "train", ("torch", "matplotlib")),
    Feature("export, calibrate, quantize", "export", ("torch", "onnx", "onnxsim")),
    Feature("run --mqtt", "mqtt", ("paho",)),
    Feature("run --http (web page)", "web", ("starlette", "uvicorn", "prometheus_client")),
    Feature("bundle (signed model updates)", "bundle", ("cryptography",)),
    Feature("collect, fleet (central side)", "fleet", ("psycopg",)),
)


def install_hint(extra: str) -> str:
    """The install line for an extra, from PyPI and from a clone of the repository."""
    return f"pip install 'fume-edge[{extra}]' (in a clone: pip install -e '.[{extra}]')"


TENSORRT_JETSON_HINT = (
    "on a Jetson: `sudo apt install python3-libnvinfer` (JetPack) and a venv made with "
    "--system-site-packages (never pip install tensorrt there)"
)
TENSORRT_DESKTOP_HINT = "on a desktop GPU: `pip install --extra-index-url https://pypi.nvidia.com tensorrt`"


def tensorrt_install_hint(jetson: bool = False) -> str:
    """How to get TensorRT's Python module, which no extra brings (JetPack's package on a Jetson, NVIDIA's wheel on
    a desktop GPU): the Jetson way on a Jetson, both ways elsewhere (engines are built on the device that runs them,
    so a desktop user may be about to move to one)."""
    return TENSORRT_JETSON_HINT if jetson else f"{TENSORRT_JETSON_HINT}; {TENSORRT_DESKTOP_HINT}"


def feature_for_module(module: str) -> Feature | None:
    """The first feature whose extra brings this module (a dotted name counts by its top-level package)."""
    top = module.split(".")[0]
    return next((feature for feature in FEATURES if top in feature.modules), None)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
