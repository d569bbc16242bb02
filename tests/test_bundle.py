"""Signed model bundles end to end on the CPU: make, verify, install (hostile bundles refused, a worse model
rejected by the gate, SIGKILL mid-install), the hot swap in a running loop and the rollback after it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from bundle_support import (
    DEFAULT_ONNX,
    install_plain,
    keypair,
    make,
    metrics_json,
    nan_on_bright_onnx,
    rewrite,
    variant_onnx,
    worse_onnx,
)
from train_support import make_paired_dataset

from fume_edge.bundle.gate import GateSettings
from fume_edge.bundle.install import InstallOptions, install_bundle
from fume_edge.bundle.live import EventRelay, HealthSettings, ModelUpdates, failure, follow_current, model_to_run
from fume_edge.bundle.store import ModelStore
from fume_edge.errors import FumeEdgeError
from fume_edge.hashing import sha256_file
from fume_edge.runtime.base import load_backend
from fume_edge.runtime.holder import ModelHealth, SwappableBackend
from waiting import eventually

GATE = GateSettings(min_fps=0.1, device="cpu")  # speed is benchmarked, not asserted


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


@pytest.mark.parametrize(
    "case", ["tampered", "wrong_signature", "untrusted_key", "truncated", "path_traversal", "over_size"]
)
def test_hostile_bundle_is_refused_with_one_line_and_the_running_model_unchanged(
    world: dict[str, Path], models: Path, tmp_path: Path, case: str
) -> None:
    bundle, options = _hostile(world, case, tmp_path)
    before = _state(models)
    with pytest.raises(FumeEdgeError) as refused:
        install_bundle(
            bundle, InstallOptions(models=models, trusted_keys=options.trusted_keys, max_mb=options.max_mb, gate=GATE)
        )
    message = str(refused.value)
    assert "\n" not in message and str(bundle) in message
    assert _state(models) == before  # no new version, no staging leftovers, current still v1
    assert not (tmp_path.parent / "etc" / "fume-evil").exists() and not Path("/etc/fume-evil").exists()
    assert ModelStore(models).events()[-1]["event"] == "model_refused"


def test_cli_refusal_is_one_line_and_exit_2(world: dict[str, Path], tmp_path: Path) -> None:
    bundle = rewrite(world["good"], tmp_path / "x.fume", extra={"../../etc/fume-evil": b"owned\n"})
    result = subprocess.run(
        [sys.executable, "-m", "fume_edge", "bundle", "verify", str(bundle), "--trusted-keys", str(world["trusted"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "unsafe path" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2  # wrapped at 80 cols


def test_worse_model_with_copied_metrics_is_rejected_by_the_gate(
    world: dict[str, Path], models: Path, tmp_path: Path
) -> None:
    bad = worse_onnx(tmp_path / "worse.onnx")
    bundle = make(
        tmp_path,
        bad,
        world["val"],
        world["key"],
        "v2-worse",
        metrics=metrics_json(world["good"], tmp_path / "good_metrics.json"),
    )
    before = _state(models)
    with pytest.raises(FumeEdgeError, match="rejected by the gate: gas IoU"):
        install_bundle(bundle, InstallOptions(models=models, trusted_keys=world["trusted"], gate=GATE))
    assert _state(models) == before
    event = ModelStore(models).events()[-1]
    assert event["event"] == "model_rejected" and event["version"] == "v2-worse"
    assert event["figures"]["gas_iou"] < event["figures"]["recorded_gas_iou"] - 0.01


_CLI = """
import sys
sys.modules["torch"] = None  # a device install has no torch: the gate must not need it
from fume_edge.entry import main
main()
"""


def _cli_install(bundle: Path, models: Path, trusted: Path) -> list[str]:
    """`fume-edge bundle install` as a device runs it (a separate process, torch unavailable)."""
    return [
        sys.executable,
        "-c",
        _CLI,
        "bundle",
        "install",
        str(bundle),
        "--models-dir",
        str(models),
        "--trusted-keys",
        str(trusted),
        "--min-fps",
        "0.1",
        "--device",
        "cpu",
    ]


@pytest.mark.parametrize("kill_after", ["staging", "model_gated", "model_switched"])
def test_sigkill_during_install_then_restart_runs_a_complete_model(
    world: dict[str, Path], models: Path, tmp_path: Path, kill_after: str
) -> None:
    bundle = make(
        tmp_path,
        variant_onnx(tmp_path / "v2.onnx", "2"),
        world["val"],
        world["key"],
        "v2",
        metrics=metrics_json(world["good"], tmp_path / "m.json"),
    )
    store = ModelStore(models)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "200"}
    process = subprocess.Popen(_cli_install(bundle, models, world["trusted"]), env=env)
    try:
        if kill_after == "staging":  # mid-unpack or mid-gate
            eventually(
                lambda: any(p.name.startswith(".staging-") and any(p.rglob("*")) for p in models.iterdir()),
                'any(p.name.startswith(".staging-") and any(p.rglob("*")) for p in m...',
                timeout_s=60.0,
            )
        else:  # right before the commit and the switch, or right after the switch (pruning)
            eventually(
                lambda: any(e["event"] == kill_after for e in store.events()),
                'any(e["event"] == kill_after for e in store.events())',
                timeout_s=240,
            )
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
        done = subprocess.run(
            _cli_install(bundle, models, world["trusted"]), env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        assert "installed v2 (onnxruntime)" in done.stdout and store.current() == "v2" and store.previous() == "v1"
    assert not [p for p in models.iterdir() if p.name.startswith(".staging-")]


@pytest.fixture()
def two_versions(tmp_path: Path) -> tuple[ModelStore, dict[str, str]]:
    """A store with v1 (the default model, current) and v2 (same outputs, another sha) installed."""
    store = ModelStore(tmp_path / "live-models")
    v2 = variant_onnx(tmp_path / "v2.onnx", "2")
    shas = {"v1": sha256_file(DEFAULT_ONNX), "v2": sha256_file(v2)}
    install_plain(store, "v1", DEFAULT_ONNX, shas["v1"])
    install_plain(store, "v2", v2, shas["v2"])
    store.switch("v1")
    return store, shas


def test_hot_swap_during_a_synthetic_run_keeps_inferring_and_events_carry_each_model_sha(
    tmp_path: Path, two_versions: tuple[ModelStore, dict[str, str]]
) -> None:
    from pipeline_support import ScriptedCamera, noise_frames, run_config

    from fume_edge.alerts.event import CAMERA_DEGRADED
    from fume_edge.alerts.service import AlertService
    from fume_edge.alerts.store import AlertStore
    from fume_edge.pipeline.capture import CameraStream, FrameHub
    from fume_edge.pipeline.loop import Pipeline
    from fume_edge.pipeline.station import Station
    from fume_edge.pipeline.prepare import ModelInputs

    store, shas = two_versions
    cams = ("co2", "ch4")
    config = run_config(tmp_path)
    hub = FrameHub(cams, capacity=4, lossless=False)
    streams = {
        gas: CameraStream(
            gas,
            ScriptedCamera(gas, noise_frames(seed=i), fps=10.0),
            reopen=None,  # type: ignore
            hub=hub,
            paced=False,
            time_offset_s=0.0,
            reconnect_s=(0.2, 0.2),
        )
        for i, gas in enumerate(cams)
    }
    backend = load_backend(store.current_model(), device="cpu", threads=1)  # type: ignore[arg-type]
    stack = ExitStack()  # as `fume-edge run` holds it
    holder = stack.enter_context(
        follow_current(backend, store, HealthSettings(window_s=60.0, min_fps=0.1, poll_s=0.05), device="cpu", threads=1)
    )
    service = AlertService(config.alerts, config.sinks, device_id="test", model_sha=holder.model_sha)
    seen: list[str | None] = []
    state = {"degraded": False, "recovered": False}

    def on_result(pair: object, prediction: object) -> None:
        seen.append(holder.version)
        if len(seen) == 2:  # an alert opens under v1 ...
            service.on_camera_health(time.monotonic(), time.time(), {"ch4"})
            state["degraded"] = True
            store.switch("v2")  # ... `bundle install` switches models/current ...
        if holder.version == "v2" and not state["recovered"]:  # ... and it ends under v2, carried over the swap
            service.on_camera_health(time.monotonic(), time.time(), set())
            state["recovered"] = True

    inputs = ModelInputs(cams, dict.fromkeys(cams, holder.contract.preprocessing))
    station = Station("default", streams, hub, inputs, tolerance_s=0.025, silent_after_s=5.0)
    pipeline = Pipeline([station], holder, service, tick_s=0.05, stats_interval_s=60.0, on_result=on_result)
    service.start()
    try:
        pipeline.run(lambda: seen.count("v2") >= 3, duration_s=120.0)
    finally:
        service.close(pipeline.stats(), "completed")
        stack.close()  # stops the watcher, closes the model swapped in
        backend.close()
    assert seen[:2] == ["v1", "v1"] and seen[-3:] == ["v2"] * 3
    assert holder.backend is not backend and holder.backend.session is None  # type: ignore[attr-defined]  # closed
    assert seen == sorted(seen)  # one swap, no flapping
    assert pipeline.stats()["inferences"] == len(seen)  # the count went on across the swap
    with AlertStore(config.sinks.sqlite.path, readonly=True) as alerts:
        degraded = [e for e in alerts.events() if e.type == CAMERA_DEGRADED]
    assert [(e.state, e.model_sha) for e in degraded] == [("start", shas["v1"]), ("end", shas["v2"])]
    assert degraded[0].id == degraded[1].id and degraded[1].reason == "recovered"
    assert [e["event"] for e in store.events()][-1] == "model_swapped"
    # the run stopped cleanly inside v2's health window: its next start is not counted as a crash
    assert model_to_run(store, HealthSettings(max_restarts=0)) == store.model_file("v2")


def test_model_that_turns_non_finite_after_the_swap_is_rolled_back(
    tmp_path: Path, two_versions: tuple[ModelStore, dict[str, str]]
) -> None:
    store, shas = two_versions
    nan_model = nan_on_bright_onnx(tmp_path / "nan.onnx")
    install_plain(store, "v3-nan", nan_model, sha256_file(nan_model))
    holder = SwappableBackend(load_backend(store.model_file("v1"), device="cpu", threads=1), shas["v1"], "v1")
    width, height = holder.input_size
    dark, bright = (np.full((1, 1, height, width), v, np.float32) for v in (0.3, 1.0))
    mask = np.ones((1, 2), np.float32)
    results: list[tuple[str | None, bool]] = []
    with ModelUpdates(holder, store, HealthSettings(window_s=60.0, min_fps=0.1, poll_s=0.05), device="cpu", threads=1):
        store.switch("v3-nan")
        eventually(lambda: holder.version == "v3-nan", 'holder.version == "v3-nan"', timeout_s=60.0)
        assert holder.infer(dark, dark, mask).finite  # fine on ordinary frames: the gate could not have seen it
        while holder.version == "v3-nan":  # the loop keeps feeding frames; a bright one turns it NaN
            results.append((holder.version, holder.infer(bright, bright, mask).finite))
            assert len(results) < 200, "no rollback"
        assert holder.infer(bright, bright, mask).finite  # v1 again, without a restart
    holder.close()
    assert ("v3-nan", False) in results and holder.version == "v1" and holder.model_sha() == shas["v1"]
    assert store.current() == "v1"
    event = store.events()[-1]
    assert event["event"] == "model_rolled_back" and event["version"] == "v3-nan" and event["to"] == "v1"
    assert "non-finite" in event["reason"]


def test_a_first_install_that_fails_its_watch_goes_back_to_the_model_from_outside_the_store(tmp_path: Path) -> None:
    """A run that started with nothing installed runs its default model; when the first install turns non-finite
    it swaps back to that model and `current` is unset, so a restart runs the default model too, not the bad one."""
    store = ModelStore(tmp_path / "models")
    nan_model = nan_on_bright_onnx(tmp_path / "nan.onnx")
    outside_sha = sha256_file(DEFAULT_ONNX)
    backend = load_backend(DEFAULT_ONNX, device="cpu", threads=1)
    settings = HealthSettings(window_s=60.0, min_fps=0.1, poll_s=0.05)
    with follow_current(backend, store, settings, outside_sha=outside_sha, device="cpu", threads=1) as holder:
        assert (holder.version, holder.model_sha()) == (None, outside_sha)
        install_plain(store, "v1-nan", nan_model, sha256_file(nan_model))
        store.switch("v1-nan")
        eventually(lambda: holder.version == "v1-nan", "the first install swapped in", timeout_s=60.0)
        width, height = holder.input_size
        bright, mask = np.full((1, 1, height, width), 1.0, np.float32), np.ones((1, 2), np.float32)
        while holder.version == "v1-nan":  # a bright frame turns it NaN; the watcher swaps the default back
            holder.infer(bright, bright, mask)
        assert holder.infer(bright, bright, mask).finite and holder.model_sha() == outside_sha
    backend.close()
    assert store.current() is None and model_to_run(store, settings) is None
    event = store.events()[-1]
    assert event["event"] == "model_rolled_back" and event["version"] == "v1-nan" and event["to"] is None


@pytest.mark.gpu
def test_install_builds_and_gates_a_tensorrt_engine_where_tensorrt_is(world: dict[str, Path], tmp_path: Path) -> None:
    from fume_edge.deploy.tensorrt.tensorrt_build import tensorrt_available

    missing = tensorrt_available()
    if missing:
        pytest.skip(missing)
    result = install_bundle(
        world["good"],
        InstallOptions(
            models=tmp_path / "models", trusted_keys=world["trusted"], gate=GateSettings(min_fps=0.1, device="auto")
        ),
    )
    assert result.model.backend == "tensorrt-fp16" and result.model.model.endswith(".engine")
    assert result.model.gate["non_finite"] == 0
    assert result.model.gate["gas_iou"] >= result.model.gate["recorded_gas_iou"] - 0.01
    store = ModelStore(tmp_path / "models")
    with load_backend(store.current_model(), device="cuda") as backend:  # type: ignore[arg-type]
        assert backend.name == "tensorrt"


@pytest.mark.parametrize(
    "health, reason",
    [
        (ModelHealth("v2", calls=40, non_finite=0, errors=0, median_ms=50.0), None),
        (ModelHealth("v2", calls=40, non_finite=1, errors=0, median_ms=50.0), "non-finite"),
        (ModelHealth("v2", calls=40, non_finite=0, errors=2, median_ms=50.0), "inference error"),
        (ModelHealth("v2", calls=40, non_finite=0, errors=0, median_ms=500.0), "2.0 FPS < 5"),
        (ModelHealth("v2", calls=3, non_finite=0, errors=0, median_ms=500.0), None),  # too few calls to judge speed
    ],
)
def test_health_watch_names_why_a_model_must_go(health: ModelHealth, reason: str | None) -> None:
    found = failure(health, HealthSettings(min_fps=5.0, min_calls=10))
    assert (found is None) if reason is None else (found is not None and reason in found)


def test_store_keeps_the_last_versions_and_never_the_current_or_previous(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    for version in ("v1", "v2", "v3", "v4"):
        install_plain(store, version, DEFAULT_ONNX, "sha-" + version)
    store.switch("v1")
    store.switch("v4")  # previous: v1, the oldest
    assert store.prune(3) == ["v2"]
    assert [m.version for m in store.versions()] == ["v1", "v3", "v4"]


def test_cli_keygen_list_rollback_status(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fume_edge.cli import app

    runner = CliRunner()
    key = tmp_path / "keys" / "signer.key"
    assert runner.invoke(app, ["bundle", "keygen", str(key)]).exit_code == 0
    assert key.stat().st_mode & 0o777 == 0o600 and key.with_suffix(".pub").is_file()
    again = runner.invoke(app, ["bundle", "keygen", str(key)])
    assert again.exit_code != 0 and "exists" in str(again.exception)
    store = ModelStore(tmp_path / "models")
    install_plain(store, "v1", DEFAULT_ONNX, "sha-1")
    install_plain(store, "v2", DEFAULT_ONNX, "sha-2")
    store.switch("v1")
    store.switch("v2")
    models = ["--models-dir", str(store.root)]
    result = runner.invoke(app, ["bundle", "rollback", *models])
    assert result.exit_code == 0 and store.current() == "v1" and store.previous() == "v2"
    listing = runner.invoke(app, ["bundle", "list", *models], env={"COLUMNS": "200"}).output
    assert "* v1" in listing and "  v2" in listing
    status = json.loads(runner.invoke(app, ["bundle", "status", *models]).output)
    assert status["current"]["version"] == "v1" and status["last_event"]["event"] == "model_rolled_back"


def test_a_second_install_while_one_runs_is_refused(world: dict[str, Path], models: Path) -> None:
    store = ModelStore(models)
    with store.install_lock(), pytest.raises(FumeEdgeError, match="another model install is running"):
        install_bundle(world["good"], InstallOptions(models=models, trusted_keys=world["trusted"], gate=GATE))
    assert store.current() == "v1"


def test_a_model_the_run_cannot_load_is_refused_and_current_points_back(
    tmp_path: Path, two_versions: tuple[ModelStore, dict[str, str]]
) -> None:
    store, shas = two_versions
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    install_plain(store, "v3-broken", broken, sha256_file(broken))
    holder = SwappableBackend(load_backend(store.model_file("v1"), device="cpu", threads=1), shas["v1"], "v1")
    with ModelUpdates(holder, store, HealthSettings(poll_s=0.05), device="cpu", threads=1):
        store.switch("v3-broken")
        eventually(lambda: store.current() == "v1", 'store.current() == "v1"', timeout_s=60.0)
    holder.close()
    assert holder.version == "v1"
    assert [e["event"] for e in store.events()][-2:] == ["model_swap_failed", "model_rolled_back"]


_RUN = """
import sys, time
from pathlib import Path
from fume_edge.bundle.live import HealthSettings, follow_current, model_to_run
from fume_edge.bundle.store import ModelStore
from fume_edge.runtime.base import load_backend
store = ModelStore(Path(sys.argv[1]))
backend = load_backend(model_to_run(store), device="cpu", threads=1)
with follow_current(backend, store, HealthSettings(poll_s=0.05), device="cpu", threads=1):
    print("ready", flush=True)
    time.sleep(600)
