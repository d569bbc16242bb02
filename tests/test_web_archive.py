"""`fume-edge serve alerts.db`: the page on a stored database (as a researcher copies it to a laptop), read-only,
through the real server: history with snapshots, a trend that fits the stored minutes, no live panels."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
from pathlib import Path

import httpx

from mqtt_broker import free_port
from web_support import FUME_EDGE, copied_database, serve_until_healthy


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_serve_shows_a_stored_database_read_only(tmp_path: Path) -> None:
    db, _ = copied_database(tmp_path / "copy")
    before = _digest(tmp_path / "copy")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve_until_healthy(db, port)
    try:
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
    result = subprocess.run(
        [*FUME_EDGE, "serve", str(tmp_path / "none.db"), "--listen", f"127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "no alert database here" in result.stderr


def test_trend_and_history_of_one_station(tmp_path: Path) -> None:
    """`/api/trend?station=` and `/api/alerts?station=`: one station's minutes and events, not every station's."""
    from alerts_support import make_event
    from fume_edge.alerts.store import AlertStore
    from fume_edge.alerts.summary import SummaryRow, record_summary

    db, newest = copied_database(tmp_path / "copy")  # 30 minutes and 3 events of station `default`
    with AlertStore(db) as store:
        for i in range(5):
            record_summary(
                store,
                SummaryRow(
                    minute=newest - i * 60,
                    device_id="barn-7",
                    subject=None,
                    frames=60,
                    degraded=0,
                    probs=None,
                    gas_areas={"co2": 0.1, "ch4": 0.1},
                    station="pen-2",
                ),
            )
        store.record(make_event(station="pen-2", device_id="barn-7", wall=newest), publish=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve_until_healthy(db, port)
    try:
        assert len(httpx.get(url + "/api/trend").json()["rows"]) == 35
        rows = httpx.get(url + "/api/trend", params={"station": "pen-2"}).json()["rows"]
        assert len(rows) == 5 and {r["station"] for r in rows} == {"pen-2"}
        assert len(httpx.get(url + "/api/trend", params={"station": "default"}).json()["rows"]) == 30
        events = httpx.get(url + "/api/alerts", params={"station": "pen-2"}).json()["events"]
        assert [e["station"] for e in events] == ["pen-2"]
        assert httpx.get(url + "/api/trend", params={"station": ""}).status_code == 400
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
