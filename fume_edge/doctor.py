"""`fume-edge doctor`: what this machine has, and for each command what is missing with the one command that fixes it.

Every probe is cheap and cannot crash the report: libraries are found by their metadata (torch, TensorRT and CUDA
are never imported), the GPU and Jetson facts come from `nvidia-smi`, `/etc/nv_tegra_release` and `nvpmodel`,
cameras from `/dev/video*` (formats through `v4l2-ctl` where installed), the MQTT broker by a TCP connect. The
exit code is 0 when `run` can load its configured model here.
"""

from __future__ import annotations

import glob
import platform
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fume_edge.bench.machine import command_output, cpu_info, gpu_info, jetson_info, package_version
from fume_edge.errors import FumeEdgeError
from fume_edge.extras import FEATURES, Feature, feature_for_module, install_hint, tensorrt_install_hint

if TYPE_CHECKING:
    from fume_edge.pipeline.config import ModelConfig

MIN_PYTHON = (3, 10)


@dataclass
class Finding:
    """One thing checked: what was found, whether it is fine, and how to fix it when not."""

    what: str
    found: str
    ok: bool
    fix: str | None = None


def _python() -> Finding:
    ok = sys.version_info[:2] >= MIN_PYTHON
    fix = (
        None
        if ok
        else (
            "Python 3.10+: on JetPack 5 upgrade to JetPack 6 (Python 3.10), or use a Python 3.10 "
            "venv (e.g. `uv venv -p 3.10`)"
        )
    )
    return Finding("Python", f"{platform.python_version()} ({sys.executable})", ok, fix)


def _onnxruntime() -> Finding:
    version = package_version("onnxruntime")
    if version is None:
        return Finding(
            "ONNX Runtime", "missing", False, "pip install onnxruntime (Jetson: NVIDIA's onnxruntime-gpu wheel)"
        )
    import onnxruntime

    providers = ", ".join(p.replace("ExecutionProvider", "") for p in onnxruntime.get_available_providers())
    return Finding("ONNX Runtime", f"{version}; providers: {providers}", True)


def _library(label: str, name: str, extra: str) -> Finding:
    version = package_version(name)
    return Finding(label, version or "missing", version is not None, None if version else install_hint(extra))


def _tensorrt(gpu: bool, jetson: bool) -> Finding:
    from fume_edge.runtime.trt_module import FULL_MODULE, installed_runtime_modules

    found = installed_runtime_modules()
    full, lean = FULL_MODULE in found, any(name != FULL_MODULE for name in found)
    if full or lean:
        kind = "full (builder)" if full else "lean runtime only (runs version-compatible engines, cannot build)"
        return Finding("TensorRT", f"{package_version('tensorrt') or ''} {kind}".strip(), True)
    fix = tensorrt_install_hint(jetson) if gpu else "needs an NVIDIA GPU or a Jetson"
    return Finding("TensorRT", "not installed", False, fix)


def _cuda(gpu: dict[str, str] | None) -> Finding:
    """The driver's CUDA version against cuda-python's CUDA major (cuda-python 13 on a CUDA 12 driver fails with
    error 35, like no GPU at all), without importing cuda-python."""
    from fume_edge.runtime.cuda_compat import bindings_major, cuda_python_advice, driver_cuda_version, version_text

    runtime = package_version("cuda-python") or package_version("cuda-bindings")
    driver, bindings = driver_cuda_version(), bindings_major()
    parts = [f"driver {gpu.get('driver')}"] if gpu else []
    parts += [f"driver supports CUDA {version_text(driver)}"] if driver else ["no NVIDIA driver (libcuda not found)"]
    if runtime:
        parts.append(f"cuda-python {runtime} (built for CUDA {bindings})")
    if not driver:
        return Finding(
            "CUDA",
            ", ".join(parts),
            False,
            "TensorRT needs an NVIDIA GPU and its driver (Jetson: part of JetPack); the ONNX Runtime CPU "
            "path needs neither",
        )
    advice = cuda_python_advice(driver, bindings)
    return Finding("CUDA", ", ".join(parts), advice is None, advice)


def _gpu(gpu: dict[str, str] | None, jetson: dict[str, str | None] | None) -> Finding:
    if gpu:
        return Finding("GPU", f"{gpu['name']} (compute capability {gpu.get('compute_capability')})", True)
    if jetson:
        return Finding("GPU", f"Jetson integrated GPU ({jetson.get('model')})", True)
    return Finding("GPU", "none", False, "CPU inference only (ONNX Runtime); TensorRT needs an NVIDIA GPU or a Jetson")


def _jetson(jetson: dict[str, str | None] | None) -> Finding | None:
    if jetson is None:
        return None
    ok = not str(jetson["l4t"]).startswith("35")
    fix = None if ok else "JetPack 5 has Python 3.8: reflash the Orin with JetPack 6.2 (L4T 36.4, TensorRT 10.3)"
    return Finding("Jetson", f"{jetson.get('model') or 'Jetson'}: {jetson['conditions']}", ok, fix)