"""


def test_a_run_that_keeps_dying_after_the_swap_goes_back_to_the_model_before(
    tmp_path: Path, two_versions: tuple[ModelStore, dict[str, str]]
) -> None:
    store, _ = two_versions
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.Popen([sys.executable, "-c", _RUN, str(store.root)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout is not None and run.stdout.readline().strip() == "ready"
        store.switch("v2")
        eventually(
            lambda: any(e["event"] == "model_swapped" for e in store.events()),
            'any(e["event"] == "model_swapped" for e in store.events())',
            timeout_s=60.0,
        )
    finally:
        run.send_signal(signal.SIGKILL)  # the new model's run dies inside its health window
        run.wait()
    settings = HealthSettings(max_restarts=1)
    assert model_to_run(store, settings) == store.model_file("v2")  # first restart: v2 gets another chance
    assert model_to_run(store, settings) == store.model_file("v1")  # it died again: back to v1
    assert store.current() == "v1"
    event = store.events()[-1]
    assert event["event"] == "model_rolled_back" and event["to"] == "v1" and "2 unclean restarts" in event["reason"]


def _model_alerts(db: Path) -> list[tuple[str, str, dict[str, object]]]:
    from fume_edge.alerts.store import AlertStore

    if not Path(db).exists():
        return []
    with AlertStore(db, readonly=True) as alerts:
        return [(e.type, e.state, e.detail or {}) for e in alerts.events() if e.type.startswith("model_")]


def test_watcher_events_reach_the_alert_database_switch_then_rollback_with_the_reason(
    tmp_path: Path, two_versions: tuple[ModelStore, dict[str, str]]
) -> None:
    from pipeline_support import run_config

    from fume_edge.alerts.service import AlertService

    store, shas = two_versions
    nan_model = nan_on_bright_onnx(tmp_path / "nan.onnx")
    install_plain(store, "v3-nan", nan_model, sha256_file(nan_model))
    config = run_config(tmp_path)
    holder = SwappableBackend(load_backend(store.model_file("v1"), device="cpu", threads=1), shas["v1"], "v1")
    width, height = holder.input_size
    bright, mask = np.full((1, 1, height, width), 1.0, np.float32), np.ones((1, 2), np.float32)
    relay = EventRelay()  # as `fume-edge run` wires it: the watcher starts before the alert service exists
    with (
        ModelUpdates(
            holder,
            store,
            HealthSettings(window_s=60.0, min_fps=0.1, poll_s=0.05),
            on_event=relay,
            device="cpu",
            threads=1,
        ),
        AlertService(config.alerts, config.sinks, device_id="test", model_sha=holder.model_sha) as service,
    ):
        store.switch("v3-nan")
        eventually(lambda: holder.version == "v3-nan", 'holder.version == "v3-nan"', timeout_s=60.0)
        eventually(
            lambda: bool(relay._waiting), "bool(relay._waiting)", timeout_s=60.0
        )  # the swap's record waits for the service ...
        relay.connect(service.model_event)  # ... and reaches it once connected
        while holder.version == "v3-nan":
            holder.infer(bright, bright, mask)
        eventually(
            lambda: len(_model_alerts(config.sinks.sqlite.path)) >= 4,
            "len(_model_alerts(config.sinks.sqlite.path)) >= 4",
            timeout_s=60.0,
        )
    holder.close()
    found = _model_alerts(config.sinks.sqlite.path)
    assert [(kind, state) for kind, state, _ in found] == [
        ("model_switched", "start"),
        ("model_switched", "end"),
        ("model_rolled_back", "start"),
        ("model_rolled_back", "end"),
    ]
    assert found[0][2]["version"] == "v3-nan" and found[0][2]["previous"] == "v1"
    rolled = found[2][2]
    assert rolled["version"] == "v3-nan" and rolled["to"] == "v1" and "non-finite" in str(rolled["reason"])


def test_an_install_from_another_process_reaches_the_running_alert_service_with_the_gate_figures(
    world: dict[str, Path], models: Path, tmp_path: Path
) -> None:
    from pipeline_support import run_config

    from fume_edge.alerts.service import AlertService

    bad = worse_onnx(tmp_path / "worse.onnx")
    bundle = make(
        tmp_path,
        bad,
        world["val"],
        world["key"],
        "v2-worse",
        metrics=metrics_json(world["good"], tmp_path / "good_metrics.json"),
    )
    store = ModelStore(models)
    before = len(store.events())
    config = run_config(tmp_path)
    holder = SwappableBackend(
        load_backend(store.current_model(), device="cpu", threads=1),
        "sha-v1",  # type: ignore
        store.current(),
    )
    with (
        AlertService(config.alerts, config.sinks, device_id="test") as service,
        ModelUpdates(holder, store, HealthSettings(poll_s=0.05), on_event=service.model_event, device="cpu"),
    ):
        with pytest.raises(FumeEdgeError, match="rejected by the gate"):
            install_bundle(bundle, InstallOptions(models=models, trusted_keys=world["trusted"], gate=GATE))
        eventually(
            lambda: len(_model_alerts(config.sinks.sqlite.path)) >= 2,
            "len(_model_alerts(config.sinks.sqlite.path)) >= 2",
            timeout_s=60.0,
        )
    holder.close()
    assert len(store.events()) > before  # the JSONL log keeps every step too
    (kind, state, detail), _ = _model_alerts(config.sinks.sqlite.path)
    assert (kind, state, detail["version"]) == ("model_rejected", "start", "v2-worse")
    assert float(detail["figure.gas_iou"]) < float(detail["figure.recorded_gas_iou"]) - 0.01  # type: ignore[arg-type]
    assert "gas IoU" in str(detail["failures"])
