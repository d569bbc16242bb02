"""`systemctl reload fume-edge` (SIGHUP) on a real `fume-edge run` subprocess with synthetic cameras: the new alert
thresholds decide the next alert, inference never stops, an invalid file is refused and the run goes on."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from pipeline_support import FRAME_SIZE
from waiting import eventually

FUME_EDGE = [sys.executable, "-c", "import sys; from fume_edge.cli import main; sys.argv[0] = 'fume-edge'; main()"]

BASE = f"""
sources:
  co2: {{source: synthetic, width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  ch4: {{source: synthetic, width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  synthetic: {{fps: 20.0, segments: [{{ph: 5.2, seconds: 600.0}}]}}
pipeline: {{stats_interval_s: 0.2}}
alerts:
  acidosis_risk:
{{acidosis}}
"""
# cannot open within the test
NEVER = "    start_at: 1.0\n    end_below: 0.5\n    start_after_s: 3600\n    single_gas_start_after_s: null\n"
AT_ONCE = "    start_at: 0.001\n    end_below: 0.0\n    start_after_s: 0\n"  # opens at the next result
INVALID = "    start_at: 1.5\n"


def _inferences(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT stats FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:  # not created yet
        return 0
    return 0 if row is None or row[0] is None else int(json.loads(row[0])["inferences"])


def _acidosis_starts(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        query = "SELECT COUNT(*) FROM events WHERE type = 'acidosis_risk' AND state = 'start'"
        return conn.execute(query).fetchone()[0]


def _rising(db: Path) -> int:
    """Waits for the inference count to move on from what it is now; returns the new count."""
    before = _inferences(db)
    return eventually(lambda: (n := _inferences(db)) > before and n, f"inferences past {before}")


def test_sighup_applies_new_thresholds_refuses_a_bad_file_and_never_stops_inference(
    tmp_path: Path, small_onnx: Path
) -> None:
    config, db, log = tmp_path / "run.yaml", tmp_path / "alerts.db", tmp_path / "stderr.log"
    config.write_text(BASE.replace("{acidosis}", NEVER), encoding="utf-8")
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                *FUME_EDGE,
                "run",
                "--config",
                str(config),
                "--model",
                str(small_onnx),
                "--alerts",
                str(db),
                "--quiet",
                "--device-id",
                "barn-7",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
    try:
        _rising(db)
        # An invalid file: refused with its file:line error, the run goes on with its configuration.
        config.write_text(BASE.replace("{acidosis}", INVALID), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        refused = eventually(lambda: "reload refused" in (text := log.read_text()) and text, "the refusal logged")
        assert f"{config.name}:" in refused and "alerts.acidosis_risk.start_at" in refused, refused
        _rising(db)
        assert _acidosis_starts(db) == 0  # the refused file (or the first one) opened nothing
        # A valid file lowering the threshold: the next result opens acidosis_risk; a model key needs a restart.
        config.write_text(BASE.replace("{acidosis}", AT_ONCE) + "model: {threads: 1}\n", encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        eventually(lambda: _acidosis_starts(db) >= 1, "acidosis_risk opened by the reloaded threshold")
        text = log.read_text()
        assert "run.yaml reloaded: alert policies of default applied" in text, text
        assert "needs a restart: model.threads" in text, text
        _rising(db)
        assert proc.poll() is None, log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()


def test_a_reload_plan_applies_alert_keys_and_names_the_keys_that_need_a_restart(tmp_path: Path) -> None:
    from pipeline_support import run_config

    from fume_edge.pipeline.reload import plan_reload

    stations = [
        {"id": "pen-1", "co2": "synthetic", "ch4": "synthetic"},
        {"id": "pen-2", "co2": "synthetic", "ch4": "synthetic", "alerts": {"smoothing_s": 5.0}},
    ]
    running = run_config(tmp_path, {"stations": stations})
    new = run_config(
        tmp_path,
        {
            "stations": stations,
            "alerts": {"acidosis_risk": {"start_at": 0.6}},
            "sinks": {"mqtt": {"url": "mqtt://localhost/farm", "state_interval_s": 2.0}},
            "model": {"threads": 2},
            "pipeline": {"tick_s": 0.02},
        },
    )
    plan = plan_reload(running, new)
    assert plan.needs_restart == ("model.threads", "sinks.mqtt.url")  # the tick and the state interval apply hot
    assert plan.state_interval_s == 2.0 and plan.config.pipeline.tick_s == 0.02
    assert {s: p.acidosis_risk.start_at for s, p in plan.policies.items()} == {"pen-1": 0.6, "pen-2": 0.6}
    assert plan.policies["pen-2"].smoothing_s == 5.0  # the station's own keys stay over the device's
    added = run_config(tmp_path, {"stations": [*stations, {"id": "pen-3", "co2": "synthetic", "ch4": "synthetic"}]})
    assert plan_reload(running, added).needs_restart == ("stations",)
    assert set(plan_reload(running, added).policies) == {"pen-1", "pen-2"}
