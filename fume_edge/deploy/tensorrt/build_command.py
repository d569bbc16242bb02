"""`fume-edge build-engine` behind the CLI: checks that need no TensorRT first, then the build, then a summary."""

from __future__ import annotations

import shlex
from pathlib import Path

from fume_edge.console import console
from fume_edge.deploy.tensorrt.tensorrt_build import build_engine, tensorrt_available
from fume_edge.deploy.tensorrt.trt_settings import EngineBuildOptions
from fume_edge.errors import FumeEdgeError


def build_command(model: Path, output: Path, options: EngineBuildOptions, calib: Path | None, data: Path | None,
                  verbose: bool) -> None:
    options.validate()
    if not model.is_file():
        raise FumeEdgeError(f"{model}: ONNX file not found; export one with `fume-edge export`")
    missing = tensorrt_available()
    if missing:
        raise FumeEdgeError(f"build-engine: {missing}")
    result = build_engine(model, output, options, calib=calib, data=data, verbose=verbose)
    info = result.info
    console.print(f"wrote {result.engine} ({result.engine.stat().st_size / 1e6:.1f} MB, {info.precision}, TensorRT "
                  f"{info.tensorrt_version}, {info.gpu_name} sm{info.compute_capability}) in {result.seconds:.0f} s "
                  f"and its sidecar {result.sidecar}")
    console.print(f"next: fume-edge run --co2 CAM --ch4 CAM --model {shlex.quote(str(result.engine))}   "
                  f"(or: trtexec --loadEngine={result.engine})")
