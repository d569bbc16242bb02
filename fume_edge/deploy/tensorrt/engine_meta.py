"""The sidecar a build writes beside its engine, through runtime.engine_sidecar (what the backend reads).

The builder knows what the loader must check: TensorRT and CUDA versions, the GPU, its compute capability and SM
count, JetPack's L4T release, precision, the ONNX file's sha256 and metadata_props (verbatim: the model contract),
the I/O tensors, the build flags, fume-edge's version and the build time.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import onnx

from fume_edge import __version__
from fume_edge.deploy.tensorrt.trt_settings import BuildPlan, EngineBuildOptions
from fume_edge.hashing import sha256_file
from fume_edge.runtime.cuda_mem import DeviceInfo
from fume_edge.runtime.engine_sidecar import Sidecar, TensorInfo
from fume_edge.runtime.trt_module import l4t_release

__all__ = ["l4t_release", "make_sidecar", "onnx_metadata"]


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ONNX model's metadata_props, read without its weights."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def make_sidecar(
    onnx_source: Path,
    built_from: Path,
    tensorrt_version: str,
    device: DeviceInfo,
    io: tuple[TensorInfo, ...],
    plan: BuildPlan,
    options: EngineBuildOptions,
) -> Sidecar:
    """`onnx_source`: the ONNX the user named (its sha256 ties the engine to it); `built_from`: the ONNX the parser
    read (the same file, or the QDQ / FP16 one made from it), whose metadata the engine carries."""
    return Sidecar(
        tensorrt_version=tensorrt_version,
        precision=plan.sidecar_precision,
        onnx_sha256=sha256_file(onnx_source),
        onnx_path=str(onnx_source),
        gpu_name=device.name,
        compute_capability=device.compute_capability,
        cuda_version=device.cuda_runtime,
        io=io,
        build_flags={
            "network_flags": list(plan.network_flags),
            "builder_flags": list(plan.builder_flags),
            "built_from": str(built_from),
            "built_from_sha256": sha256_file(built_from),
            **asdict(options),
        },
        metadata=onnx_metadata(built_from),
        version_compatible=options.version_compatible,
        jetpack=l4t_release(),
        sm_count=device.sm_count,
        fume_edge_version=__version__,
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
