"""`fume-edge build-engine`: ONNX → TensorRT engine (a plain plan trtexec loads) + its sidecar.

Public API (also used by the benchmarks): `tensorrt_available()`, `EngineBuildOptions`, `build_engine(...)` →
`BuildResult`. The version-specific choices come from `trt_settings.build_plan`; this module applies them to the real
TensorRT: TensorRT's log through rich, a progress display, a persistent timing cache in `engines/` keyed by TensorRT
version and GPU, parser errors naming the node, DLA with GPU fallback refused where the device has no DLA.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import onnx

from fume_edge.console import console
from fume_edge.deploy.tensorrt.engine_meta import make_sidecar
from fume_edge.deploy.tensorrt.engine_onnx import calibration_folder, prepare_onnx
from fume_edge.deploy.onnx.quant_graph import load_fp32, model_preprocessing
from fume_edge.deploy.onnx.trt_rules import check_onnx
from fume_edge.deploy.tensorrt.trt_settings import BuildPlan, EngineBuildOptions, InputProfile, build_plan
from fume_edge.errors import FumeEdgeError
from fume_edge.hashing import sha256_file
from fume_edge.runtime.contract import ModelContract
from fume_edge.runtime.cuda_mem import DeviceInfo, device_info, open_stream
from fume_edge.runtime.engine_sidecar import Sidecar, TensorInfo, write_sidecar
from fume_edge.runtime.trt_module import LogSink, make_logger, numpy_dtype_name, shape_of, tensorrt_missing_reason

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["BuildResult", "EngineBuildOptions", "build_engine", "tensorrt_available"]


def tensorrt_available() -> str | None:
    """None when the TensorRT builder imports here; otherwise why not and how to install it (one line)."""
    return tensorrt_missing_reason(lean_ok=False)


@dataclass(frozen=True)
class BuildResult:
    engine: Path
    sidecar: Path
    built_from: Path  # the ONNX the parser read (the source, or the QDQ/FP16 one made from it)
    seconds: float
    info: Sidecar


def timing_cache_path(folder: Path, tensorrt_version: str, device: DeviceInfo) -> Path:
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", device.name).strip("-").lower()
    return folder / f"timing_trt{tensorrt_version}_{gpu}_sm{device.compute_capability.replace('.', '')}.cache"


def _parse(network: trt.INetworkDefinition, logger: trt.ILogger, onnx_path: Path, graph: onnx.GraphProto) -> None:
    """Parse into `network`; a refusal is one line naming the node and its operator."""
    import tensorrt as trt

    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(onnx_path)):
        return
    problems = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        if hasattr(error, "node_name"):  # TensorRT >= 10.0 names the node itself
            where = f"node {error.node_name()!r} ({error.node_operator()})"
        else:  # 8.6 gives the node's index in the graph
            index = error.node()
            node = graph.node[index] if 0 <= index < len(graph.node) else None
            where = f"node {node.name!r} ({node.op_type})" if node is not None else "the graph"
        problems.append(f"{where}: {error.desc()}")
    raise FumeEdgeError(
        f"{onnx_path}: TensorRT's ONNX parser refused it: {problems[0] if problems else 'no reason given'}"
        + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
    )


def _network_io(network: trt.INetworkDefinition) -> tuple[TensorInfo, ...]:
    tensors = [(network.get_input(i), "input") for i in range(network.num_inputs)]
    tensors += [(network.get_output(i), "output") for i in range(network.num_outputs)]
    return tuple(TensorInfo(t.name, numpy_dtype_name(t.dtype), shape_of(t.shape), mode) for t, mode in tensors)


def _profile(builder: trt.Builder, inputs: tuple[InputProfile, ...]) -> trt.IOptimizationProfile:
    """An optimization profile with each input's min/opt/max shapes (a dynamic batch: 1 to N rows)."""
    import tensorrt as trt

    profile = builder.create_optimization_profile()
    for spec in inputs:
        profile.set_shape(spec.name, trt.Dims(list(spec.min)), trt.Dims(list(spec.opt)), trt.Dims(list(spec.max)))
    return profile


