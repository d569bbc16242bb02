"""`fume-edge run --config run.yaml` with nothing else on the command line: cameras, model, sinks, device id and
limits all come from the file, as the service runs it. Everything used is in a fresh clone (the bundled model) or
made by fume-edge itself (`synth --videos`); the MQTT login comes from a credentials file, never the file or the
database."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from mqtt_broker import MOSQUITTO, MOSQUITTO_PASSWD, Broker, Subscriber
from pipeline_support import synthetic_videos

from fume_edge.assets import default_model_path
from fume_edge.data.config import Outage
from fume_edge.hashing import sha256_file
from fume_edge.pipeline.config import load_run_config

FUME_EDGE = [sys.executable, "-c", "import sys; from fume_edge.cli import main; sys.argv[0] = 'fume-edge'; main()"]


def _run(config: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FUME_EDGE, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def _run_yaml(tmp_path: Path, extra_sinks: str = "") -> Path:
    videos = synthetic_videos(
        tmp_path / "videos",
        fps=10.0,
        seconds=8.0,
        clock_offset_s=0.0,
        jitter_s=0.0,
        drop_rate=0.0,
        outage=Outage(gas="ch4", start_s=1.0, seconds=1.5),
    )
    config = tmp_path / "run.yaml"
    config.write_text(f"""
device_id: barn-3
model: {{path: {default_model_path()}, device: cpu, threads: 1}}
sources:
  pacing: fast
  co2: {{source: {videos["co2"]}, timestamps: {tmp_path / "videos" / "co2.csv"}}}
  ch4: {{source: {videos["ch4"]}, timestamps: {tmp_path / "videos" / "ch4.csv"}}}
sync: {{silent_after_s: 0.5}}
sinks:
  sqlite: {{path: {tmp_path / "state" / "alerts.db"}}}
  jsonl: {{path: {tmp_path / "state" / "alerts.jsonl"}}}
  snapshots: {{dir: {tmp_path / "state" / "snapshots"}}}
{extra_sinks}
pipeline: {{quiet: true, max_frames: 40}}
""")
    (tmp_path / "state").mkdir()
    return config


def test_everything_from_run_yaml(tmp_path: Path) -> None:
    config = _run_yaml(tmp_path)
    result = _run(config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "fume-edge run: completed" in result.stdout
    db = sqlite3.connect(tmp_path / "state" / "alerts.db")
    device, model_sha, recorded, stats = db.execute("SELECT device_id, model_sha, config, stats FROM runs").fetchone()
    assert device == "barn-3" and model_sha == sha256_file(default_model_path())
    assert json.loads(recorded)["sources"]["co2"]["source"].endswith("co2.avi")
    assert json.loads(stats)["inferences"] == 40
    types = [row[0] for row in db.execute("SELECT type || ':' || state FROM events ORDER BY seq")]
    assert types[:2] == ["camera_degraded:start", "camera_degraded:end"]
    jsonl = [json.loads(line) for line in (tmp_path / "state" / "alerts.jsonl").read_text().splitlines()]
    assert [e["device_id"] for e in jsonl] == ["barn-3"] * len(types)
    assert list((tmp_path / "state" / "snapshots").glob("*.png"))
    assert not (tmp_path / "alerts.db").exists()  # nothing fell back to the packaged default path


def test_a_missing_camera_names_the_key_to_set(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("sources:\n  co2: {source: synthetic}\n")
    result = _run(config, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: --ch4: no CH4 camera given; pass --ch4 SRC or set sources.ch4.source in run.yaml"
    )


def test_mqtt_login_from_the_credentials_file(tmp_path: Path) -> None:
    if MOSQUITTO is None or MOSQUITTO_PASSWD is None:
        pytest.skip("needs mosquitto and mosquitto_passwd (apt-get install mosquitto; .ci/run does)")
    subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(tmp_path / "passwd"), "edge", "s3cr@t:x"], check=True)
    broker = Broker(tmp_path / "broker", f"allow_anonymous false\npassword_file {tmp_path / 'passwd'}\n")
    broker.start()
    credentials = tmp_path / "credentials"  # as systemd's LoadCredential= hands it over
    credentials.mkdir()
    (credentials / "mqtt").write_text("edge:s3cr%40t%3Ax\n")
    try:
        subscriber = Subscriber(broker.port, ["farm/barn-3/+/alerts/#"], auth=("edge", "s3cr@t:x"))
        config = _run_yaml(
            tmp_path,
            f"""  mqtt:
    url: mqtt://127.0.0.1:{broker.port}/farm
    credentials: ${{CREDENTIALS_DIRECTORY}}/mqtt""",
        )
        result = _run(config, cwd=tmp_path, env={"CREDENTIALS_DIRECTORY": str(credentials)})
        assert result.returncode == 0, result.stderr
        db = sqlite3.connect(tmp_path / "state" / "alerts.db")
        sent = [row[0] for row in db.execute("SELECT event_id FROM events ORDER BY seq")]
        assert sent and subscriber.wait_for(lambda s: set(sent) <= set(s.event_ids), timeout=20)
        subscriber.close()
        stored = db.execute("SELECT config FROM runs").fetchone()[0] + (tmp_path / "state/alerts.jsonl").read_text()
        assert "s3cr" not in stored  # the secret stays in its file
    finally:
        broker.stop()


def test_the_run_yaml_reference_is_a_valid_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = (Path(__file__).resolve().parents[1] / "docs" / "run-yaml.md").read_text()
    block = reference.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "mqtt").write_text("edge:s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config_path = tmp_path / "run.yaml"
    config_path.write_text(block)
    config, _ = load_run_config(config_path)
    assert config.sources.spec("ch4") == "/dev/fume-ch4" and config.sources.ch4.raw16
    assert config.sinks.mqtt.login() == ("edge", "s3cret")
