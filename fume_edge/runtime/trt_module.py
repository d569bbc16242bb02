"""Finding TensorRT on this machine, imported only when a TensorRT path is asked for.

The full `tensorrt` module builds and runs engines; the lean runtime only runs engines built with
`--version-compatible`. It is `tensorrt_lean` from the Debian/tar/JetPack packages (and pip's front-end package) and
`tensorrt_lean_bindings` from the standalone pip wheel (`tensorrt-lean-cu12-bindings`): `LEAN_MODULES` lists both,
and every place that looks for TensorRT (backend, doctor, bench) uses `RUNTIME_MODULES`. How to get either differs by
machine: JetPack ships TensorRT as an apt package (a venv needs --system-site-packages to see it; pip's wheels are not
built for Tegra), desktops install NVIDIA's wheels.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
from pathlib import Path
from types import ModuleType
from typing import Protocol

from rich.console import Console
from rich.markup import escape

from fume_edge.errors import FumeEdgeError
from fume_edge.extras import tensorrt_install_hint

FULL_MODULE = "tensorrt"
LEAN_MODULES = ("tensorrt_lean", "tensorrt_lean_bindings")
RUNTIME_MODULES = (FULL_MODULE, *LEAN_MODULES)  # the order the backend tries them
TEGRA_RELEASE = Path("/etc/nv_tegra_release")


def is_jetson() -> bool:
    return TEGRA_RELEASE.is_file()


def l4t_release(path: Path = TEGRA_RELEASE) -> str | None:
    """`L4T R36.4.0` from /etc/nv_tegra_release ("# R36 (release), REVISION: 4.0, ..."), None off a Jetson."""
    if not path.is_file():
        return None
    match = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", path.read_text(errors="replace"))
    return f"L4T R{match.group(1)}.{match.group(2)}" if match else "L4T (unknown release)"


def _import(name: str) -> ModuleType | None:
    """The module, or None; a folder of type stubs (`tensorrt-stubs` installs `tensorrt/*.pyi`) imports as an empty
    namespace package, which is not TensorRT."""
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    return module if hasattr(module, "__version__") else None


def installed_runtime_modules() -> tuple[str, ...]:
    """The TensorRT modules found here, without importing them (doctor and bench must not load CUDA)."""
    found = []
    for name in RUNTIME_MODULES:
        try:
            if importlib.util.find_spec(name) is not None:
                found.append(name)
        except (ImportError, ValueError):
            continue
    return tuple(found)


def is_lean(module: ModuleType) -> bool:
    """Whether `module` is a lean runtime (it runs version-compatible engines only)."""
    return module.__name__.partition(".")[0] in LEAN_MODULES


def tensorrt_missing_reason(lean_ok: bool = False) -> str | None:
    """None when TensorRT imports here; otherwise one line: what is missing and how to get it."""
    names = RUNTIME_MODULES if lean_ok else (FULL_MODULE,)
    if any(_import(name) is not None for name in names):
        return None
    what = "TensorRT's Python module (tensorrt)" + (" or its lean runtime" if lean_ok else "")
    return f"{what} is not installed here; {tensorrt_install_hint(is_jetson())}"


def import_runtime_module() -> ModuleType:
    """`tensorrt`, else a lean runtime (`LEAN_MODULES`): all expose the same Runtime/engine API."""
    for name in RUNTIME_MODULES:
        module = _import(name)
        if module is not None:
            return module
    raise FumeEdgeError(tensorrt_missing_reason(lean_ok=True) or "TensorRT is not installed here")


def module_version(module: ModuleType) -> str:
    return str(getattr(module, "__version__", "unknown"))


LOG = logging.getLogger("fume_edge.tensorrt")
LOG_LEVELS = {
    "INTERNAL_ERROR": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "INFO": logging.INFO,
    "VERBOSE": logging.DEBUG,
}


class LogSink:
    """Where TensorRT's log goes: the build's console when it has one, else the `fume_edge.tensorrt` log (a running
    engine's warnings must reach the service's log); errors are also kept for the one-line message."""

    def __init__(self, console: Console | None = None, verbose: bool = False) -> None:
        self.console = console
        self.verbose = verbose
        self.errors: list[str] = []

    def emit(self, severity_name: str, message: str) -> None:
        if severity_name in ("ERROR", "INTERNAL_ERROR"):
            self.errors.append(message)
        styles = {"INTERNAL_ERROR": "bold red", "ERROR": "red", "WARNING": "yellow"}
        if self.console is None:
            level = LOG_LEVELS.get(severity_name, logging.DEBUG)
            if level >= logging.WARNING or self.verbose:
                LOG.log(level, "TensorRT: %s", message)
        elif severity_name in styles or self.verbose:
            self.console.print(f"[{styles.get(severity_name, 'dim')}]TensorRT:[/] {escape(message)}", highlight=False)


def make_logger(module: ModuleType, sink: LogSink) -> object:
    """A `module.ILogger` (full TensorRT or the lean runtime: the same class shape) that writes to `sink`."""

    class RoutedLogger(module.ILogger):  # type: ignore[name-defined,misc]  # base chosen at run time
        def __init__(self) -> None:
            module.ILogger.__init__(self)

        def log(self, severity: object, msg: str) -> None:
            sink.emit(getattr(severity, "name", str(severity)), msg)

    return RoutedLogger()


# TensorRT DataType member names → numpy dtype names (the engine's I/O as the sidecar records it).
NUMPY_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
}


def numpy_dtype_name(datatype: object) -> str:
    name = str(getattr(datatype, "name", datatype))
    if name not in NUMPY_DTYPES:
        raise FumeEdgeError(f"TensorRT tensor type {name} has no numpy counterpart fume-edge uses")
    return NUMPY_DTYPES[name]


class IndexedDims(Protocol):
    """TensorRT's `Dims`: indexable and sized, but not declared iterable."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> int: ...


def shape_of(dims: IndexedDims) -> tuple[int, ...]:
    return tuple(int(dims[i]) for i in range(len(dims)))