def _cameras() -> Finding:
    devices = sorted(glob.glob("/dev/video*"))
    if not devices:
        return Finding(
            "Cameras",
            "no /dev/video* devices",
            False,
            "plug in the cameras (or use video files / `synthetic` with `run`)",
        )
    described = []
    for device in devices[:4]:
        listing = command_output("v4l2-ctl", "--list-formats", "-d", device, timeout=3)
        if listing is None:
            described.append(device)
            continue
        formats = sorted({line.split("'")[1] for line in listing.splitlines() if "'" in line})
        described.append(f"{device} ({', '.join(formats) or 'no capture formats'})")
    fix = None if command_output("v4l2-ctl", "--version") else "sudo apt install v4l-utils (to list formats)"
    return Finding("Cameras", "; ".join(described), True, fix)


def _mqtt(url: str | None) -> Finding | None:
    if not url:
        return None
    from fume_edge.alerts.mqtt import parse_mqtt_url

    try:
        target = parse_mqtt_url(url, "sinks.mqtt.url")
        with socket.create_connection((target.host, target.port), timeout=2):
            pass
    except FumeEdgeError as exc:
        return Finding("MQTT broker", url, False, str(exc))
    except OSError as exc:
        return Finding(
            "MQTT broker",
            f"{target.host}:{target.port} unreachable ({exc.strerror or exc})",
            False,
            "start the broker (`sudo systemctl start mosquitto`) or fix sinks.mqtt.url",
        )
    paho = package_version("paho-mqtt")
    return Finding(
        "MQTT broker",
        f"{target.host}:{target.port} reachable",
        paho is not None,
        None if paho else install_hint("mqtt"),
    )


def _configured_model(config: ModelConfig) -> Path:
    """The model a run starts on: `model.path`, else the store's current bundle, else `model.until_installed()`."""
    if config.path:
        return Path(config.path)
    return config.store().current_model() or config.until_installed()


def _model(path: Path, device: str) -> tuple[Finding, bool]:
    """Whether `run`'s model (`_configured_model`, or the one given) loads here on its configured device."""
    try:
        from fume_edge.runtime.base import load_backend

        with load_backend(path, device=device) as backend:
            name = getattr(backend, "providers", [backend.name])[0]
        return Finding(
            "Model for run",
            f"{path.name} loads ({name.replace('ExecutionProvider', '')}, "
            f"{backend.input_size[0]}x{backend.input_size[1]})",
            True,
        ), True
    except FumeEdgeError as exc:
        return Finding("Model for run", "does not load", False, str(exc)), False
    except ModuleNotFoundError as exc:
        feature = feature_for_module(exc.name or "")
        return Finding("Model for run", f"needs {exc.name}", False, feature.hint if feature else None), False


def _feature(feature: Feature) -> Finding:
    missing = feature.missing()
    return Finding(
        feature.command,
        f"{', '.join(missing)} missing" if missing else "ready",
        not missing,
        feature.hint if missing else None,
    )


def _display() -> Finding:
    from fume_edge.pipeline.view import check_display

    try:
        check_display()
    except FumeEdgeError as exc:
        return Finding("run --display", "unavailable", False, str(exc).split(": ", 1)[-1])
    return Finding("run --display", "available", True)


def diagnose(config: Path | None = None, model: Path | None = None) -> tuple[list[Finding], list[Finding], bool]:
    """(machine findings, per-command findings, whether `run` can load its model)."""
    from fume_edge.pipeline.config import load_run_config

    gpu, jetson = gpu_info(), jetson_info()
    cpu = cpu_info()
    run_config, _ = load_run_config(config)
    gpu_found, tensorrt = _gpu(gpu, jetson), _tensorrt(gpu is not None or jetson is not None, jetson is not None)
    machine = [
        _python(),
        Finding(
            "CPU",
            f"{cpu['model']}, {cpu['usable_cores']} cores" + (", VNNI (fast INT8 on the CPU)" if cpu["vnni"] else ""),
            True,
        ),
        gpu_found,
        _cuda(gpu),
        tensorrt,
        _onnxruntime(),
        _library("torch", "torch", "train"),
        _cameras(),
    ]
    machine += [f for f in (_jetson(jetson), _mqtt(run_config.sinks.mqtt.url)) if f is not None]
    model_finding, runnable = _model(model or _configured_model(run_config.model), run_config.model.device)
    commands = [
        model_finding,
        _display(),
        *(_feature(feature) for feature in FEATURES),
        Finding(
            "bench tensorrt-* rows",
            "ready" if tensorrt.ok and gpu_found.ok else "unavailable",
            tensorrt.ok and gpu_found.ok,
            tensorrt.fix or gpu_found.fix,
        ),
    ]
    return machine, commands, runnable


def _table(title: str, findings: list[Finding]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    table.add_column()
    for f in findings:
        mark = "[green]ok[/]" if f.ok else "[yellow]missing[/]"
        table.add_row(escape(f.what), mark, escape(f.found) + (f"\n[dim]fix: {escape(f.fix)}[/]" if f.fix else ""))
    return table


def doctor_command(console: Console, config: Path | None = None, model: Path | None = None) -> int:
    machine, commands, runnable = diagnose(config, model)
    console.print(_table("This machine", machine))
    console.print(_table("Commands", commands))
    if runnable:
        console.print(
            "[green]ready:[/] `fume-edge run` can load its model here; next: "
            "`fume-edge run --co2 synthetic --ch4 synthetic` (or your cameras)",
            highlight=False,
        )
        return 0
    console.print("[red]not ready:[/] `fume-edge run` cannot load its model here; apply the fix above", highlight=False)
    return 1
