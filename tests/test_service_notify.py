"""The systemd notify protocol as systemd sees it: a real AF_UNIX datagram socket in place of the service manager."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_support import write_run_yaml

from fume_edge.service.sd_notify import SystemdNotifier

FUME_EDGE = [sys.executable, "-c", "import sys; from fume_edge.cli import main; sys.argv[0] = 'fume-edge'; main()"]


def _manager(address: str) -> socket.socket:
    """The listening end systemd would hold: `@name` binds in the abstract namespace, like systemd's own."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    sock.settimeout(0.2)
    return sock


def _receive(sock: socket.socket, until: str, timeout_s: float, seen: list[str]) -> list[str]:
    """Datagrams (one string each) until one holds the line `until`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            continue
        seen.append(message)
        if until in message.splitlines():
            return seen
    raise AssertionError(f"no {until} within {timeout_s} s; received {seen}")


def test_outside_systemd_every_call_is_a_no_op() -> None:
    with SystemdNotifier({}) as notifier:
        assert not notifier.enabled and notifier.watchdog_s is None
        notifier.ready("x")
        notifier.tick(lambda: "x")
        notifier.stopping("x")


def test_pings_at_half_the_interval_and_only_for_this_process(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    manager = _manager(path)
    now = [100.0]
    environ = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
    with SystemdNotifier(environ, clock=lambda: now[0]) as notifier:
        assert notifier.watchdog_s == pytest.approx(0.2)
        notifier.ready("loaded")
        assert _receive(manager, "READY=1", 2, [])[0].splitlines()[:2] == ["READY=1", "STATUS=loaded"]
        notifier.tick(lambda: "1 inference")
        now[0] += 0.09
        notifier.tick(lambda: "2 inferences")  # within 0.1 s of the first: not sent
        now[0] += 0.02
        notifier.tick(lambda: "3 inferences")
        notifier.send("STATUS=marker")  # a positive signal: everything sent before it has arrived
        messages = _receive(manager, "STATUS=marker", 2, [])
        assert messages == ["WATCHDOG=1\nSTATUS=1 inference", "WATCHDOG=1\nSTATUS=3 inferences", "STATUS=marker"]
    other = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_s is None  # the watchdog is meant for another process
    other.close()
    manager.close()


def test_a_vanished_manager_never_stops_the_caller(tmp_path: Path) -> None:
    with SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone"), "WATCHDOG_USEC": "1000"}) as notifier:
        notifier.ready("x")  # nobody listens: logged once, no exception
        notifier.tick()


def test_run_under_a_notify_socket_reports_ready_feeds_the_watchdog_and_says_stopping(
    tmp_path: Path, small_onnx: Path
) -> None:
    address = f"@fume-edge-test-{os.getpid()}-{time.monotonic_ns()}"
    manager = _manager(address)
    config = write_run_yaml(
        tmp_path / "run.yaml",
        f"""
model: {{path: {small_onnx}}}
sources:
  co2: {{source: synthetic, width: 160, height: 120}}
  ch4: {{source: synthetic, width: 160, height: 120}}
sinks: {{sqlite: {{path: {tmp_path / "alerts.db"}}}}}
pipeline: {{quiet: true}}
""",
    )
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen(
        [*FUME_EDGE, "run", "--config", str(config)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen: list[str] = []
    try:
        _receive(manager, "READY=1", 60, seen)
        for _ in range(3):
            _receive(manager, "WATCHDOG=1", 5, seen)
        proc.send_signal(signal.SIGTERM)
        _receive(manager, "STOPPING=1", 30, seen)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        manager.close()
    assert proc.returncode == 0, err
    ready = next(m for m in seen if "READY=1" in m.splitlines())
    assert f"MAINPID={proc.pid}" in ready.splitlines()
    assert any(line.endswith("inferences, 0 degraded") for m in seen for line in m.splitlines())
    assert seen.index(ready) < min(i for i, m in enumerate(seen) if m.startswith("WATCHDOG=1"))
    assert "STATUS=SIGTERM: stopping" in seen[-1].splitlines()
