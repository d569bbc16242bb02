"""Which cuda-python goes with this machine's CUDA driver, told apart from "no GPU".

cuda-python N.x is statically linked against the CUDA N runtime: on an older driver (cuda-python 13 on JetPack 6's
CUDA 12 driver) every call returns error 35, `cudaErrorInsufficientDriver`, exactly what a machine without any
driver returns. The driver's own CUDA version (`cuDriverGetVersion`, 0 or no libcuda without a driver) tells the
two apart. Nothing here imports cuda-python, so `doctor` and `bench` can use it as cheaply as the backend.
"""

from __future__ import annotations

import ctypes
import re
from importlib import metadata

# The fume-edge extra (pyproject.toml) per CUDA major, and the JetPack that ships that CUDA.
EXTRAS = {12: "trt-cu12", 13: "trt-cu13"}
JETPACKS = {12: "JetPack 6", 13: "JetPack 7"}


def cuda_python_pin(major: int) -> str:
    """The cuda-python requirement for a CUDA `major` driver."""
    return f"cuda-python>={major},<{major + 1}"


def install_line(major: int) -> str:
    """The one command that installs the right cuda-python for a CUDA `major` driver."""
    extra = f" (or pip install 'fume-edge[{EXTRAS[major]}]')" if major in EXTRAS else ""
    return f"pip install '{cuda_python_pin(major)}'{extra}"


def bindings_major() -> int | None:
    """The CUDA major the installed cuda-python is built for (its own major), None when it is not installed."""
    for name in ("cuda-bindings", "cuda-python"):
        try:
            match = re.match(r"\d+", metadata.version(name))
        except metadata.PackageNotFoundError:
            continue
        if match:
            return int(match.group())
    return None


def driver_cuda_version() -> int:
    """The newest CUDA the driver supports (12060 = 12.6), 0 when there is no NVIDIA driver here."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    version = ctypes.c_int(0)
    return version.value if libcuda.cuDriverGetVersion(ctypes.byref(version)) == 0 else 0


def version_text(version: int) -> str:
    """12060 → "12.6"."""
    return f"{version // 1000}.{version % 1000 // 10}"


def cuda_python_advice(driver: int, bindings: int | None) -> str | None:
    """One line when cuda-python cannot work with this driver (too new, or missing), with the exact install; None
    when it matches or when there is no driver at all (then the advice is about the GPU, not cuda-python)."""
    if driver <= 0:
        return None
    major = driver // 1000
    if bindings is None:
        return f"cuda-python is not installed; for this CUDA {version_text(driver)} driver: {install_line(major)}"
    if bindings > major:
        where = f" ({JETPACKS[major]})" if major in JETPACKS else ""
        return (
            f"cuda-python {bindings}.x needs a CUDA {bindings} driver, this driver supports CUDA "
            f"{version_text(driver)}{where}: {install_line(major)}"
        )
    return None
