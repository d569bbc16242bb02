"""`fume-edge serve alerts.db`: the page on a stored database (as a researcher copies it to a laptop), read-only,
through the real server: history with snapshots, a trend that fits the stored minutes, no live panels."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
from pathlib import Path

import httpx

from alerts_support import make_event
from fume_edge.alerts.store import AlertStore
from fume_edge.alerts.subject import set_subject
from fume_edge.alerts.summary import SummaryRow, record_summary
from mqtt_broker import free_port
from web_support import FUME_EDGE

DEVICE_SNAPSHOTS = Path("/var/lib/fume-edge/snapshots")  # where the device wrote them; not on this machine


def _copied_database(folder: Path) -> tuple[Path, float]:
    """A database as a device leaves it, its snapshots folder copied beside it; returns it and its newest minute."""
    db, snapshots = folder / "alerts.db", folder / "snapshots"
    snapshots.mkdir(parents=True)
    three_days_ago = time.time() - 3 * 86400
    newest = three_days_ago - three_days_ago % 60
    with AlertStore(db) as store:
        store.begin_run("barn-7", "f00d", {})
        set_subject(store, "cow-11", "cli", now=newest - 3600)
        for i in range(30):
            record_summary(store, SummaryRow(minute=newest - (29 - i) * 60, device_id="barn-7", subject="cow-11",
                                             frames=600, degraded=0,
                                             probs={"Healthy": 0.9, "Transitional": 0.05, "Acidotic": 0.05},
                                             gas_areas={"co2": 0.2, "ch4": 0.01}))
        for i in range(3):
            name = f"2026-01-0{i + 1}T00-00-00Z_acidosis_risk_start_0000000{i}.png"
            (snapshots / name).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes([i]) * 64)
            store.record(make_event(wall=newest - 600 + i * 60, subject="cow-11", device_id="barn-7",
                                    snapshot=str(DEVICE_SNAPSHOTS / name)), publish=False)
    return db, newest


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_serve_shows_a_stored_database_read_only(tmp_path: Path) -> None:
    db, newest = _copied_database(tmp_path / "copy")
    before = _digest(tmp_path / "copy")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([*FUME_EDGE, "serve", str(db), "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        status = httpx.get(url + "/api/status").json()
        assert status["live"] is False and status["device_id"] == "barn-7" and status["subject"] == "cow-11"
        assert "<html" in httpx.get(url + "/").text

        events = httpx.get(url + "/api/alerts").json()["events"]
        assert len(events) == 3 and all(e["snapshot_url"] for e in events)
        snapshot = httpx.get(url + events[0]["snapshot_url"])
        assert snapshot.status_code == 200 and snapshot.content.startswith(b"\x89PNG")

        fitted = httpx.get(url + "/api/trend").json()  # no hours: the window fits the stored minutes
        assert len(fitted["rows"]) == 30
        assert fitted["until"] == httpx.get(url + "/api/trend", params={"hours": 1}).json()["until"]
        span = [time.mktime(time.strptime(fitted[k][:19], "%Y-%m-%dT%H:%M:%S")) for k in ("since", "until")]
        assert 30 * 60 <= span[1] - span[0] <= 31 * 60  # the 30 minutes three days ago, not the last week

        for method, path in (("GET", "/api/frame/co2.jpg"), ("GET", "/metrics"), ("POST", "/api/subject")):
            answer = httpx.request(method, url + path, json={"subject": "x"})
            assert answer.status_code == 404 and "no live run" in answer.json()["error"], path
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output
    assert f"serving {db} read-only: {url}/" in output and "Traceback" not in output
    after = _digest(tmp_path / "copy")
    assert {name: after[name] for name in before} == before  # the database and snapshots as they were
    # (beside a WAL database in a writable folder, SQLite's read-only open may leave an empty -wal and a -shm)
    assert set(after) - set(before) <= {"alerts.db-wal", "alerts.db-shm"}


def test_serve_without_a_database_is_one_error_line(tmp_path: Path) -> None:
    result = subprocess.run([*FUME_EDGE, "serve", str(tmp_path / "none.db"), "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "no alert database here" in result.stderr
