"""Signed model bundles end to end on the CPU: make, verify, install (hostile bundles refused, a worse model
rejected by the gate, SIGKILL mid-install), the hot swap in a running loop and the rollback after it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bundle_support import (
    DEFAULT_ONNX, install_plain, keypair, make, metrics_json, nan_on_bright_onnx, rewrite, variant_onnx, worse_onnx,
)
from train_support import make_paired_dataset

from fume_edge.bundle.gate import GateSettings
from fume_edge.bundle.install import InstallOptions, install_bundle
from fume_edge.bundle.live import HealthSettings, ModelUpdates
from fume_edge.bundle.store import ModelStore
from fume_edge.errors import FumeEdgeError
from fume_edge.hashing import sha256_file
from fume_edge.runtime.base import load_backend
from fume_edge.runtime.holder import SwappableBackend

GATE = GateSettings(min_fps=0.1, device="cpu")  # speed is benchmarked, not asserted


def wait_for(condition, timeout_s: float = 60.0, poll_s: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(poll_s)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Keys, a validation split, a good bundle (v1) installed into a models folder kept as a template."""
    root = tmp_path_factory.mktemp("bundle")
    (root / "data").mkdir()
    val = make_paired_dataset(root / "data", pairs=24) / "paired_val.csv"
    key, trusted = keypair(root)
    good = make(root, DEFAULT_ONNX, val, key, "v1")
    models = root / "models-template"
    install_bundle(good, InstallOptions(models=models, trusted_keys=trusted, gate=GATE))
    return {"root": root, "val": val, "key": key, "trusted": trusted, "good": good, "models": models}


@pytest.fixture()
def models(world: dict[str, Path], tmp_path: Path) -> Path:
    """A fresh copy of the models folder with v1 current."""
    return Path(shutil.copytree(world["models"], tmp_path / "models", symlinks=True))


def _state(models: Path) -> tuple[str | None, list[str]]:
    store = ModelStore(models)
    return store.current(), sorted(p.name for p in models.iterdir())


def test_good_bundle_installs_and_is_current(world: dict[str, Path], models: Path) -> None:
    store = ModelStore(models)
    assert store.current() == "v1"
    installed = store.installed("v1")
    assert installed is not None and installed.model_sha256 == sha256_file(DEFAULT_ONNX)
    assert installed.gate["non_finite"] == 0 and installed.gate["gas_iou"] == installed.gate["recorded_gas_iou"]
    assert [e["event"] for e in store.events()][-2:] == ["model_gated", "model_switched"]


