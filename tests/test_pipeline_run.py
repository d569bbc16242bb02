"""`fume-edge run` as a user and a service manager meet it: a subprocess, its exit code, its output, its files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from disk_support import fill
from mqtt_broker import Broker, Subscriber
from pipeline_support import FRAME_SIZE, write_run_yaml
from waiting import eventually

from fume_edge.errors import INTERRUPTED_EXIT_CODE

FUME_EDGE = [sys.executable, "-c", "import sys; from fume_edge.cli import main; sys.argv[0] = 'fume-edge'; main()"]

# Synthetic cameras whose CH4 camera goes silent 1 s in and stays silent: `camera_degraded` is open when killed.
OUTAGE_YAML = f"""
sources:
  co2: {{width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  ch4: {{width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  synthetic:
    fps: 20.0
    segments: [{{ph: 6.4, seconds: 1.0}}, {{ph: 5.2, seconds: 60.0}}]
    outage: {{gas: ch4, start_s: 1.0, seconds: 59.0}}
sync: {{silent_after_s: 0.5}}
"""


def fume_edge(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run([*FUME_EDGE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_camera_is_one_error_line(tmp_path: Path, small_onnx: Path) -> None:
    result = fume_edge(
        "run",
        "--co2",
        "/dev/video99",
        "--ch4",
        "synthetic",
        "--model",
        str(small_onnx),
        "--alerts",
        str(tmp_path / "a.db"),
    )
    assert error_line(result).startswith("error: --co2 /dev/video99: no such camera device")
    assert not (tmp_path / "a.db").exists()  # nothing was started


def test_display_without_a_gui_is_one_error_line(tmp_path: Path, small_onnx: Path) -> None:
    result = fume_edge(
        "run",
        "--co2",
        "synthetic",
        "--ch4",
        "synthetic",
        "--model",
        str(small_onnx),
        "--display",
        "--alerts",
        str(tmp_path / "a.db"),
    )
    assert error_line(result).startswith("error: --display: ")


def _start(tmp_path: Path, model: Path, *extra: str) -> subprocess.Popen[str]:
    config = write_run_yaml(tmp_path / "run.yaml", OUTAGE_YAML)
    return subprocess.Popen(
        [
            *FUME_EDGE,
            "run",
            "--co2",
            "synthetic",
            "--ch4",
            "synthetic",
            "--model",
            str(model),
            "--config",
            str(config),
            "--alerts",
            str(tmp_path / "alerts.db"),
            "--jsonl",
            str(tmp_path / "alerts.jsonl"),
            "--quiet",
            "--device-id",
            "barn-7",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 30) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    proc.kill()
    raise AssertionError(f"{text!r} never printed: {''.join(lines)}{proc.stderr.read()}")  # type: ignore[union-attr]


def _db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return db


def test_sigterm_mid_run_ends_cleanly_with_every_alert_in_the_database(tmp_path: Path, small_onnx: Path) -> None:
    proc = _start(tmp_path, small_onnx)
    printed = _wait_for_line(proc, "START camera_degraded")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    printed_ids = {word[3:] for line in printed + out.splitlines() for word in line.split() if word.startswith("id=")}
    db = _db(tmp_path / "alerts.db")
    rows = db.execute(
        "SELECT alert_id, type, state, json_extract(payload, '$.reason') FROM events ORDER BY seq"
    ).fetchall()
    assert printed_ids and printed_ids <= {row[0] for row in rows}
    assert [(t, s, r) for _, t, s, r in rows] == [
        ("camera_degraded", "start", None),
        ("camera_degraded", "end", "interrupted"),
    ]
    jsonl = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [e["event_id"] for e in jsonl] == [r[0] for r in db.execute("SELECT event_id FROM events ORDER BY seq")]
    assert all(e["device_id"] == "barn-7" for e in jsonl)
    end_reason, stats = db.execute("SELECT end_reason, stats FROM runs").fetchone()
    assert end_reason == "interrupted" and json.loads(stats)["degraded"] > 0
    assert "fume-edge run: interrupted" in out and "SIGTERM: stopping" in out


def test_a_run_that_could_not_store_its_alerts_says_so_and_exits_1(small_disk: Path, small_onnx: Path) -> None:
    """The disk fills while `camera_degraded` is open: its end (at SIGTERM) cannot be stored before the shutdown
    deadline, so the run says how many were lost and exits 1 (a service manager sees a failure, not success)."""
    config = write_run_yaml(
        small_disk / "run.yaml", OUTAGE_YAML + "sinks: {stop_timeout_s: 0.5, retry_min_s: 0.05, retry_max_s: 0.1}\n"
    )
    db = small_disk / "alerts.db"
    proc = subprocess.Popen(
        [
            *FUME_EDGE,
            "run",
            "--co2",
            "synthetic",
            "--ch4",
            "synthetic",
            "--model",
            str(small_onnx),
            "--config",
            str(config),
            "--alerts",
            str(db),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_line(proc, "START camera_degraded")
    eventually(lambda: _committed_events(db) >= 1, f"a committed event in {db}", timeout_s=15)
    fill(small_disk)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err and "alert events were not stored" in out and "not stored 1" in out
    assert _db(db).execute("SELECT type, state FROM events").fetchall() == [("camera_degraded", "start")]


def test_a_stream_not_up_yet_is_retried_while_the_run_goes_on(tmp_path: Path, small_onnx: Path) -> None:
    """A camera stream that is not up at start (nothing listens on its port yet) does not end the run: it is said
    once, retried with the reconnect backoff, and the other camera runs in degraded mode meanwhile."""
    from mqtt_broker import free_port

    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/stream1"
    result = fume_edge(
        "run",
        "--co2",
        url,
        "--ch4",
        "synthetic",
        "--model",
        str(small_onnx),
        "--alerts",
        str(tmp_path / "a.db"),
        "--duration",
        "3",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert "not there yet: retrying every 0.5-30 s" in " ".join(result.stdout.split())
    assert "hunter2" not in result.stdout + result.stderr  # the stream's password is never shown
    events = _db(tmp_path / "a.db").execute("SELECT type, state FROM events ORDER BY seq").fetchall()
    assert events[0] == ("camera_degraded", "start")


def _committed_events(path: Path) -> int:
    """Events the sink thread has committed (the console prints an event when emitted, the commit comes later)."""
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        except sqlite3.OperationalError:  # schema not created yet
            return 0


def test_second_signal_forces_exit_and_the_next_run_closes_the_open_alert(tmp_path: Path, small_onnx: Path) -> None:
    proc = _start(tmp_path, small_onnx)
    _wait_for_line(proc, "START camera_degraded")
    eventually(lambda: _committed_events(tmp_path / "alerts.db") >= 1, "a committed event", timeout_s=15)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == INTERRUPTED_EXIT_CODE and "exiting now" in err
    db = _db(tmp_path / "alerts.db")
    assert db.execute("SELECT type, state FROM events").fetchall() == [("camera_degraded", "start")]
    db.close()
    again = fume_edge(
        "run",
        "--co2",
        "synthetic",
        "--ch4",
        "synthetic",
        "--model",
        str(small_onnx),
        "--alerts",
        str(tmp_path / "alerts.db"),
        "--max-frames",
        "2",
        "--pacing",
        "fast",
        "--quiet",
    )
    assert again.returncode == 0, again.stderr
    states = (
        _db(tmp_path / "alerts.db")
        .execute("SELECT state, json_extract(payload, '$.reason') FROM events ORDER BY seq")
        .fetchall()
    )
    assert states == [("start", None), ("end", "interrupted")]
    runs = _db(tmp_path / "alerts.db").execute("SELECT end_reason FROM runs ORDER BY id").fetchall()
    assert runs == [("killed",), ("completed",)]  # the forced exit left no end: the next run recorded why


@pytest.mark.parametrize(
    "co2, ch4, extra, message",
    [
        ("{dir}/frames", "{dir}/./frames/", [], "--ch4 {dir}/./frames/: the same source as --co2"),
        (
            "synthetic",
            "synthetic",
            ["--jsonl", "{dir}/alerts.db"],
            "--jsonl {dir}/alerts.db: the same file as the alert",
        ),
    ],
)
def test_one_source_for_both_gases_or_one_file_for_two_sinks_is_one_error_line(
    tmp_path: Path, small_onnx: Path, co2: str, ch4: str, extra: list[str], message: str
) -> None:
    (tmp_path / "frames").mkdir()
    args = [a.format(dir=tmp_path) for a in ("--co2", co2, "--ch4", ch4, *extra)]
    result = fume_edge("run", *args, "--model", str(small_onnx), "--alerts", str(tmp_path / "alerts.db"))
    assert error_line(result).startswith("error: " + message.format(dir=tmp_path))
    assert not (tmp_path / "alerts.db").exists()


CTRL_C_WHILE_IMPORTING = """
import sys
class CtrlC:  # the user presses Ctrl-C while the CLI's modules are still loading
    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
sys.argv[0] = "fume-edge"
from fume_edge.entry import main
main()
"""


def test_ctrl_c_while_the_cli_imports_is_one_line_not_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CTRL_C_WHILE_IMPORTING, "run", "--help"], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stderr.strip()) == (130, "interrupted")


def test_every_alert_reaches_an_mqtt_subscriber_and_torch_is_never_imported(
    tmp_path: Path, small_onnx: Path, broker: Broker
) -> None:
    subscriber = Subscriber(broker.port, ["fe/barn-7/+/alerts/#"])
    config = write_run_yaml(tmp_path / "run.yaml", OUTAGE_YAML.replace("seconds: 59.0", "seconds: 1.0"))
    code = (
        "import sys; from fume_edge.cli import main; sys.argv[0] = 'fume-edge'\n"
        "try:\n    main()\nfinally:\n    print('torch imported:', 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "run",
            "--co2",
            "synthetic",
            "--ch4",
            "synthetic",
            "--model",
            str(small_onnx),
            "--config",
            str(config),
            "--pacing",
            "fast",
            "--max-frames",
            "60",
            "--alerts",
            str(tmp_path / "alerts.db"),
            "--mqtt",
            f"mqtt://127.0.0.1:{broker.port}/fe",
            "--device-id",
            "barn-7",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "torch imported: False" in result.stdout
    sent = [row[0] for row in _db(tmp_path / "alerts.db").execute("SELECT event_id FROM events ORDER BY seq")]
    assert len(sent) == 2  # camera_degraded start and end (recovered)
    try:
        assert subscriber.wait_for(lambda s: set(sent) <= set(s.event_ids), timeout=20), subscriber.event_ids
    finally:
        subscriber.close()
