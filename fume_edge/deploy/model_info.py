"""What a model file is: architecture, parameters, GFLOPs at its input size, I/O and classes (`fume-edge info`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.contract import TensorSpec


@dataclass
class ModelInfo:
    path: Path
    kind: str  # "checkpoint", "onnx", "engine"
    architecture: str
    parameters: int | None
    gflops: float | None
    input_size: tuple[int, int]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    class_names: list[str]
    seg_class_names: list[str]
    details: dict[str, Any] = field(default_factory=dict)


# Shown in their own rows of `info`, so not repeated among the details.
_SHOWN_METADATA = {
    "class_names",
    "seg_class_names",
    "parameters",
    "gflops",
    "architecture",
    "arch_kwargs",
    "input_size",
    "preprocessing.input_size",
}
# A checkpoint's training record is long; `info` shows what identifies the run and how good it was.
_TRAINING_KEYS = ("model", "data.image_size", "epochs", "batch_size", "run_name")
_HEADLINE_METRICS = ("balanced_accuracy", "macro_f1", "accuracy", "gas_iou", "joint")


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Nested mappings as dotted keys (`quant.report.balanced_accuracy.int8`)."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _text(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    return str(value)


def tidy_details(details: dict[str, Any]) -> dict[str, str]:
    """Flat, sorted, empty values and what has its own row left out, each value one readable string."""
    flat = _flatten(details, "")
    return {
        key: _text(flat[key])
        for key in sorted(flat)
        if flat[key] not in (None, "", [], {}) and key not in _SHOWN_METADATA
    }


def _checkpoint_details(provenance: dict[str, Any]) -> dict[str, Any]:
    details = {k: v for k, v in provenance.items() if k not in ("config", "metrics")}
    config = _flatten(provenance.get("config") or {}, "")
    details["training"] = {key: config[key] for key in _TRAINING_KEYS if key in config}
    metrics = provenance.get("metrics") or {}
    headline = {k.removeprefix("val_"): v for k, v in metrics.items() if k.removeprefix("val_") in _HEADLINE_METRICS}
    details["metrics"] = headline or {k: v for k, v in metrics.items() if k != "epoch"}  # imported: best_metric
    return details


def _onnx_details(meta: dict[str, str]) -> dict[str, Any]:
    """fume-edge's metadata without the `fume_edge.` prefix or what has its own row; JSON values parsed."""
    import json

    details: dict[str, Any] = {}
    for key, raw in meta.items():
        name = key.removeprefix("fume_edge.")
        if not key.startswith("fume_edge.") or name in _SHOWN_METADATA:
            continue
        try:
            value = json.loads(raw) if raw[:1] in "[{" else raw
        except ValueError:
            value = raw
        if name == "quant.excluded_nodes" and isinstance(value, list):
            value = f"{len(value)}: " + ", ".join(
                str(node).rsplit("/", 2)[-2] + "/" + str(node).rsplit("/", 1)[-1] if "/" in str(node) else str(node)
                for node in value
            )
        details[name] = value
    return details


