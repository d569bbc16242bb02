"""Import a checkpoint written by the FUME research code into a fume-edge checkpoint.

The research code saves `{"model_state_dict": ..., "epoch", "best_metric", "config", optimizer/scheduler state}`;
other tools save `{"state_dict": ...}` or a bare state dict, sometimes with DataParallel's `module.` prefix. The
architecture (shared vs separate encoders, class counts) is read off the tensors, so no config is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fume_edge.model.checkpoint import (
    Checkpoint,
    describe_key_mismatch,
    is_fume_edge_checkpoint,
    load_weights_file,
)
from fume_edge.errors import FumeEdgeError
from fume_edge.hashing import sha256_file
from fume_edge.runtime.pre import Preprocessing
from fume_edge.labels import INPUT_HEIGHT, INPUT_WIDTH, PH_CLASS_NAMES, SEG_CLASS_NAMES
from fume_edge.model.registry import count_parameters, create_model

ARCHITECTURE = "fume_fastscnn"
_CLS_OUT = "cls_head.8.weight"
_SEG_OUT = "co2_seg_head.classifier.3.weight"


@dataclass
class ImportOptions:
    """What the research checkpoint may not hold, as the user states it (None: the checkpoint's config, else the
    fume-edge default, which is then reported as assumed)."""

    input_size: tuple[int, int] | None = None
    class_names: list[str] | None = None
    uint16_range: tuple[float, float] | None = None  # raw 16-bit counts of thermal training frames


@dataclass
class ImportResult:
    checkpoint: Checkpoint
    parameters: int
    source_epoch: int | None
    source_metric: float | None
    assumed: dict[str, str]  # field -> the flag that states it, for each value fume-edge had to assume


def _extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    for key in ("model_state_dict", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FumeEdgeError(
            f"{path}: no state dict found (expected a dict with 'model_state_dict' or 'state_dict', or a bare state "
            "dict)"
        )
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def _encoders_shared(state: dict[str, torch.Tensor]) -> bool:
    """Shared when every CH4 encoder tensor equals its CO2 twin (the research code saves both prefixes)."""
    co2 = {k[len("co2_encoder.") :]: v for k, v in state.items() if k.startswith("co2_encoder.")}
    ch4 = {k[len("ch4_encoder.") :]: v for k, v in state.items() if k.startswith("ch4_encoder.")}
    if not ch4:
        return True
    return co2.keys() == ch4.keys() and all(torch.equal(co2[k], ch4[k]) for k in co2)


def _class_count(state: dict[str, torch.Tensor], key: str, path: Path) -> int:
    if key not in state:
        raise FumeEdgeError(
            f"{path}: {describe_key_mismatch(ARCHITECTURE, [key], [])}; is this a FUME-FastSCNN checkpoint?"
        )
    return int(state[key].shape[0])


def _config_names(config: dict[str, Any], key: str, count: int) -> list[str] | None:
    names = config.get("data", {}).get(key) if isinstance(config.get("data"), dict) else None
    if isinstance(names, (list, tuple)) and len(names) == count:
        return [str(n) for n in names]
    return None


def _default_names(default: tuple[str, ...], count: int) -> list[str]:
    return list(default) if len(default) == count else [f"class_{i}" for i in range(count)]


def _config_size(config: dict[str, Any]) -> tuple[int, int] | None:
    size = config.get("data", {}).get("image_size") if isinstance(config.get("data"), dict) else None
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return int(size[0]), int(size[1])
    return None


def import_research_checkpoint(path: str | Path, options: ImportOptions | None = None) -> ImportResult:
    """Read a research checkpoint, infer its architecture, load it strictly, and wrap it as a fume-edge Checkpoint.

    The research code scales 8-bit frames by 1/255; `options.uint16_range` is the raw 16-bit count range its
    training data used, when it was thermal (default: the full 0..65535). Both are recorded as the checkpoint's
    preprocessing, with the input size.
    """
    path, options = Path(path), options or ImportOptions()
    obj = load_weights_file(path)
    if is_fume_edge_checkpoint(obj):
        raise FumeEdgeError(f"{path}: already a fume-edge checkpoint; use it directly")
    state = _extract_state_dict(obj, path)
    arch_kwargs = {
        "num_classes": _class_count(state, _CLS_OUT, path),
        "num_seg_classes": _class_count(state, _SEG_OUT, path),
        "shared_encoder": _encoders_shared(state),
    }
    model = create_model(ARCHITECTURE, **arch_kwargs)
    _check_shapes(model.state_dict(), state, path)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise FumeEdgeError(
            f"{path}: {describe_key_mismatch(ARCHITECTURE, result.missing_keys, result.unexpected_keys)}"
        )

    meta = obj if isinstance(obj, dict) else {}
    config = found if isinstance(found := meta.get("config"), dict) else {}
    epoch = meta.get("epoch")
    metric = meta.get("best_metric")
    if options.class_names is not None and len(options.class_names) != arch_kwargs["num_classes"]:
        raise FumeEdgeError(
            f"--class-names: {len(options.class_names)} names given, the checkpoint's pH head has "
            f"{arch_kwargs['num_classes']} classes"
        )
    assumed: dict[str, str] = {}
    input_size = options.input_size or _config_size(config)
    if input_size is None:
        input_size, assumed["input size"] = (INPUT_WIDTH, INPUT_HEIGHT), "--input-size WIDTHxHEIGHT"
    class_names = options.class_names or _config_names(config, "class_names", arch_kwargs["num_classes"])
    if class_names is None:
        class_names, assumed["pH class names"] = (
            _default_names(PH_CLASS_NAMES, arch_kwargs["num_classes"]),
            "--class-names A,B,C",
        )
    seg_names = _config_names(config, "seg_class_names", arch_kwargs["num_seg_classes"])
    checkpoint = Checkpoint(
        architecture=ARCHITECTURE,
        arch_kwargs=arch_kwargs,
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        class_names=class_names,
        seg_class_names=seg_names or _default_names(SEG_CLASS_NAMES, arch_kwargs["num_seg_classes"]),
        preprocessing=Preprocessing(input_size, uint16_range=options.uint16_range or (0.0, 65535.0)),
        provenance={
            "assumed": sorted(assumed),
            "source": "fume-research",
            "source_file": path.name,
            "source_sha256": sha256_file(path),
            "epoch": int(epoch) if epoch is not None else None,
            "metrics": {"best_metric": float(metric)} if metric is not None else {},
        },
    )
    return ImportResult(
        checkpoint=checkpoint,
        parameters=count_parameters(model),
        source_epoch=checkpoint.provenance["epoch"],
        source_metric=float(metric) if metric is not None else None,
        assumed=assumed,
    )


def _check_shapes(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], path: Path) -> None:
    for key, tensor in state.items():
        if key in expected and tuple(expected[key].shape) != tuple(tensor.shape):
            raise FumeEdgeError(
                f"{path}: key {key} has shape {tuple(tensor.shape)}, {ARCHITECTURE} expects "
                f"{tuple(expected[key].shape)}"
            )
