"""The backends `fume-edge bench` knows, each made into a `Runner` for one model, or a reason it cannot run here.

- `torch`: eager PyTorch, float32: the checkpoint when a `.pt` is given, else the architecture the ONNX metadata
  names, freshly initialised (eager speed does not depend on the weights' values; the row says so);
- `onnxruntime`: the FP32 ONNX in ONNX Runtime (`--device` picks the provider);
- `onnxruntime-int8`: the same ONNX quantized for the CPU target (`bench/int8.py`), on the CPU provider;
- `tensorrt-fp16`, `tensorrt-int8`: an engine built from the ONNX (`tensorrt_runner`).
Nothing here imports torch, TensorRT or CUDA until its row is asked for.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fume_edge.bench.backend_names import BACKENDS
from fume_edge.bench.machine import gpu_info, jetson_info
from fume_edge.bench.model import Runner
from fume_edge.extras import install_hint, tensorrt_install_hint
from fume_edge.labels import GASES
from fume_edge.pipeline.prepare import ModelInputs
from fume_edge.runtime.base import Backend, Prediction, prediction_from_outputs
from fume_edge.runtime.pre import Preprocessing


@dataclass
class Models:
    """The model files `bench` was given: a checkpoint, an ONNX export and/or a TensorRT engine (at least one)."""

    checkpoint: Path | None
    onnx: Path | None
    int8_calibration: Path | None = None
    engine: Path | None = None  # a TensorRT engine (with its sidecar) to measure as it is


@dataclass
class Unavailable:
    """A row that is not measured, and why (shown in the table and the JSON)."""

    name: str
    reason: str  # short, for the table's verdict
    fix: str | None = None  # the command or step that makes the row measurable


def frame_inputs(preprocessing: Preprocessing) -> tuple[ModelInputs, tuple[np.ndarray, np.ndarray]]:
    """The loop's preprocessing for a model and one synthetic 8-bit camera pair to feed it."""
    from fume_edge.bench.pipeline import render_frames

    frames = render_frames(preprocessing.input_size, count=1)
    return ModelInputs(GASES, dict.fromkeys(GASES, preprocessing)), (frames["co2"][0], frames["ch4"][0])


def onnx_preprocessing(path: Path) -> Preprocessing:
    """The preprocessing an ONNX export's contract carries."""
    from fume_edge.runtime.onnx_backend import OnnxBackend

    with OnnxBackend(path, device="cpu") as backend:
        return backend.contract.preprocessing


# How `bench --stations N` exports the loop's batch-N model, per backend: `--dynamic-batch` where a short tick run
# as its own pairs beats padding it to N. ONNX Runtime on the CPU, FP32 and INT8 alike: 1 pair of 3 is 2.8-4.4x
# faster than padded, full ticks no slower (benchmarks/README.md, "Short ticks").
DYNAMIC_LOOP_BATCH = {"onnxruntime": True, "onnxruntime-int8": True}


