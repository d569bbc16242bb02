"""Helpers for the web tests: `fume-edge run --http` as a real subprocess on synthetic cameras, and HTTP calls."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import cv2
import httpx
import numpy as np

from alerts_support import make_event
from fume_edge.alerts.store import AlertStore
from fume_edge.alerts.subject import set_subject
from fume_edge.alerts.summary import SummaryRow, record_summary
from mqtt_broker import free_port
from pipeline_support import FRAME_SIZE
from waiting import eventually

FUME_EDGE = [sys.executable, "-c", "import sys; from fume_edge.cli import main; sys.argv[0] = 'fume-edge'; main()"]
ARTIFACTS = Path(os.environ.get("FUME_EDGE_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))

# Small synthetic frames; the CH4 camera drops out 2 s into every 6 s loop, so `camera_degraded` starts (with a
# snapshot) and ends again and again while a test runs.
LOOPING_OUTAGE = f"""
sources:
  co2: {{width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  ch4: {{width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  synthetic:
    fps: 10.0
    segments: [{{ph: 6.4, seconds: 6.0}}]
    outage: {{gas: ch4, start_s: 2.0, seconds: 2.0}}
sync: {{silent_after_s: 0.5}}
"""


class WebRun:
    """One `fume-edge run --co2 synthetic --ch4 synthetic --http HOST:PORT ...` (with `stations`: the `stations:`
    of `yaml` instead of --co2/--ch4); output goes to `log`."""

    def __init__(
        self,
        folder: Path,
        *args: str,
        host: str = "127.0.0.1",
        token: str | None = None,
        yaml: str | None = None,
        stations: bool = False,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.port, self.token = folder, free_port(), token
        self.db, self.snapshots, self.log = folder / "alerts.db", folder / "snapshots", folder / "run.log"
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "FUME_EDGE_TOKEN")}
        if token is not None:
            env["FUME_EDGE_TOKEN"] = token
        cameras = [] if stations else ["--co2", "synthetic", "--ch4", "synthetic"]
        command = [
            *FUME_EDGE,
            "run",
            *cameras,
            "--http",
            f"{host}:{self.port}",
            "--alerts",
            str(self.db),
            "--snapshots",
            str(self.snapshots),
            "--quiet",
            *args,
        ]
        if yaml is not None:
            (folder / "run.yaml").write_text(yaml, encoding="utf-8")
            command += ["--config", str(folder / "run.yaml")]
        self._out = open(self.log, "w", encoding="utf-8")  # noqa: SIM115 (the server's log, closed in stop())
        self.proc = subprocess.Popen(command, stdout=self._out, stderr=subprocess.STDOUT, text=True, env=env)

    def wait_ready(self, timeout: float = 120.0) -> WebRun:
        """Until /healthz answers 200 (results are flowing)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"no healthy web server after {timeout} s:\n{self.output()}")

    def headers(self) -> dict[str, str]:
        return {} if self.token is None else {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.headers() if auth else {}, timeout=10, **kwargs)

    def wait_for(self, condition: Callable[[dict[str, Any]], bool], timeout: float = 60.0) -> dict[str, Any]:
        """Poll /api/status until `condition(status)`; returns that status."""
        last: list[dict[str, Any]] = []

        def met() -> dict[str, Any] | None:
            last[:] = [self.get("/api/status").json()]
            return last[0] if condition(last[0]) else None

        try:
            return eventually(met, "a status meeting the condition", timeout_s=timeout, every_s=0.3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status {last}") from None

    def page_url(self) -> str:
        """The page's address the run printed (with `#token=...` when it generated the token)."""
        found = re.search(r"web page: (\S+)", self.output())
        assert found, self.output()
        return found.group(1)

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(encoding="utf-8")

    def stop(self, timeout: float = 60.0) -> str:
        """SIGINT (a clean stop: open alerts ended, summary printed); returns everything it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.log.read_text(encoding="utf-8")


DEVICE_SNAPSHOTS = Path("/var/lib/fume-edge/snapshots")  # where the device wrote them; not on this machine


def copied_database(folder: Path) -> tuple[Path, float]:
    """A database as a device leaves it, its snapshots folder copied beside it; returns it and its newest minute."""
    db, snapshots = folder / "alerts.db", folder / "snapshots"
    snapshots.mkdir(parents=True)
    three_days_ago = time.time() - 3 * 86400
    newest = three_days_ago - three_days_ago % 60
    with AlertStore(db) as store:
        store.begin_run("barn-7", "f00d", {})
        set_subject(store, "cow-11", "cli", now=newest - 3600)
        for i in range(30):
            record_summary(
                store,
                SummaryRow(
                    minute=newest - (29 - i) * 60,
                    device_id="barn-7",
                    subject="cow-11",
                    frames=600,
                    degraded=0,
                    probs={"Healthy": 0.9, "Transitional": 0.05, "Acidotic": 0.05},
                    gas_areas={"co2": 0.2, "ch4": 0.01},
                ),
            )
        for i in range(3):
            name = f"2026-01-0{i + 1}T00-00-00Z_acidosis_risk_start_0000000{i}.png"
            (snapshots / name).write_bytes(cv2.imencode(".png", np.full((48, 64, 3), 60 * i, np.uint8))[1].tobytes())
            store.record(
                make_event(
                    wall=newest - 600 + i * 60,
                    subject="cow-11",
                    device_id="barn-7",
                    snapshot=str(DEVICE_SNAPSHOTS / name),
                ),
                publish=False,
            )
    return db, newest


def serve_until_healthy(db: Path, port: int, timeout: float = 60.0) -> subprocess.Popen[str]:
    """`fume-edge serve DB --listen 127.0.0.1:PORT` started, once /healthz answers 200 (output on its stdout)."""
    proc = subprocess.Popen(
        [*FUME_EDGE, "serve", str(db), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"fume-edge serve did not come up:\n{proc.communicate()[0]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
