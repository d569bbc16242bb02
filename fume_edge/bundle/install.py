"""`fume-edge bundle install`: verify, unpack, build, gate, switch, prune; the one function the CLI, the page
and MQTT all call.

The running model is never touched until the switch, which is one atomic symlink replace; any refusal or failure
before it leaves nothing behind but an event. A running `fume-edge run` sees the new `models/current` and swaps
its backend between two ticks (`bundle/live.py`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fume_edge.alerts.event import iso_utc
from fume_edge.bundle.archive import read_bundle
from fume_edge.bundle.gate import GateResult, GateSettings, run_gate
from fume_edge.bundle.keys import load_trusted_keys, trusted_keys_dir
from fume_edge.bundle.manifest import (
    DEFAULT_MAX_MB,
    INT8_MODEL_NAME,
    MODEL_NAME,
    THRESHOLDS_NAME,
    VAL_CSV_NAME,
    Manifest,
)
from fume_edge.bundle.store import InstalledModel, ModelStore, models_dir
from fume_edge.errors import FumeEdgeError

Progress = Callable[[str], None]


@dataclass(frozen=True)
class InstallOptions:
    models: Path | None = None  # [default: $FUME_EDGE_MODELS or ./models]
    trusted_keys: Path | None = None  # [default: $FUME_EDGE_TRUSTED_KEYS or /etc/fume-edge/trusted_keys]
    max_mb: float = DEFAULT_MAX_MB
    keep: int = 3
    gate: GateSettings = field(default_factory=GateSettings)


@dataclass(frozen=True)
class InstallResult:
    model: InstalledModel
    previous: str | None
    removed: list[str]
    seconds: float


def _wants_tensorrt(device: str) -> bool:
    if device not in ("auto", "cuda", "gpu", "tensorrt"):
        return False
    from fume_edge.deploy.tensorrt.tensorrt_build import tensorrt_available

    return tensorrt_available() is None


def build_deployable(staging: Path, manifest: Manifest, device: str, progress: Progress) -> tuple[Path, str]:
    """This device's form of the model: a TensorRT engine (INT8 from the bundle's QDQ ONNX, else FP16) where
    the TensorRT builder is here, else the FP32 ONNX for ONNX Runtime."""
    if not _wants_tensorrt(device):
        return staging / MODEL_NAME, "onnxruntime"
    from fume_edge.deploy.tensorrt.tensorrt_build import build_engine
    from fume_edge.deploy.tensorrt.trt_settings import EngineBuildOptions

    precision = "int8" if manifest.has(INT8_MODEL_NAME) else "fp16"
    source = staging / (INT8_MODEL_NAME if precision == "int8" else MODEL_NAME)
    progress(f"building the TensorRT {precision} engine (minutes; the running model keeps inferring)")
    engine = staging / "engine" / f"fume.{precision}.engine"
    result = build_engine(source, engine, EngineBuildOptions(precision=precision))
    return result.engine, f"tensorrt-{precision}"


def _rejection(manifest: Manifest, gate: GateResult) -> str:
    return f"model {manifest.version} rejected by the gate: {'; '.join(gate.failures)}; the running model is unchanged"


def install_bundle(
    bundle: Path, options: InstallOptions = InstallOptions(), progress: Progress = lambda _: None
) -> InstallResult:
    """Install `bundle` and make it current, or raise FumeEdgeError (one line) with nothing changed."""
    started = time.perf_counter()
    store = ModelStore(models_dir(options.models))
    with store.install_lock():
        return _install_locked(bundle, store, options, progress, started)


def _install_locked(
    bundle: Path, store: ModelStore, options: InstallOptions, progress: Progress, started: float
) -> InstallResult:
    staging = store.new_staging()
    try:
        progress(f"verifying {bundle}")
        try:
            keys = load_trusted_keys(trusted_keys_dir(options.trusted_keys))
            manifest = read_bundle(bundle, keys, int(options.max_mb * 1e6), dest=staging)
        except FumeEdgeError as exc:
            store.event("model_refused", bundle=str(bundle), reason=str(exc))
            raise
        store.event("model_verified", version=manifest.version, model_sha=manifest.model_sha256, bundle=str(bundle))
        if store.installed(manifest.version) is not None:
            raise FumeEdgeError(
                f"{bundle}: version {manifest.version} is already installed; switch to it with "
                f"`fume-edge bundle rollback {manifest.version}`"
            )
        deployable, backend = build_deployable(staging, manifest, options.gate.device, progress)
        store.event("model_built", version=manifest.version, backend=backend)
        progress(f"gating {manifest.version} on its validation set")
        gate = run_gate(deployable, staging / VAL_CSV_NAME, manifest.metrics, options.gate)
        if not gate.passed:
            store.event(
                "model_rejected",
                version=manifest.version,
                model_sha=manifest.model_sha256,
                failures=gate.failures,
                figures=gate.figures,
            )
            raise FumeEdgeError(_rejection(manifest, gate))
        store.event("model_gated", version=manifest.version, figures=gate.figures)
        model = InstalledModel(
            version=manifest.version,
            model=deployable.relative_to(staging).as_posix(),
            model_sha256=manifest.model_sha256,
            backend=backend,
            installed_at=iso_utc(time.time()),
            gate=gate.figures,
        )
        store.commit(staging, model)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    previous = store.switch(model.version)
    store.event("model_switched", version=model.version, model_sha=model.model_sha256, previous=previous)
    thresholds = store.root / model.version / THRESHOLDS_NAME
    if thresholds.is_file():
        progress(
            f"{model.version} carries the alert thresholds it was validated with ({thresholds}); they are not "
            "applied: to use them, copy them into run.yaml's `alerts:` section and restart the run"
        )
    removed = store.prune(options.keep)
    if removed:
        store.event("models_pruned", removed=removed)
    return InstallResult(model, previous, removed, time.perf_counter() - started)


def rollback(models: Path | None, version: str | None = None, reason: str = "requested") -> tuple[str, str | None]:
    """Make `version` (default: the previous one) current again; returns (now current, was current)."""
    store = ModelStore(models_dir(models))
    target = version or store.previous()
    if target is None:
        raise FumeEdgeError(f"{store.root}: no previous model to roll back to; see `fume-edge bundle list`")
    was = store.switch(target)
    store.event("model_rolled_back", version=target, rolled_back=was, reason=reason)
    return target, was


def status(models: Path | None) -> dict[str, object]:
    """The current and previous versions and the last event, for `bundle status` (and the page later)."""
    store = ModelStore(models_dir(models))
    current = store.current()
    installed = None if current is None else store.installed(current)
    events = store.events()
    thresholds = None if current is None else store.root / current / THRESHOLDS_NAME
    return {
        "models_dir": str(store.root),
        "current": None if installed is None else asdict(installed),
        "thresholds": str(thresholds) if thresholds is not None and thresholds.is_file() else None,
        "previous": store.previous(),
        "versions": [m.version for m in store.versions()],
        "last_event": events[-1] if events else None,
    }