def onnx_runner(name: str, precision: str, path: Path, device: str, threads: int | None, note: str) -> Runner:
    from fume_edge.runtime.onnx_backend import OnnxBackend, run_session

    backend = OnnxBackend(path, device=device, threads=threads)
    inputs, pair = frame_inputs(backend.contract.preprocessing)

    def model(feeds: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
        return run_session(backend.session, *feeds)

    def post(outputs: dict[str, np.ndarray]) -> object:
        prediction = prediction_from_outputs(outputs, backend.contract)
        _ = prediction.gas_area  # what the policy reads, counted once
        return prediction

    return Runner(
        name,
        precision,
        backend.providers[0],
        note,
        lambda: inputs.prepare(pair),
        model,
        post,  # type: ignore[arg-type]
        backend.close,
        model_file=path,
    )


def _architecture_from_onnx(path: Path) -> tuple[str, dict[str, object]]:
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if "fume_edge.architecture" not in meta:
        from fume_edge.errors import FumeEdgeError

        raise FumeEdgeError(
            f"{path}: no fume_edge.architecture metadata, so the torch row cannot rebuild the model; "
            "pass the checkpoint (.pt) too"
        )
    return meta["fume_edge.architecture"], json.loads(meta.get("fume_edge.arch_kwargs", "{}"))


def _torch_runner(models: Models, device: str, threads: int | None) -> Runner:
    import torch

    from fume_edge.labels import PH_LOGITS, SEG_LOGITS
    from fume_edge.runtime.contract import SEG_OUTPUTS
    from fume_edge.runtime.torch_backend import resolve_device

    if threads:
        torch.set_num_threads(threads)
    if models.checkpoint is not None:
        from fume_edge.model.checkpoint import load_checkpoint

        ckpt = load_checkpoint(models.checkpoint)
        module, note = ckpt.build_model(), f"checkpoint {models.checkpoint.name}"
        contract = ckpt.contract(str(models.checkpoint), module)
    else:
        from fume_edge.model.registry import create_model
        from fume_edge.runtime.onnx_backend import OnnxBackend

        assert models.onnx is not None
        arch, kwargs = _architecture_from_onnx(models.onnx)
        module = create_model(arch, **kwargs)
        with OnnxBackend(models.onnx, device="cpu") as exported:
            contract = exported.contract
        note = f"{arch} rebuilt from the ONNX metadata, fresh weights (speed does not depend on them)"
    target = resolve_device("cpu" if device == "auto" and not torch.cuda.is_available() else device)
    module = module.eval().to(target)
    inputs, pair = frame_inputs(contract.preprocessing)

    @torch.inference_mode()
    def model(feeds: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, torch.Tensor]:
        out = module(*(torch.from_numpy(a).to(target) for a in feeds))
        if target.type == "cuda":
            torch.cuda.synchronize()
        return out

    @torch.inference_mode()
    def post(out: dict[str, torch.Tensor]) -> Prediction:
        outputs = {"ph_logits": out[PH_LOGITS].float().cpu().numpy()}
        for gas, name in SEG_OUTPUTS.items():
            outputs[name] = out[SEG_LOGITS[gas]].argmax(dim=1).to(torch.int32).cpu().numpy()
        prediction = prediction_from_outputs(outputs, contract)
        _ = prediction.gas_area
        return prediction

    return Runner(
        "torch",
        "fp32",
        str(target),
        note + "; argmax in post",
        lambda: inputs.prepare(pair),
        model,
        post,
        model_file=models.checkpoint,
    )


def tensorrt_unavailable() -> tuple[str, str | None] | None:
    """(why TensorRT rows cannot run here, how to fix it), or None when a GPU and TensorRT are both present."""
    from fume_edge.runtime.cuda_compat import bindings_major, cuda_python_advice, driver_cuda_version
    from fume_edge.runtime.trt_module import installed_runtime_modules

    jetson = jetson_info() is not None
    has_gpu = gpu_info() is not None or jetson
    has_trt = bool(installed_runtime_modules())
    advice = cuda_python_advice(driver_cuda_version(), bindings_major()) if has_gpu else None
    if advice:
        return "cuda-python does not match the driver", advice
    if not has_gpu and not has_trt:
        return "no GPU; TensorRT not installed", f"TensorRT needs an NVIDIA GPU; then {tensorrt_install_hint(jetson)}"
    if not has_gpu:
        return "no GPU", "run it on a machine with an NVIDIA GPU or a Jetson"
    if not has_trt:
        return "TensorRT not installed", tensorrt_install_hint(jetson)
    return None


def tensorrt_runner(models: Models, precision: str, device: str) -> Runner | Unavailable:
    """A TensorRT engine built from the ONNX at `precision` (INT8: explicit QDQ from the calibration set), kept in
    the cache and reused while its sidecar matches this TensorRT and GPU; timed through the `.engine` backend.

    The builder is `fume_edge.deploy.tensorrt.tensorrt_build`; where this build of fume-edge lacks it, the row says so.
    """
    name = f"tensorrt-{precision}"
    if importlib.util.find_spec("fume_edge.deploy.tensorrt.tensorrt_build") is None:
        return Unavailable(
            name,
            "this fume-edge build has no TensorRT engine builder",
            "install a fume-edge release with `fume-edge build-engine`",
        )
    from fume_edge.bench.int8 import bench_calibration, cache_dir
    from fume_edge.deploy.tensorrt.tensorrt_build import EngineBuildOptions, build_engine, tensorrt_available
    from fume_edge.hashing import sha256_file
    from fume_edge.runtime.base import load_backend
    from fume_edge.runtime.engine_sidecar import rebuild_reason
    from fume_edge.runtime.trt_backend import running_here

    missing = tensorrt_available()
    if missing:
        return Unavailable(name, "TensorRT builder not importable", missing)
    assert models.onnx is not None
    onnx_sha = sha256_file(models.onnx)
    engine = cache_dir() / "bench" / f"{onnx_sha[:16]}-{precision}.engine"
    if rebuild_reason(engine, running_here(), onnx_sha) is not None:  # reused while its sidecar matches
        calib = (
            bench_calibration(onnx_preprocessing(models.onnx), models.int8_calibration) if precision == "int8" else None
        )
        build_engine(models.onnx, engine, EngineBuildOptions(precision=precision), calib=calib)
    return engine_runner(name, precision, load_backend(engine, device=device), engine)


def engine_runner(name: str, precision: str, backend: Backend, engine: Path) -> Runner:
    """A loaded TensorRT engine as a row: its `infer` (copies in, execute, copies out, masks) is the model call."""
    inputs, pair = frame_inputs(backend.contract.preprocessing)
    return Runner(
        name,
        precision,
        f"TensorRT {engine.name}",
        "infer: copies in, execute, copies out, masks",
        lambda: inputs.prepare(pair),
        lambda feeds: backend.infer(*feeds),
        lambda prediction: prediction,
        backend.close,
        model_file=engine,
    )


def given_engine_runner(name: str, engine: Path, device: str) -> Runner | Unavailable:
    """The engine file the user passed, in the row of the precision its sidecar records (`NAME.engine.json`)."""
    from fume_edge.runtime.base import load_backend

    sidecar = engine.with_name(engine.name + ".json")
    built = json.loads(sidecar.read_text()).get("precision") if sidecar.is_file() else None  # e.g. fp16, int8-qdq
    wanted = name.split("-", 1)[1]
    if built is not None and built.split("-")[0] != wanted:
        return Unavailable(name, f"the given engine is {built}", f"build one with `fume-edge build-engine --{wanted}`")
    return engine_runner(name, wanted, load_backend(engine, device=device), engine)


def make_runner(name: str, models: Models, device: str, threads: int | None) -> Runner | Unavailable:
    """The runner for one backend name, or why it cannot run; user errors (bad files) raise FumeEdgeError."""
    if name.startswith("tensorrt-"):
        missing = tensorrt_unavailable()
        if missing is not None:
            return Unavailable(name, *missing)
        if models.engine is not None:
            return given_engine_runner(name, models.engine, device)
        if models.onnx is None:
            return Unavailable(name, "no ONNX model given", "fume-edge export CHECKPOINT")
        return tensorrt_runner(models, name.split("-", 1)[1], device)
    if name == "torch":
        if importlib.util.find_spec("torch") is None:
            return Unavailable(name, "torch not installed", install_hint("train"))
        if models.onnx is None and models.checkpoint is None:
            return Unavailable(name, "no checkpoint or ONNX model given", "pass the model's .pt or .onnx too")
        return _torch_runner(models, device, threads)
    if models.onnx is None:
        return Unavailable(name, "no ONNX model given", "pass the engine's .onnx too, or `fume-edge export CHECKPOINT`")
    if name == "onnxruntime":
        return onnx_runner(name, "fp32", models.onnx, device, threads, models.onnx.name)
    if name == "onnxruntime-int8":
        from fume_edge.bench.int8 import cpu_int8_model, is_quantized

        if not is_quantized(models.onnx) and importlib.util.find_spec("onnx") is None:
            return Unavailable(name, "quantizing needs onnx", install_hint("export"))
        path, how = cpu_int8_model(models.onnx, onnx_preprocessing(models.onnx), models.int8_calibration)
        return onnx_runner(name, "int8", path, "cpu", threads, how)
    from fume_edge.errors import FumeEdgeError

    raise FumeEdgeError(f"--backends {name!r}: unknown backend; choose from {', '.join(BACKENDS)}")
