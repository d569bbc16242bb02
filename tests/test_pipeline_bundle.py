"""`fume-edge run` with signed bundles: a run without `model.path` runs the model store's current bundle, and a
bundle installed while it runs is swapped in between two ticks (events after it carry the new model sha)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from bundle_support import DEFAULT_ONNX, keypair, make, variant_onnx
from pipeline_support import FRAME_SIZE, MODEL_SIZE, UPSTREAM
from train_support import make_paired_dataset

from fume_edge.bundle.gate import GateSettings
from fume_edge.bundle.install import InstallOptions, install_bundle
from fume_edge.hashing import sha256_file
from fume_edge.runtime.base import batch_capacity, load_backend
from fume_edge.runtime.holder import SwappableBackend
from waiting import eventually

FUME_EDGE = [sys.executable, "-c", "import sys; from fume_edge.cli import main; sys.argv[0] = 'fume-edge'; main()"]
GATE = GateSettings(min_fps=0.1, device="cpu")  # speed is benchmarked, not asserted

# Acidosis opens at the first result and re-publishes every 0.3 s: a steady stream of events that carry the sha.
RUN_YAML = f"""
model: {{models_dir: {{models}}, health_window_s: 60, device: cpu, threads: 1}}
sources:
  co2: {{source: synthetic, width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  ch4: {{source: synthetic, width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  synthetic: {{fps: 5.0, segments: [{{ph: 5.2, seconds: 600.0}}]}}
stations:  # two: the loop hands the swappable model both stations' pairs
  - {{id: pen-1, co2: synthetic, ch4: synthetic}}
  - {{id: pen-2, co2: synthetic, ch4: synthetic}}
alerts:
  acidosis_risk: {{start_at: 0.001, end_below: 0.0, start_after_s: 0, single_gas_start_after_s: null}}
  update_interval_s: 0.3
"""


def _event_shas(db: Path) -> list[str]:
    try:
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT json_extract(payload, '$.model_sha') FROM events WHERE type = 'acidosis_risk' ORDER BY seq"
            ).fetchall()
    except sqlite3.OperationalError:  # the database is not there yet
        return []
    return [row[0] for row in rows]


@contextmanager
def _running(config: Path, db: Path, log: Path) -> Iterator[subprocess.Popen[str]]:
    """`fume-edge run --config CONFIG` in its own process while the block runs; SIGTERM then, and a clean exit."""
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*FUME_EDGE, "run", "--config", str(config), "--alerts", str(db), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()


def _swapped_once(db: Path, before: str, after: str) -> None:
    """Every event carries `before`'s sha up to the swap and `after`'s from it on: one swap, no flapping."""
    shas = _event_shas(db)
    first = shas.index(after)
    assert set(shas[:first]) == {before} and set(shas[first:]) == {after}


def test_run_follows_the_installed_bundle_and_swaps_to_the_next_install(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    val = make_paired_dataset(tmp_path / "data", pairs=8) / "paired_val.csv"
    key, trusted = keypair(tmp_path)
    models, db, log = tmp_path / "models", tmp_path / "alerts.db", tmp_path / "stderr.log"
    options = InstallOptions(models=models, trusted_keys=trusted, gate=GATE)
    install_bundle(make(tmp_path, DEFAULT_ONNX, val, key, "v1"), options)
    v2 = variant_onnx(tmp_path / "v2.onnx", "2")
    v1_sha, v2_sha = sha256_file(DEFAULT_ONNX), sha256_file(v2)
    config = tmp_path / "run.yaml"
    config.write_text(RUN_YAML.replace("{models}", str(models)), encoding="utf-8")
    with _running(config, db, log) as proc:
        eventually(lambda: v1_sha in _event_shas(db), "an event under the installed v1", timeout_s=60)
        install_bundle(make(tmp_path, v2, val, key, "v2"), options)  # while the run goes on
        eventually(lambda: _event_shas(db)[-1:] == [v2_sha], "events carrying v2's sha after the swap", timeout_s=60)
        assert proc.poll() is None, log.read_text()
    _swapped_once(db, v1_sha, v2_sha)
    events = [json.loads(line)["event"] for line in (models / "events.jsonl").read_text().splitlines()]
    assert "model_swapped" in events
    with sqlite3.connect(db) as conn:  # the steps taken while the run was live are alert events too
        steps = {row[0] for row in conn.execute("SELECT type FROM events WHERE type LIKE 'model_%'")}
    assert {"model_installed", "model_switched"} <= steps, steps


def test_a_run_with_nothing_installed_starts_on_its_default_path_and_follows_the_first_install(tmp_path: Path) -> None:
    """The Jetson service's case: run.yaml names its engine as `model.default_path`, so bundles still reach it."""
    (tmp_path / "data").mkdir()
    val = make_paired_dataset(tmp_path / "data", pairs=8) / "paired_val.csv"
    key, trusted = keypair(tmp_path)
    models, db, log = tmp_path / "models", tmp_path / "alerts.db", tmp_path / "stderr.log"
    v0 = variant_onnx(tmp_path / "v0.onnx", "0")  # the device's own model, outside the store
    v0_sha, v1_sha = sha256_file(v0), sha256_file(DEFAULT_ONNX)
    config = tmp_path / "run.yaml"
    text = RUN_YAML.replace("{models}", str(models)).replace("model: {", f"model: {{default_path: {v0}, ")
    config.write_text(text, encoding="utf-8")
    with _running(config, db, log):
        eventually(lambda: v0_sha in _event_shas(db), "an event under the default model", timeout_s=60)
        options = InstallOptions(models=models, trusted_keys=trusted, gate=GATE)
        install_bundle(make(tmp_path, DEFAULT_ONNX, val, key, "v1"), options)
        eventually(lambda: _event_shas(db)[-1:] == [v1_sha], "events carrying v1's sha after the swap", timeout_s=60)
    _swapped_once(db, v0_sha, v1_sha)


def test_the_device_install_runs_the_demo_without_the_bundle_extra(tmp_path: Path) -> None:
    """README's demo on the base install (no `cryptography`): the run follows the model store all the same; only the
    remote installs, which check signatures, are off (a request for one is answered with the extra to install)."""
    blocked = "import sys; sys.modules['cryptography'] = None; " + FUME_EDGE[2]  # as if it was never installed
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            blocked,
            "run",
            "--co2",
            "synthetic",
            "--ch4",
            "synthetic",
            "--max-frames",
            "5",
            "--quiet",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 inferences" in proc.stdout and "cryptography" not in proc.stdout + proc.stderr


def test_the_swappable_backend_keeps_the_models_batch(tmp_path: Path) -> None:
    """The loop batches every station's pair into one call: the holder must keep the model's static batch, not fall
    back to one call per pair."""
    from fume_edge.deploy.onnx.onnx_export import export_onnx
    from fume_edge.deploy.upstream_import import import_research_checkpoint
    from fume_edge.model.checkpoint import save_checkpoint

    checkpoint = save_checkpoint(import_research_checkpoint(UPSTREAM).checkpoint, tmp_path / "fume.pt")
    model = export_onnx(checkpoint, tmp_path / "fume_b2.onnx", size=MODEL_SIZE, batch=2).path
    with load_backend(model, device="cpu", threads=1) as backend:
        holder = SwappableBackend(backend, "sha-v1", "v1")
        assert batch_capacity(holder) == batch_capacity(backend) == 2
        width, height = holder.input_size
        rng = np.random.default_rng(0)
        co2, ch4 = (rng.random((2, 1, height, width), dtype=np.float32) for _ in range(2))
        mask = np.ones((2, 2), np.float32)
        held, direct = holder.infer_batch(co2, ch4, mask), backend.infer_batch(co2, ch4, mask)
        assert [p.ph_probs.tolist() for p in held] == [p.ph_probs.tolist() for p in direct]
        assert holder.health().calls == 1  # one model call for the whole batch
