"""`fume-edge doctor` on this machine: one screen, every missing piece with its fix, exit 0 when `run` can work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from fume_edge.doctor import diagnose


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fume_edge", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "120"},
    )


def test_doctor_here_is_ready_and_names_every_fix() -> None:
    done = doctor()
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for item in ("Python", "ONNX Runtime", "TensorRT", "GPU", "Cameras", "Model for run", "train"):
        assert item in done.stdout
    assert "fume_default.onnx loads" in done.stdout
    machine, commands, runnable = diagnose()
    assert runnable
    for finding in machine + commands:
        assert finding.ok or finding.fix, f"{finding.what}: missing without a fix"
    assert len(done.stdout.splitlines()) <= 40  # one screen


def test_doctor_reports_a_model_that_does_not_load(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    done = doctor("--model", str(bad))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "does not load" in done.stdout and "re-export" in done.stdout


def test_doctor_checks_the_configured_broker(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "run.yaml"
    config.write_text(f"sinks:\n  mqtt:\n    url: mqtt://127.0.0.1:{port}/farm\n")
    machine, _, _ = diagnose(config)
    broker = next(f for f in machine if f.what == "MQTT broker")
    assert not broker.ok and "unreachable" in broker.found and "mosquitto" in (broker.fix or "")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        config.write_text(f"sinks:\n  mqtt:\n    url: mqtt://127.0.0.1:{server.getsockname()[1]}/farm\n")
        machine, _, _ = diagnose(config)
    assert next(f for f in machine if f.what == "MQTT broker").ok


def test_doctor_checks_the_configured_model(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"model:\n  path: {tmp_path / 'missing.engine'}\n")
    _, commands, runnable = diagnose(config)
    assert not runnable
    assert "missing.engine" in (commands[0].fix or "")
