"""Hostile HTTP against a real `fume-edge run --http` on loopback with no token configured (the default): DNS
rebinding, malformed bodies and parameters fuzzed over every endpoint, token guessing, and the generated token."""

from __future__ import annotations

import http.client
import os
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mqtt_broker import free_port
from waiting import eventually
from web_support import FUME_EDGE, LOOPING_OUTAGE, WebRun

NAMED_HOST = "barn-1.example.org"
DATA_PATHS = (
    "/",
    "/api/status",
    "/api/alerts",
    "/api/trend",
    "/metrics",
    "/api/frame/co2.jpg",
    "/api/frame/default/co2.jpg",
    "/healthz",
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, small_onnx: Path) -> Iterator[WebRun]:
    web = WebRun(
        tmp_path_factory.mktemp("web_hostile"),
        "--model",
        str(small_onnx),
        "--duration",
        "300",
        yaml=LOOPING_OUTAGE + f"http: {{hostnames: [{NAMED_HOST}], frame_width: 4000}}\n",
    ).wait_ready()
    yield web
    output = web.stop()
    assert "Traceback" not in output and "Exception in ASGI" not in output, output


def _raw(
    run: WebRun, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One request sent exactly as written (clients normalise paths and refuse odd hosts; an attacker does not)."""
    conn = http.client.HTTPConnection("127.0.0.1", run.port, timeout=15)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in {"Host": f"127.0.0.1:{run.port}", **(headers or {})}.items():
        conn.putheader(name, value)
    if body is not None and "Content-Length" not in (headers or {}):
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def _token(run: WebRun) -> str:
    return (run.folder / "web-token").read_text().strip()


def _subjects(run: WebRun) -> list[tuple[str | None, str]]:
    with sqlite3.connect(run.db) as conn:
        return conn.execute("SELECT subject, source FROM subjects ORDER BY id").fetchall()


def test_a_rebound_name_is_refused_and_the_names_of_this_device_are_served(run: WebRun) -> None:
    for path in DATA_PATHS:
        status, body = _raw(run, "GET", path, headers={"Host": f"evil.example:{run.port}"})
        assert status == 400 and b"Invalid host" in body, (path, status)
        assert b"fume" not in body.lower(), path
    for host in (
        "localhost",
        f"localhost:{run.port}",
        f"127.0.0.1:{run.port}",
        f"[::1]:{run.port}",
        f"{NAMED_HOST}:{run.port}",
        f"192.168.1.20:{run.port}",
    ):
        assert _raw(run, "GET", "/api/status", headers={"Host": host})[0] == 200, host


def test_camera_images_are_never_wider_than_the_model_input(run: WebRun, small_onnx: Path) -> None:
    import cv2
    import numpy as np
    import onnx

    model_width = onnx.load(str(small_onnx)).graph.input[0].type.tensor_type.shape.dim[3].dim_value
    assert 16 < model_width < 4000
    response = run.get("/api/frame/co2.jpg")
    assert response.status_code == 200
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[1] == model_width  # http.frame_width 4000 in this run's run.yaml


def test_the_token_is_generated_kept_private_and_printed_with_the_page_address(run: WebRun) -> None:
    token_file = run.folder / "web-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = _token(run)
    assert len(token) >= 32
    assert run.page_url() == f"{run.url}/#token={token}"
    refused = httpx.post(run.url + "/api/subject", json={"subject": "cow-1"})
    assert refused.status_code == 401 and "printed at start" in refused.json()["error"]
    ok = httpx.post(run.url + "/api/subject", json={"subject": "cow-1"}, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and _subjects(run)[-1] == ("cow-1", "web")
    assert run.get("/api/status").json()["access"]["token_from"].endswith(str(token_file))


BAD_BODIES = [
    b"[]",
    b'"x"',
    b"null",
    b"{}",
    b"",
    b"   ",
    b'{"subject":5}',
    b'{"subject":["a"]}',
    b'{"subject":{}}',
    b'{"subject":[[[[[[[[[[["a"]]]]]]]]]]]}',
    b"[" * 4000,
    b'{"subject":' * 1000,
    b"\xff\xfe\x00",
    b'{"subject":"cow-2","admin":true}',
    b'{"subject":"../../etc"}',
    b'{"subject":1e999}',
    b'{"subject":"' + b"a" * 300 + b'"}',
    b"[" * 50_000,
    b'{"subject":"' + b"b" * 10_000 + b'"}',
]
BAD_QUERIES = [
    "/api/alerts?page=1e20",
    "/api/alerts?page=-1",
    "/api/alerts?page=99999999999999999999",
    "/api/alerts?per_page=0",
    "/api/alerts?per_page=1000000",
    "/api/alerts?type=evil",
    "/api/alerts?since=garbage",
    "/api/alerts?since=99999-01-01",
    "/api/alerts?until=%00",
    "/api/alerts?since=-999999999-01-01",
    "/api/alerts?subject=" + "x" * 5000,
    "/api/alerts?nope=1",
    "/api/alerts?page=1&page=x",
    "/api/trend?hours=inf",
    "/api/trend?hours=nan",
    "/api/trend?hours=-1",
    "/api/trend?hours=1e308",
    "/api/trend?hours=abc",
    "/api/trend?hours=",
    "/api/trend?x=%ff",
    "/snapshots/%00.png",
    "/snapshots/%00",
    "/snapshots/a%0A.png",
    "/snapshots/" + "a" * 5000 + ".png",
    "/snapshots/.png",
    "/api/frame/%00.jpg",
    "/api/frame/x.jpg",
    "/api/frame/nope/co2.jpg",
    "/api/frame/%00/co2.jpg",
    "/api/frame/../co2.jpg",
    "/api/frame/%2E%2E/co2.jpg",
    "/api/frame/default/x.jpg",
    "/api/frame/default/%00.jpg",
    "/api/frame/default/co2.jpg/x",
    "/api/frame/" + "a" * 5000 + "/co2.jpg",
    "/api/frame/default/" + "c" * 5000 + ".jpg",
    "/api/nope",
    "/static/%00",
]


def test_hostile_bodies_and_parameters_are_4xx_json_and_change_nothing(run: WebRun) -> None:
    auth = {"Authorization": f"Bearer {_token(run)}", "Content-Type": "application/json"}
    httpx.post(run.url + "/api/subject", json={"subject": "kept-cow"}, headers=auth).raise_for_status()
    # the page reads the loop's published snapshot, which the run's subject watcher settles a moment later
    eventually(lambda: run.get("/api/status").json()["subject"] == "kept-cow", "the run showing kept-cow")
    before = _subjects(run)
    for body in BAD_BODIES:
        status, answer = _raw(run, "POST", "/api/subject", body, auth)
        assert status in (400, 413), (body[:40], status, answer)
        assert "error" in httpx.Response(status, content=answer).json(), body[:40]
    for headers in ({"Content-Length": "abc"}, {"Content-Length": "99999999"}, {"Transfer-Encoding": "chunked"}):
        status, _ = _raw(run, "POST", "/api/subject", b'5\r\n{"sub\r\n0\r\n\r\n', {**auth, **headers})
        assert 400 <= status < 500, (headers, status)
    assert _subjects(run) == before and run.get("/api/status").json()["subject"] == "kept-cow"
    for path in BAD_QUERIES:
        status, answer = _raw(run, "GET", path)
        assert 400 <= status < 500, (path[:60], status, answer[:200])
        if not path.startswith("/static"):
            assert "error" in httpx.Response(status, content=answer).json(), path[:60]
    for method, path in (("DELETE", "/api/status"), ("PUT", "/api/subject"), ("GET", "/api/subject")):
        assert _raw(run, method, path)[0] == 405, (method, path)
    # Every endpoint still answers, and nothing above left a traceback.
    assert run.get("/api/alerts", params={"page": 3, "per_page": 5}).status_code == 200
    assert run.get("/api/trend", params={"hours": 1}).status_code == 200
    output = run.output()
    assert "Traceback" not in output and "Exception in ASGI" not in output and " ERROR " not in output, output


def test_token_guessing_is_held_back_per_client_and_logged_once(run: WebRun) -> None:
    """Last in this module: it uses up this client's failed attempts for a while."""
    started = time.monotonic()
    with httpx.Client(base_url=run.url) as client:
        answers = [
            client.post(
                "/api/subject", json={"subject": "x"}, headers={"Authorization": f"Bearer guess-{i}"}
            ).status_code
            for i in range(60)
        ]
    elapsed = time.monotonic() - started
    assert set(answers) == {401, 429} and answers.index(429) <= 10, answers  # 10 tries, fewer after earlier ones
    assert answers.count(401) <= 10 + elapsed / 6 + 1, (elapsed, answers)  # then one more per 6 s
    right = httpx.post(
        run.url + "/api/subject", json={"subject": "x"}, headers={"Authorization": f"Bearer {_token(run)}"}
    )
    assert right.status_code == 429  # a blocked client cannot try the right one either (it could be a guess)
    lines = [line for line in run.output().splitlines() if "refused for a wrong access token" in line]
    assert len(lines) == 1, lines


def _start_and_stop(
    folder: Path, model: Path, *env: str, host: str = "127.0.0.1", yaml: str = ""
) -> subprocess.CompletedProcess[str]:
    (folder / "run.yaml").write_text(LOOPING_OUTAGE + yaml, encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if k != "FUME_EDGE_TOKEN"}
    environment.update(item.split("=", 1) for item in env)
    return subprocess.run(
        [
            *FUME_EDGE,
            "run",
            "--co2",
            "synthetic",
            "--ch4",
            "synthetic",
            "--model",
            str(model),
            "--http",
            f"{host}:{free_port()}",
            "--alerts",
            str(folder / "alerts.db"),
            "--duration",
            "1",
            "--config",
            str(folder / "run.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


def test_the_generated_token_is_reused_by_the_next_start(tmp_path: Path, small_onnx: Path) -> None:
    first = _start_and_stop(tmp_path, small_onnx)
    assert first.returncode == 0, first.stderr
    token = (tmp_path / "web-token").read_text().strip()
    second = _start_and_stop(tmp_path, small_onnx)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "web-token").read_text().strip() == token
    assert first.stdout.count(f"#token={token}") == second.stdout.count(f"#token={token}") == 1


@pytest.mark.parametrize("case", ["short token beyond loopback", "frame_width beyond any camera"])
def test_weak_settings_are_one_error_line_at_start(tmp_path: Path, small_onnx: Path, case: str) -> None:
    if case == "short token beyond loopback":
        result = _start_and_stop(tmp_path, small_onnx, "FUME_EDGE_TOKEN=abc", host="0.0.0.0")
        expected = "at least 16"
    else:
        result = _start_and_stop(tmp_path, small_onnx, yaml="http: {frame_width: 16000}\n")
        expected = "http.frame_width: must be <= 4096 (got 16000)"
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "web-token").exists()


def test_guessing_is_counted_between_the_once_a_minute_lines(caplog: pytest.LogCaptureFixture) -> None:
    from fume_edge.web.guards import AuthFailures

    failures = AuthFailures(burst=5, per_minute=0.0, log_every_s=0.3)
    with caplog.at_level("WARNING", logger="fume_edge.web"):
        for _ in range(30):
            if not failures.blocked("10.0.0.9"):
                failures.failed("10.0.0.9")
        assert len(caplog.records) == 1 and "1 requests refused" in caplog.text  # the first, at once

        def summarised() -> bool:  # a later check of the blocked address logs the refusals since the first
            failures.blocked("10.0.0.9")
            return len(caplog.records) > 1

        eventually(summarised, "the summary of the refused requests", timeout_s=10)
    assert len(caplog.records) == 2
    assert "4 requests refused" in caplog.records[1].getMessage()  # the other 4 of the 5 tries
    assert "from 10.0.0.9" in caplog.records[1].getMessage()