def _configure(builder: trt.Builder, plan: BuildPlan, cache_file: Path) -> trt.IBuilderConfig:
    import tensorrt as trt

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    config.builder_optimization_level = plan.optimization_level
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if plan.dla_core is not None:
        if builder.num_DLA_cores == 0:
            raise FumeEdgeError(
                f"--dla-core: TensorRT {trt.__version__} sees no DLA on this device (Orin Nano has "
                "none; AGX Orin and Orin NX have 2; TensorRT 11.x runs DLA on AGX Orin only, from "
                "JetPack 7.2.2); build without --dla-core"
            )
        if plan.dla_core >= builder.num_DLA_cores:
            raise FumeEdgeError(f"--dla-core {plan.dla_core}: this device has DLA cores 0..{builder.num_DLA_cores - 1}")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
    if plan.profile:
        config.add_optimization_profile(_profile(builder, plan.profile))
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    return config


def _write_plan(output: Path, plan_bytes: memoryview) -> None:
    """The plan exactly as TensorRT serialised it (trtexec --loadEngine reads it), written atomically."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.partial-{os.getpid()}")
    try:
        tmp.write_bytes(plan_bytes)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)


def _checked_graph(path: Path, version: str) -> onnx.ModelProto:
    """The ONNX graph, refused (one line, naming the node) where TensorRT `version` would not parse it."""
    model = load_fp32(path)
    check_onnx(model, version).raise_on_errors(path)
    return model


def _build(
    builder: trt.Builder, network: trt.INetworkDefinition, config: trt.IBuilderConfig, what: str
) -> tuple[float, trt.IHostMemory | None]:
    """Build with a progress display; (seconds, serialized plan or None)."""
    from fume_edge.deploy.tensorrt.trt_progress import attach_progress, build_progress

    started = time.perf_counter()
    with build_progress() as bars:
        monitor = attach_progress(config, bars)  # kept referenced while TensorRT calls it
        overall = bars.add_task(f"building with {what}", total=None)
        serialized = builder.build_serialized_network(network, config)
        bars.update(overall, total=1, completed=1)
    del monitor
    return time.perf_counter() - started, serialized


def build_engine(
    onnx_path: str | Path,
    output: str | Path,
    options: EngineBuildOptions = EngineBuildOptions(),
    calib: Path | None = None,
    data: Path | None = None,
    verbose: bool = False,
) -> BuildResult:
    """Build `output` (+ `output.json`) from `onnx_path` on this machine's GPU, checking the graph first."""
    onnx_path, output = Path(onnx_path), Path(output)
    missing = tensorrt_available()
    if missing:
        raise FumeEdgeError(missing)
    import tensorrt as trt

    model = _checked_graph(onnx_path, trt.__version__)  # before any quantization or conversion work
    contract = ModelContract.from_metadata({p.key: p.value for p in model.metadata_props}, str(onnx_path))
    plan = build_plan(trt.__version__, options, contract)
    device = device_info(0)
    built_from = prepare_onnx(onnx_path, plan.onnx_form, output, calib, data)
    if built_from != onnx_path:
        model = _checked_graph(built_from, trt.__version__)
    sink = LogSink(console, verbose)
    logger = cast("trt.ILogger", make_logger(trt, sink))
    builder = trt.Builder(logger)
    flags = sum(1 << int(getattr(trt.NetworkDefinitionCreationFlag, f)) for f in plan.network_flags)
    network = builder.create_network(flags)
    _parse(network, logger, built_from, model.graph)
    cache_file = timing_cache_path(output.parent, trt.__version__, device)
    config = _configure(builder, plan, cache_file)
    with contextlib.ExitStack() as resources:
        if plan.entropy_calibrator:
            from fume_edge.data.calibration import load_calibration
            from fume_edge.deploy.tensorrt.trt_calibrator import EntropyCalibrator

            stream = open_stream(device.index)
            resources.callback(stream.close)
            cset = load_calibration(calibration_folder(onnx_path, calib, data), model_preprocessing(model, built_from))
            config.int8_calibrator = EntropyCalibrator(cset, stream, sha256_file(built_from), network)
        seconds, serialized = _build(builder, network, config, f"TensorRT {trt.__version__} ({plan.sidecar_precision})")
    if serialized is None:
        raise FumeEdgeError(
            f"{built_from}: TensorRT could not build an engine "
            f"({sink.errors[-1][:200] if sink.errors else 'see the TensorRT messages above'})"
        )
    _write_plan(output, memoryview(serialized))
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_bytes(memoryview(config.get_timing_cache().serialize()))
    info = make_sidecar(onnx_path, built_from, trt.__version__, device, _network_io(network), plan, options)
    return BuildResult(output, write_sidecar(output, info), built_from, seconds, info)
