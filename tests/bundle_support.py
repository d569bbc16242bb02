"""Helpers for the model-bundle tests: signing keys, a small validation split, model variants made with onnx
helpers (a different sha, a worse model, a model that turns NaN on bright frames) and hostile bundle rewrites."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from fume_edge.assets import default_model_path
from fume_edge.bundle.keys import generate_keypair
from fume_edge.bundle.make import MakeOptions, make_bundle
from fume_edge.bundle.manifest import Manifest
from fume_edge.bundle.store import InstalledModel, ModelStore

DEFAULT_ONNX = default_model_path()


def keypair(folder: Path, name: str = "signer") -> tuple[Path, Path]:
    """A private key and a trusted-keys folder holding its public key."""
    private, public = generate_keypair(folder / "keys" / f"{name}.key")
    trusted = folder / f"trusted-{name}"
    trusted.mkdir()
    (trusted / public.name).write_bytes(public.read_bytes())
    return private, trusted


def _default() -> onnx.ModelProto:
    return onnx.load(str(DEFAULT_ONNX))


def variant_onnx(path: Path, tag: str) -> Path:
    """The default model with one more metadata entry: the same outputs, another sha."""
    model = _default()
    model.metadata_props.append(onnx.StringStringEntryProto(key="fume_edge.test_variant", value=tag))
    onnx.save(model, str(path))
    return path


def worse_onnx(path: Path, scale: float = 3.0, seed: int = 0) -> Path:
    """The default model with noise on every weight: it loads and runs, but scores far worse."""
    model = _default()
    rng = np.random.default_rng(seed)
    for index, tensor in enumerate(model.graph.initializer):
        values = numpy_helper.to_array(tensor)
        if values.dtype == np.float32 and values.size > 16:
            noisy = values + scale * values.std() * rng.standard_normal(values.shape).astype(np.float32)
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(noisy, tensor.name))
    onnx.save(model, str(path))
    return path


def nan_on_bright_onnx(path: Path, threshold: float = 0.9) -> Path:
    """The default model plus ph_logits += 0 * log(threshold - mean(co2)): NaN when the CO2 frame's mean input is
    above `threshold` (a white frame), exact otherwise (mid-gray load check, the validation set)."""
    model = _default()
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["ph_logits_raw" if out == "ph_logits" else out for out in node.output]
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(threshold, np.float32), "nan_threshold"),
            numpy_helper.from_array(np.array(0.0, np.float32), "nan_zero"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("ReduceMean", ["co2"], ["co2_mean"], keepdims=0),
            helper.make_node("Sub", ["nan_threshold", "co2_mean"], ["headroom"]),
            helper.make_node("Log", ["headroom"], ["headroom_log"]),
            helper.make_node("Mul", ["headroom_log", "nan_zero"], ["nan_or_zero"]),
            helper.make_node("Add", ["ph_logits_raw", "nan_or_zero"], ["ph_logits"]),
        ]
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make(folder: Path, model: Path, val: Path, key: Path, version: str, metrics: Path | None = None) -> Path:
    output = folder / f"{version}.fume"
    make_bundle(
        MakeOptions(
            model=model,
            val=val,
            key=key,
            output=output,
            card=DEFAULT_ONNX.with_name("MODEL_CARD.md"),
            metrics=metrics,
            version=version,
            val_count=2,
        )
    )
    return output


def metrics_json(bundle: Path, path: Path) -> Path:
    """The bundle's recorded metrics as an eval JSON (what `bundle make --metrics` reads)."""
    with tarfile.open(bundle) as tar:
        manifest = Manifest.from_bytes(tar.extractfile("manifest.json").read(), str(bundle))  # type: ignore[union-attr]
    path.write_text(json.dumps({"metrics": manifest.metrics}), encoding="utf-8")
    return path


def rewrite(
    source: Path, target: Path, change: dict[str, bytes | None] | None = None, extra: dict[str, bytes] | None = None
) -> Path:
    """A copy of the tar `source` with members replaced (or dropped: None) and `extra` members appended."""
    change = change or {}
    with tarfile.open(source) as src, tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as out:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name in change:
                if change[member.name] is None:
                    continue
                data = change[member.name]  # type: ignore[assignment]
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return target


def install_plain(store: ModelStore, version: str, model: Path, sha: str) -> None:
    """A version in the store without the gate (tests of the live swap, not of the install)."""
    staging = store.new_staging()
    (staging / "model").mkdir()
    (staging / "model" / "fume.onnx").write_bytes(model.read_bytes())
    installed_at = f"2026-01-01T00:00:0{len(store.versions())}"
    store.commit(
        staging,
        InstalledModel(
            version=version,
            model="model/fume.onnx",
            model_sha256=sha,
            backend="onnxruntime",
            installed_at=installed_at,
            gate={},
        ),
    )
