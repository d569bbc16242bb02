"""`fume-edge run` with signed bundles: a run without `model.path` runs the model store's current bundle, and a
bundle installed while it runs is swapped in between two ticks (events after it carry the new model sha)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from bundle_support import DEFAULT_ONNX, keypair, make, variant_onnx
from pipeline_support import FRAME_SIZE, eventually
from train_support import make_paired_dataset

from fume_edge.bundle.gate import GateSettings
from fume_edge.bundle.install import InstallOptions, install_bundle
from fume_edge.hashing import sha256_file

FUME_EDGE = [sys.executable, "-c", "import sys; from fume_edge.cli import main; sys.argv[0] = 'fume-edge'; main()"]
GATE = GateSettings(min_fps=0.1, device="cpu")  # speed is benchmarked, not asserted

# Acidosis opens at the first result and re-publishes every 0.3 s: a steady stream of events that carry the sha.
RUN_YAML = f"""
model: {{models_dir: {{models}}, health_window_s: 60, device: cpu, threads: 1}}
sources:
  co2: {{source: synthetic, width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  ch4: {{source: synthetic, width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  synthetic: {{fps: 5.0, segments: [{{ph: 5.2, seconds: 600.0}}]}}
alerts:
  acidosis_risk: {{start_at: 0.001, end_below: 0.0, start_after_s: 0, single_gas_start_after_s: null}}
  update_interval_s: 0.3
"""


def _event_shas(db: Path) -> list[str]:
    try:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT json_extract(payload, '$.model_sha') FROM events WHERE type = 'acidosis_risk' "
                                "ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # the database is not there yet
        return []
    return [row[0] for row in rows]


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
    with log.open("w") as err:
        proc = subprocess.Popen([*FUME_EDGE, "run", "--config", str(config), "--alerts", str(db), "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=err, text=True)
    try:
        eventually(lambda: v1_sha in _event_shas(db), "an event under the installed v1", timeout_s=60)
        install_bundle(make(tmp_path, v2, val, key, "v2"), options)  # while the run goes on
        eventually(lambda: _event_shas(db)[-1:] == [v2_sha], "events carrying v2's sha after the swap", timeout_s=60)
        assert proc.poll() is None, log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()
    shas = _event_shas(db)
    first_v2 = shas.index(v2_sha)
    assert set(shas[:first_v2]) == {v1_sha} and set(shas[first_v2:]) == {v2_sha}  # one swap, no flapping
    events = [json.loads(line)["event"] for line in (models / "events.jsonl").read_text().splitlines()]
    assert "model_swapped" in events