def profile_forward(model: Any, input_size: tuple[int, int]) -> tuple[float, list[TensorSpec]]:
    """One forward pass at (width, height): GFLOPs (multiply and add counted apart) and the outputs it returns."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    width, height = input_size
    frame = torch.zeros(1, 1, height, width)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        out = model(frame, frame, torch.ones(1, 2))
    specs = [TensorSpec(name, str(t.dtype).replace("torch.", ""), tuple(t.shape)) for name, t in out.items()]
    return counter.get_total_flops() / 1e9, specs


def _frame_inputs(width: int, height: int) -> list[TensorSpec]:
    frame = (1, 1, height, width)
    return [
        TensorSpec("co2", "float32", frame),
        TensorSpec("ch4", "float32", frame),
        TensorSpec("modality_mask", "float32", (1, 2)),
    ]


def _checkpoint_info(path: Path) -> ModelInfo:
    from fume_edge.model.checkpoint import load_checkpoint
    from fume_edge.model.registry import count_parameters

    ckpt = load_checkpoint(path)
    model = ckpt.build_model()
    gflops, outputs = profile_forward(model, ckpt.input_size)
    return ModelInfo(
        path=path,
        kind="checkpoint",
        architecture=f"{ckpt.architecture}({', '.join(f'{k}={v}' for k, v in ckpt.arch_kwargs.items())})",
        parameters=count_parameters(model),
        gflops=gflops,
        input_size=ckpt.input_size,
        inputs=_frame_inputs(*ckpt.input_size),
        outputs=outputs,
        class_names=ckpt.class_names,
        seg_class_names=ckpt.seg_class_names,
        details=tidy_details(_checkpoint_details(ckpt.provenance) | {"preprocessing": ckpt.preprocessing.to_dict()}),
    )


def _metadata_info(
    path: Path,
    kind: str,
    meta: dict[str, str],
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    extra: dict[str, Any],
) -> ModelInfo:
    """From the graph's I/O and the metadata fume-edge writes at export (ONNX metadata_props, copied into sidecars)."""
    import json

    height, width = inputs[0].shape[-2:] if inputs else (0, 0)
    arch = meta.get("fume_edge.architecture", "unknown (not exported by fume-edge)")
    kwargs = json.loads(meta.get("fume_edge.arch_kwargs", "{}"))
    return ModelInfo(
        path=path,
        kind=kind,
        architecture=f"{arch}({', '.join(f'{k}={v}' for k, v in kwargs.items())})" if kwargs else arch,
        parameters=int(meta["fume_edge.parameters"]) if "fume_edge.parameters" in meta else None,
        gflops=float(meta["fume_edge.gflops"]) if "fume_edge.gflops" in meta else None,
        input_size=(int(width), int(height)),
        inputs=inputs,
        outputs=outputs,
        class_names=json.loads(meta.get("fume_edge.class_names", "[]")),
        seg_class_names=json.loads(meta.get("fume_edge.seg_class_names", "[]")),
        details=tidy_details(_onnx_details(meta) | extra),
    )


def _onnx_info(path: Path) -> ModelInfo:
    """No onnx package needed on a device: ONNX Runtime reads the graph's I/O and metadata."""
    from fume_edge.runtime.onnx_backend import open_session, tensor_specs

    session = open_session(path, device="cpu")
    return _metadata_info(
        path,
        "onnx",
        dict(session.get_modelmeta().custom_metadata_map),
        tensor_specs(session.get_inputs()),
        tensor_specs(session.get_outputs()),
        {},
    )


def _engine_info(path: Path) -> ModelInfo:
    """From the engine's sidecar alone: no TensorRT or GPU needed to say what an engine is and was built for."""
    from fume_edge.runtime.engine_sidecar import read_sidecar

    sidecar = read_sidecar(path)

    def specs(mode: str) -> list[TensorSpec]:
        return [TensorSpec(t.name, t.dtype, t.shape) for t in sidecar.io_specs(mode)]

    built = {
        "precision": sidecar.precision,
        "TensorRT": sidecar.tensorrt_version,
        "GPU": f"{sidecar.gpu_name} (compute capability {sidecar.compute_capability})",
        "CUDA": sidecar.cuda_version,
        "JetPack": sidecar.jetpack or "—",
        "built": sidecar.built_at,
        "built from": f"{sidecar.onnx_path} (sha256 {sidecar.onnx_sha256[:16]}…)",
        "version compatible": "yes" if sidecar.version_compatible else "no",
    }
    return _metadata_info(path, "engine", sidecar.metadata, specs("input"), specs("output"), built)


def model_info(path: str | Path) -> ModelInfo:
    path = Path(path)
    if not path.exists():
        raise FumeEdgeError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    if suffix == ".pt":
        return _checkpoint_info(path)
    if suffix == ".onnx":
        return _onnx_info(path)
    if suffix in (".engine", ".plan"):
        return _engine_info(path)
    raise FumeEdgeError(f"{path}: unknown model type {suffix!r}; `info` reads .pt, .onnx and .engine files")
