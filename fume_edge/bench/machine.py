"""What a benchmark ran on: CPU, cores, GPU, Jetson release and power mode, library versions.

Everything is probed without importing the heavy libraries (versions come from the installed distributions'
metadata), so describing the machine never loads torch, TensorRT or CUDA; a probe that fails records None.
`fume-edge doctor` reads the same probes.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

# Distribution names that carry each library (the first installed one wins).
DISTRIBUTIONS = {
    "numpy": ("numpy",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "torch": ("torch",),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-lean-cu12-bindings"),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "fume-edge": ("fume-edge",),
}


def package_version(name: str) -> str | None:
    """Installed version of a library by its distribution names, or of JetPack's apt TensorRT module."""
    for dist in DISTRIBUTIONS.get(name, (name,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    if name == "tensorrt" and importlib.util.find_spec("tensorrt") is not None:
        return "installed (apt python3-libnvinfer)"
    return None


def command_output(*argv: str, timeout: float = 10.0) -> str | None:
    """stdout of a command, or None when it is not there or fails."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def cpu_info() -> dict[str, Any]:
    """CPU model, cores and the ISA flags that decide INT8 speed on the CPU (from /proc/cpuinfo)."""
    path = Path("/proc/cpuinfo")
    text = path.read_text() if path.exists() else ""
    blocks = [dict(re.findall(r"^([^:\n]+?)\s*:\s*(.*)$", b, re.M)) for b in text.split("\n\n") if b.strip()]
    first: dict[str, str] = blocks[0] if blocks else {}
    flags = set(first.get("flags", first.get("Features", "")).split())
    model = first.get("model name") or first.get("Model") or platform.processor() or platform.machine()
    return {
        "model": model,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "avx2": "avx2" in flags,
        "avx512_vnni": "avx512_vnni" in flags,
        "avx_vnni": "avx_vnni" in flags,
        "vnni": bool({"avx512_vnni", "avx_vnni"} & flags),
        "neon": bool({"asimd", "neon"} & flags),
    }


def gpu_info() -> dict[str, Any] | None:
    """The first NVIDIA GPU: name, compute capability, driver (nvidia-smi); None without one."""
    out = command_output(
        "nvidia-smi", "--query-gpu=name,compute_cap,driver_version,memory.total", "--format=csv,noheader"
    )
    if out is None:
        return None
    fields = [f.strip() for f in out.splitlines()[0].split(",")]
    keys = ("name", "compute_capability", "driver", "memory")
    return dict(zip(keys, fields, strict=False))


def jetson_info() -> dict[str, Any] | None:
    """L4T and JetPack release, board model, power mode and whether the clocks are locked; None off a Jetson.

    The Jetson facts are `service.jetson`'s (the ones `jetson_setup.sh` prints), so a figure records the same.
    """
    from dataclasses import asdict

    from fume_edge.service.jetson import bench_conditions

    conditions = bench_conditions()
    if conditions is None:
        return None
    model_path = Path("/proc/device-tree/model")
    model = model_path.read_text(errors="replace").strip("\x00\n ") if model_path.exists() else None
    return {**asdict(conditions), "model": model, "conditions": conditions.summary()}


def machine_info() -> dict[str, Any]:
    """Everything the benchmark JSON records about where it ran."""
    return {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_info(),
        "gpu": gpu_info(),
        "jetson": jetson_info(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": {name: package_version(name) for name in DISTRIBUTIONS},
    }


def machine_label(info: dict[str, Any]) -> str:
    """A short name for tables and file names: the Jetson board, the GPU, or the CPU and its cores."""
    if info.get("jetson") and info["jetson"].get("model"):
        return str(info["jetson"]["model"])
    if info.get("gpu"):
        return str(info["gpu"]["name"])
    return f"{info['cpu']['model']}, {info['cpu']['usable_cores']} cores"


def machine_slug(info: dict[str, Any], threads: int | None = None) -> str:
    """A file-name part naming the machine (and a thread count), e.g. `amd-epyc-2-cores-threads1`."""
    slug = "-".join(re.sub(r"[^a-z0-9]+", " ", machine_label(info).lower()).split())
    return slug + (f"-threads{threads}" if threads else "")


def busy_cpu_seconds() -> float | None:
    """CPU seconds every process on the machine spent busy since boot (/proc/stat), to tell our load from others'."""
    path = Path("/proc/stat")
    if not path.exists():
        return None
    fields = [float(v) for v in path.read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
