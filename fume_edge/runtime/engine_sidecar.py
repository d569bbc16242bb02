"""The engine sidecar `NAME.engine.json`: what an engine was built from, with and for.

An engine runs only on the exact TensorRT version it was built with (unless version-compatible) and on that GPU, and
only means what its ONNX meant, so the sidecar is read and compared before the plan is deserialised: the full
TensorRT version, the compute capability, the SM count and the L4T release (every Orin reports compute capability
8.7 and the name "Orin", so an AGX Orin engine would pass for an Orin Nano on those two alone). A mismatch is one
line with the exact rebuild command, or a logged warning where the user forces the load. The builder
(deploy/tensorrt/engine_meta.py) writes it through `write_sidecar`; the backend reads it through `read_sidecar`. It
also carries the ONNX model's metadata_props verbatim (`metadata`) and the I/O specs, so the contract check at load
needs no ONNX file on the device.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fume_edge.errors import FumeEdgeError

SCHEMA = 1


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # numpy dtype name: float32, float16, int32, ...
    shape: tuple[int, ...]
    mode: str  # "input" or "output"


@dataclass(frozen=True)
class Sidecar:
    tensorrt_version: str
    precision: str  # fp32, fp16, int8-qdq, int8-entropy
    onnx_sha256: str
    onnx_path: str
    gpu_name: str
    compute_capability: str  # "8.7"
    cuda_version: str
    io: tuple[TensorInfo, ...]
    build_flags: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)  # the ONNX metadata_props, verbatim
    version_compatible: bool = False
    jetpack: str | None = None  # L4T release line on a Jetson
    sm_count: int | None = None  # streaming multiprocessors of the GPU it was built on (None: an older sidecar)
    fume_edge_version: str = ""
    built_at: str = ""  # UTC ISO-8601
    schema: int = SCHEMA

    def io_specs(self, mode: str) -> list[TensorInfo]:
        return [t for t in self.io if t.mode == mode]


def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_sidecar(engine: str | Path, sidecar: Sidecar) -> Path:
    """Write `ENGINE.json` atomically (a half-written sidecar would refuse a good engine)."""
    path = sidecar_path(engine)
    text = json.dumps(asdict(sidecar), indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def read_sidecar(engine: str | Path) -> Sidecar:
    path = sidecar_path(engine)
    if not path.is_file():
        raise FumeEdgeError(
            f"{path}: engine sidecar missing, so the engine cannot be checked before loading; "
            "rebuild it with `fume-edge build-engine` (which writes the sidecar), or load it with "
            "force=True to try it anyway"
        )
    try:
        raw = json.loads(path.read_text())
        raw["io"] = tuple(TensorInfo(t["name"], t["dtype"], tuple(t["shape"]), t["mode"]) for t in raw["io"])
        return Sidecar(**raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise FumeEdgeError(
            f"{path}: not a fume-edge engine sidecar ({exc}); rebuild the engine with `fume-edge build-engine`"
        ) from None


@dataclass(frozen=True)
class RunningOn:
    """What the loading machine has, compared with what the engine was built for."""

    tensorrt_version: str
    compute_capability: str | None  # None when no GPU could be asked
    lean_runtime: bool = False
    sm_count: int | None = None
    l4t: str | None = None  # `L4T R36.4.3` on a Jetson


# Version-compatible engines across majors (TensorRT 11.4 support matrix): 8 → 10 and 10 → 11, nothing else.
CROSS_MAJOR_COMPATIBLE = frozenset({(8, 10), (10, 11)})


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def version_compatible_runs(built: str, runtime: str) -> bool:
    """Whether a --version-compatible engine built with TensorRT `built` runs on `runtime` (same major or a
    documented major step, never an older runtime)."""
    b, r = _version(built), _version(runtime)
    return r >= b and (r[0] == b[0] or (b[0], r[0]) in CROSS_MAJOR_COMPATIBLE)


def rebuild_command(sidecar: Sidecar, engine: str | Path, version_compatible: bool = False) -> str:
    """The build-engine command that makes this engine again, with the options the sidecar recorded."""
    flag = {"fp16": " --fp16", "int8-qdq": " --int8", "int8-entropy": " --int8 --calibrator entropy"}.get(
        sidecar.precision, ""
    )
    dla = sidecar.build_flags.get("dla_core")
    flag += f" --dla-core {dla}" if dla is not None else ""
    compat = " --version-compatible" if sidecar.version_compatible or version_compatible else ""
    return f"fume-edge build-engine {sidecar.onnx_path}{flag}{compat} -o {engine}"


def _version_problem(sidecar: Sidecar, here: RunningOn) -> str | None:
    built, running = sidecar.tensorrt_version, here.tensorrt_version
    if here.lean_runtime and not sidecar.version_compatible:
        return "only the lean runtime is installed here, which runs --version-compatible engines only"
    if here.lean_runtime and _version(built) != _version(running):
        return (
            f"built with TensorRT {built}; the lean runtime {running} runs version-compatible plans of its own "
            f"version only: install the TensorRT {built} lean runtime or the dispatch runtime (tensorrt_dispatch)"
        )
    if sidecar.version_compatible and not version_compatible_runs(built, running):
        return (
            f"built with TensorRT {built}, which this TensorRT {running} cannot run even as a version-compatible engine"
        )
    if not sidecar.version_compatible and _version(built) != _version(running):
        return f"built with TensorRT {built}, this is {running} (an engine runs on its exact TensorRT version only)"
    return None


def sidecar_problems(sidecar: Sidecar, here: RunningOn, onnx_sha256: str | None = None) -> list[str]:
    """Every reason this machine cannot (or should not) run the engine the sidecar describes; [] when it matches.
    A fact either side does not know (no GPU asked yet, an older sidecar, not a Jetson) is not compared."""
    problems = [p for p in (_version_problem(sidecar, here),) if p]
    if here.compute_capability is not None and here.compute_capability != sidecar.compute_capability:
        problems.append(
            f"built for a GPU of compute capability {sidecar.compute_capability} ({sidecar.gpu_name}), "
            f"this GPU is {here.compute_capability}"
        )
    if here.sm_count is not None and sidecar.sm_count is not None and here.sm_count != sidecar.sm_count:
        problems.append(
            f"built on {sidecar.gpu_name} with {sidecar.sm_count} SMs, this GPU has {here.sm_count} "
            "(another Orin model)"
        )
    if (here.l4t or sidecar.jetpack) and here.l4t != sidecar.jetpack:
        problems.append(f"built on {sidecar.jetpack or 'a machine without L4T'}, this is {here.l4t or 'not a Jetson'}")
    if onnx_sha256 is not None and onnx_sha256 != sidecar.onnx_sha256:
        problems.append(f"{sidecar.onnx_path} changed since the build (sha256 differs)")
    return problems


def compare_sidecar(
    sidecar: Sidecar, here: RunningOn, engine: str | Path, onnx_sha256: str | None = None, force: bool = False
) -> str | None:
    """Refuse, in one line with the exact rebuild command, an engine this machine cannot (or should not) run; with
    `force`, log that line as a warning and return it instead (None: it matches)."""
    problems = sidecar_problems(sidecar, here, onnx_sha256)
    if not problems:
        return None
    where = "where the full TensorRT is installed" if here.lean_runtime else "here"
    command = rebuild_command(sidecar, engine, version_compatible=here.lean_runtime)
    message = f"{engine}: {'; '.join(problems)}; rebuild it {where}: {command}"
    if not force:
        raise FumeEdgeError(message)
    logging.getLogger("fume_edge.tensorrt").warning("loading anyway (forced): %s", message)
    return message


def rebuild_reason(engine: str | Path, here: RunningOn, onnx_sha256: str | None = None) -> str | None:
    """Why `engine` must be (re)built before this machine runs it: no engine, a missing or unreadable sidecar, or
    a sidecar that does not match. None: load it, and let any other load error surface as itself (`bench` must not
    start a minutes-long build over a wrong --device or a contract mismatch)."""
    if not Path(engine).is_file():
        return "no engine yet"
    try:
        sidecar = read_sidecar(engine)
    except FumeEdgeError as exc:
        return str(exc)
    problems = sidecar_problems(sidecar, here, onnx_sha256)
    return "; ".join(problems) if problems else None
