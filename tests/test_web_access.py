"""Access to the web server of a real `fume-edge run` bound beyond loopback: token rules, tagging, snapshots."""

from __future__ import annotations

import http.client
import json
import sqlite3
import subprocess
from pathlib import Path
from collections.abc import Iterator

import httpx
import pytest

from fume_edge.web.access import AccessPolicy
from mqtt_broker import free_port
from web_support import FUME_EDGE, LOOPING_OUTAGE, WebRun

TOKEN = "s3cret-barn-token"
READS = ("/api/status", "/api/alerts", "/api/trend?hours=1", "/metrics", "/api/frame/co2.jpg")


@pytest.fixture(scope="module")
def lan_run(tmp_path_factory: pytest.TempPathFactory, small_onnx: Path) -> Iterator[WebRun]:
    run = WebRun(
        tmp_path_factory.mktemp("web_lan"),
        "--model",
        str(small_onnx),
        "--duration",
        "300",
        host="0.0.0.0",
        token=TOKEN,
        yaml=LOOPING_OUTAGE,
    ).wait_ready()
    yield run
    output = run.stop()
    assert TOKEN not in output  # never logged


def _subject_rows(db: Path) -> list[tuple[str | None, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT subject, source FROM subjects ORDER BY id").fetchall()


def test_reads_need_the_token_beyond_loopback(lan_run: WebRun) -> None:
    for path in READS:
        assert lan_run.get(path, auth=False).status_code == 401, path
        assert httpx.get(lan_run.url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
        assert lan_run.get(path).status_code == 200, path
        assert httpx.get(lan_run.url + path, cookies={"fume_edge_token": TOKEN}).status_code == 200, path
    # The page itself holds no data (it asks for the token); /healthz is for service managers and balancers.
    assert lan_run.get("/", auth=False).status_code == 200
    assert lan_run.get("/healthz", auth=False).json()["status"] == "ok"


def test_tagging_is_refused_without_the_token_and_changes_nothing(lan_run: WebRun) -> None:
    before = _subject_rows(lan_run.db)
    attempts = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
    for headers in attempts:
        response = httpx.post(lan_run.url + "/api/subject", json={"subject": "cow-1"}, headers=headers)
        assert response.status_code == 401
    # A cookie is enough to read, never to write (another site could make a browser send it).
    response = httpx.post(lan_run.url + "/api/subject", json={"subject": "cow-1"}, cookies={"fume_edge_token": TOKEN})
    assert response.status_code == 401
    assert _subject_rows(lan_run.db) == before
    assert lan_run.get("/api/status").json()["subject"] != "cow-1"

    bad = httpx.post(lan_run.url + "/api/subject", json={"subject": "../../x"}, headers=lan_run.headers())
    assert bad.status_code == 400 and _subject_rows(lan_run.db) == before

    ok = httpx.post(lan_run.url + "/api/subject", json={"subject": "cow-1"}, headers=lan_run.headers())
    assert ok.status_code == 200
    assert _subject_rows(lan_run.db)[-1] == ("cow-1", "web")
    lan_run.wait_for(lambda s: s["subject"] == "cow-1", timeout=10)


def test_tag_command_tags_the_alerts_that_follow(lan_run: WebRun) -> None:
    # An event before the tag, so the untagged listing below has something the tagged one must leave out.
    lan_run.wait_for(lambda s: len(lan_run.get("/api/alerts").json()["events"]) >= 1, timeout=60)
    tagged = subprocess.run(
        [*FUME_EDGE, "tag", "sheep 42", "--db", str(lan_run.db)], capture_output=True, text=True, timeout=60
    )
    assert tagged.returncode == 0, tagged.stderr
    status = lan_run.wait_for(lambda s: s["subject"] == "sheep 42", timeout=15)
    assert status["subject_since"] is not None
    assert _subject_rows(lan_run.db)[-1] == ("sheep 42", "cli")

    # The outage loop raises camera_degraded every 6 s: the next ones carry the subject.
    def tagged_events() -> list[dict[str, object]]:
        return lan_run.get("/api/alerts", params={"subject": "sheep 42"}).json()["events"]

    lan_run.wait_for(lambda s: len(tagged_events()) >= 2, timeout=60)
    listed = subprocess.run(
        [*FUME_EDGE, "alerts", "--db", str(lan_run.db), "--subject", "sheep 42", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(events) >= 2 and {e["subject"] for e in events} == {"sheep 42"}
    everything = subprocess.run(
        [*FUME_EDGE, "alerts", "--db", str(lan_run.db), "--json"], capture_output=True, text=True, timeout=60
    )
    assert len(everything.stdout.splitlines()) > len(events)  # earlier events had no or another subject

    bad = subprocess.run(
        [*FUME_EDGE, "tag", "a;b\n", "--db", str(lan_run.db)], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def _raw_get(run: WebRun, path: str) -> tuple[int, bytes]:
    """A request line sent exactly as written (clients normalise `..` away; an attacker does not)."""
    conn = http.client.HTTPConnection("127.0.0.1", run.port, timeout=10)
    conn.putrequest("GET", path, skip_host=False)
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def test_snapshots_are_served_and_nothing_outside_their_folder(lan_run: WebRun) -> None:
    def with_snapshot() -> list[dict[str, object]]:
        return [e for e in lan_run.get("/api/alerts").json()["events"] if e["snapshot_url"]]

    lan_run.wait_for(lambda s: bool(with_snapshot()), timeout=60)
    url = str(with_snapshot()[0]["snapshot_url"])
    status, body = _raw_get(lan_run, url)
    assert status == 200 and body.startswith(b"\x89PNG")
    assert lan_run.get(url, auth=False).status_code == 401

    (lan_run.snapshots / "link.png").symlink_to(lan_run.db)  # a link pointing out of the folder
    secret = str(lan_run.db)
    for path in (
        "/snapshots/../alerts.db",
        "/snapshots/..%2Falerts.db",
        "/snapshots/%2E%2E%2Frun.log",
        "/snapshots/..%5Calerts.db",
        f"/snapshots/{secret}",
        f"/snapshots/{secret.replace('/', '%2F')}",
        "/snapshots//etc/passwd",
        "/snapshots/%2Fetc%2Fpasswd",
        "/snapshots/link.png",
        "/snapshots/..",
        "/static/../alerts.db",
        "/static/%2E%2E/%2E%2E/configs/run.yaml",
    ):
        status, body = _raw_get(lan_run, path)
        assert status in (400, 404), (path, status)
        assert b"SQLite format" not in body and b"root:" not in body and b"sinks:" not in body, path


def test_beyond_loopback_without_a_configured_token_a_generated_one_guards_reads(
    tmp_path: Path, small_onnx: Path
) -> None:
    run = WebRun(
        tmp_path, "--model", str(small_onnx), "--duration", "120", host="0.0.0.0", yaml=LOOPING_OUTAGE
    ).wait_ready()
    try:
        token = (tmp_path / "web-token").read_text().strip()
        assert run.page_url().endswith(f":{run.port}/#token={token}")
        assert run.get("/api/status").status_code == 401
        assert httpx.get(run.url + "/api/status", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        run.stop()


def test_a_taken_port_is_one_error_line(tmp_path: Path, small_onnx: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                *FUME_EDGE,
                "run",
                "--co2",
                "synthetic",
                "--ch4",
                "synthetic",
                "--model",
                str(small_onnx),
                "--http",
                f"127.0.0.1:{port}",
                "--alerts",
                str(tmp_path / "a.db"),
                "--duration",
                "5",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2 and "cannot listen" in result.stderr and "Traceback" not in result.stderr


def test_access_rules(tmp_path: Path) -> None:
    loopback = AccessPolicy.for_listen("127.0.0.1", None, public_read=False, state_dir=tmp_path)
    assert loopback.may_read({}, {}) and not loopback.may_write({})
    assert loopback.may_write({"authorization": f"Bearer {(tmp_path / 'web-token').read_text().strip()}"})
    public = AccessPolicy.for_listen("0.0.0.0", TOKEN, public_read=True, state_dir=tmp_path)
    assert public.may_read({}, {}) and not public.may_write({})
    assert public.may_write({"authorization": f"Bearer {TOKEN}"})
    private = AccessPolicy.for_listen("192.168.1.20", TOKEN, public_read=False, state_dir=tmp_path)
    assert not private.may_read({}, {}) and private.may_read({}, {"fume_edge_token": TOKEN})
    assert not private.may_write({"authorization": f"Bearer {TOKEN}x"})
