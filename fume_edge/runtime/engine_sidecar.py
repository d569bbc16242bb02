"""The engine sidecar `NAME.engine.json` (DESIGN §4): what an engine was built from, with and for.

An engine runs only on the TensorRT version and GPU it was built with, and only means what its ONNX meant, so the
sidecar is read and compared before the plan is deserialised; a mismatch is one line with the rebuild command. The
builder (deploy/engine_meta.py) writes it through `write_sidecar`; the backend reads it through `read_sidecar`. It
also carries the ONNX model's metadata_props verbatim (`metadata`) and the I/O specs, so the contract check at load
needs no ONNX file on the device.
"""

from __future__ import annotations

import json
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
        raise FumeEdgeError(f"{path}: engine sidecar missing, so the engine cannot be checked before loading; "
                            "rebuild it with `fume-edge build-engine` (which writes the sidecar), or load it with "
                            "force=True to try it anyway")
    try:
        raw = json.loads(path.read_text())
        raw["io"] = tuple(TensorInfo(t["name"], t["dtype"], tuple(t["shape"]), t["mode"]) for t in raw["io"])
        return Sidecar(**raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise FumeEdgeError(f"{path}: not a fume-edge engine sidecar ({exc}); rebuild the engine with "
                            "`fume-edge build-engine`") from None


@dataclass(frozen=True)
class RunningOn:
    """What the loading machine has, compared with what the engine was built for."""

    tensorrt_version: str
    compute_capability: str | None  # None when no GPU could be asked
    lean_runtime: bool = False


# Version-compatible engines across majors (TensorRT 11.4 support matrix): 8 → 10 and 10 → 11, nothing else.
CROSS_MAJOR_COMPATIBLE = frozenset({(8, 10), (10, 11)})


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def version_compatible_runs(built: str, runtime: str) -> bool:
    """Whether a --version-compatible engine built with TensorRT `built` runs on `runtime` (same major or a
    documented major step, never an older runtime)."""
    b, r = _version(built), _version(runtime)
    return r >= b and (r[0] == b[0] or (b[0], r[0]) in CROSS_MAJOR_COMPATIBLE)


def rebuild_command(sidecar: Sidecar, engine: str | Path, version_compatible: bool = False) -> str:
    flag = {"fp16": " --fp16", "int8-qdq": " --int8", "int8-entropy": " --int8 --calibrator entropy"}.get(
        sidecar.precision, "")
    compat = " --version-compatible" if sidecar.version_compatible or version_compatible else ""
    return f"fume-edge build-engine {sidecar.onnx_path}{flag}{compat} -o {engine}"


def compare_sidecar(sidecar: Sidecar, here: RunningOn, engine: str | Path, onnx_sha256: str | None = None) -> None:
    """Refuse, in one line with the rebuild command, an engine this machine cannot (or should not) run."""
    problems = []
    if sidecar.version_compatible:
        if not version_compatible_runs(sidecar.tensorrt_version, here.tensorrt_version):
            problems.append(f"built with TensorRT {sidecar.tensorrt_version}, which this TensorRT "
                            f"{here.tensorrt_version} cannot run even as a version-compatible engine")
    elif here.lean_runtime:
        problems.append("only the lean runtime is installed here, which runs --version-compatible engines only")
    elif _major_minor(sidecar.tensorrt_version) != _major_minor(here.tensorrt_version):
        problems.append(f"built with TensorRT {sidecar.tensorrt_version}, this is {here.tensorrt_version}")
    if here.compute_capability is not None and here.compute_capability != sidecar.compute_capability:
        problems.append(f"built for a GPU of compute capability {sidecar.compute_capability} ({sidecar.gpu_name}), "
                        f"this GPU is {here.compute_capability}")
    if onnx_sha256 is not None and onnx_sha256 != sidecar.onnx_sha256:
        problems.append(f"{sidecar.onnx_path} changed since the build (sha256 differs)")
    if problems:
        where = "where the full TensorRT is installed" if here.lean_runtime else "here"
        command = rebuild_command(sidecar, engine, version_compatible=here.lean_runtime)
        raise FumeEdgeError(f"{engine}: {'; '.join(problems)}; rebuild it {where}: {command}")