def _hostile(world: dict[str, Path], case: str, tmp_path: Path) -> tuple[Path, InstallOptions]:
    good, options = world["good"], InstallOptions(trusted_keys=world["trusted"], gate=GATE)
    if case == "tampered":
        card = b"# a card nobody signed\n"
        import tarfile

        with tarfile.open(good) as tar:
            size = tar.getmember("MODEL_CARD.md").size
        return rewrite(good, tmp_path / "x.fume", {"MODEL_CARD.md": card.ljust(size, b" ")}), options
    if case == "wrong_signature":
        return rewrite(good, tmp_path / "x.fume", {"manifest.sig": os.urandom(64)}), options
    if case == "untrusted_key":
        _, other = keypair(tmp_path, "other")
        return good, InstallOptions(trusted_keys=other, gate=GATE)
    if case == "truncated":
        data = good.read_bytes()
        (tmp_path / "x.fume").write_bytes(data[: len(data) // 2])
        return tmp_path / "x.fume", options
    if case == "path_traversal":
        return rewrite(good, tmp_path / "x.fume", extra={"../../etc/fume-evil": b"owned\n"}), options
    assert case == "over_size"
    return good, InstallOptions(trusted_keys=world["trusted"], gate=GATE, max_mb=1.0)


@pytest.mark.parametrize("case", ["tampered", "wrong_signature", "untrusted_key", "truncated", "path_traversal",
                                  "over_size"])
def test_hostile_bundle_is_refused_with_one_line_and_the_running_model_unchanged(
        world: dict[str, Path], models: Path, tmp_path: Path, case: str) -> None:
    bundle, options = _hostile(world, case, tmp_path)
    before = _state(models)
    with pytest.raises(FumeEdgeError) as refused:
        install_bundle(bundle, InstallOptions(models=models, trusted_keys=options.trusted_keys, max_mb=options.max_mb,
                                              gate=GATE))
    message = str(refused.value)
    assert "\n" not in message and str(bundle) in message
    assert _state(models) == before  # no new version, no staging leftovers, current still v1
    assert not (tmp_path.parent / "etc" / "fume-evil").exists() and not Path("/etc/fume-evil").exists()
    assert ModelStore(models).events()[-1]["event"] == "model_refused"


def test_cli_refusal_is_one_line_and_exit_2(world: dict[str, Path], tmp_path: Path) -> None:
    bundle = rewrite(world["good"], tmp_path / "x.fume", extra={"../../etc/fume-evil": b"owned\n"})
    result = subprocess.run([sys.executable, "-m", "fume_edge", "bundle", "verify", str(bundle), "--trusted-keys",
                             str(world["trusted"])], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "unsafe path" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2  # wrapped at 80 cols


def test_worse_model_with_copied_metrics_is_rejected_by_the_gate(world: dict[str, Path], models: Path,
                                                                 tmp_path: Path) -> None:
    bad = worse_onnx(tmp_path / "worse.onnx")
    bundle = make(tmp_path, bad, world["val"], world["key"], "v2-worse",
                  metrics=metrics_json(world["good"], tmp_path / "good_metrics.json"))
    before = _state(models)
    with pytest.raises(FumeEdgeError, match="rejected by the gate: gas IoU"):
        install_bundle(bundle, InstallOptions(models=models, trusted_keys=world["trusted"], gate=GATE))
    assert _state(models) == before
    event = ModelStore(models).events()[-1]
    assert event["event"] == "model_rejected" and event["version"] == "v2-worse"
    assert event["figures"]["gas_iou"] < event["figures"]["recorded_gas_iou"] - 0.01


_INSTALL = """
import sys
from pathlib import Path
from fume_edge.bundle.gate import GateSettings
from fume_edge.bundle.install import InstallOptions, install_bundle
install_bundle(Path(sys.argv[1]), InstallOptions(models=Path(sys.argv[2]), trusted_keys=Path(sys.argv[3]),
               gate=GateSettings(min_fps=0.1, device="cpu")))
"""


@pytest.mark.parametrize("kill_after", ["staging", "model_gated"])
def test_sigkill_during_install_then_restart_runs_a_complete_model(world: dict[str, Path], models: Path,
                                                                   tmp_path: Path, kill_after: str) -> None:
    bundle = make(tmp_path, variant_onnx(tmp_path / "v2.onnx", "2"), world["val"], world["key"], "v2",
                  metrics=metrics_json(world["good"], tmp_path / "m.json"))
    store = ModelStore(models)
    process = subprocess.Popen([sys.executable, "-c", _INSTALL, str(bundle), str(models), str(world["trusted"])],
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        if kill_after == "staging":  # mid-unpack or mid-gate
            wait_for(lambda: any(p.name.startswith(".staging-") and any(p.rglob("*")) for p in models.iterdir()))
        else:  # right before the commit and the switch
            wait_for(lambda: any(e["event"] == "model_gated" for e in store.events()), timeout_s=240)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    current = store.current()
    assert current in ("v1", "v2")
    with load_backend(store.model_file(current), device="cpu") as backend:  # what a restarted run loads
        width, height = backend.input_size
        frame = np.full((1, 1, height, width), 0.3, np.float32)
        assert backend.infer(frame, frame, np.ones((1, 2), np.float32)).finite
    # the next install cleans up whatever the killed one left and completes
    if current == "v1" and store.installed("v2") is None:
        install_bundle(bundle, InstallOptions(models=models, trusted_keys=world["trusted"], gate=GATE))
        assert store.current() == "v2"
    assert not [p for p in models.iterdir() if p.name.startswith(".staging-")]
