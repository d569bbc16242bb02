"""Bytes per device per day on the uplink with the default intervals: retained state, alert events, availability.

    python benchmarks/fleet_uplink.py [--fps 1] [--hours 24]

One simulated day of a device (`AlertService` with the packaged run.yaml defaults: state every 30 s, an open
alert's heartbeat every 300 s) fed with synthetic predictions at `--fps` of frame time: healthy, a 3-hour
acidosis episode and a 20-minute CH4 camera outage. It publishes to a real Mosquitto through a byte-counting TCP
relay, so the figure is every MQTT byte the device sent and received (CONNECT, PUBLISHes with topics, PUBACKs,
SUBSCRIBE). Keepalive pings (at most one per `keepalive_s` each way, only when nothing else was sent) and the
TCP/IP/TLS overhead per packet are added as computed estimates and reported apart. Minute summaries stay in the
device's SQLite (the web page's trend) and are not sent. Home Assistant discovery (off by default) is reported as
its one-time size per connect. The JSON goes to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from alerts_support import policy_config, prediction, sinks_config  # noqa: E402
from mqtt_broker import Broker, free_port  # noqa: E402

from fume_edge.alerts.discovery import discovery_entities  # noqa: E402
from fume_edge.alerts.service import AlertService  # noqa: E402
from fume_edge.alerts.store import AlertStore  # noqa: E402
from fume_edge.alerts.topics import DeviceTopics  # noqa: E402
from fume_edge.bench.machine import machine_info  # noqa: E402

TCP_IP_TLS_PER_PACKET = 52 + 29  # IPv4 + TCP with timestamps, plus a TLS 1.3 record (header, tag, type)
FRAME = np.zeros((48, 64), np.float32)


class CountingRelay:
    """127.0.0.1:port -> the broker, counting the bytes each way (all connections)."""

    def __init__(self, target_port: int) -> None:
        self.port, self.target = free_port(), target_port
        self.up = self.down = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._server.accept()
            broker = socket.create_connection(("127.0.0.1", self.target))
            self.connections += 1
            threading.Thread(target=self._pump, args=(client, broker, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(broker, client, "down"), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                with self._lock:
                    setattr(self, direction, getattr(self, direction) + len(data))
        except OSError:
            pass
        finally:
            sink.close()


def simulate(service: AlertService, fps: float, hours: float) -> dict[str, int]:
    """Feed a day: acidotic from 10:00 to 13:00, the CH4 camera silent 15:00-15:20."""
    healthy, acidotic = (0.9, 0.05, 0.05), (0.05, 0.1, 0.85)
    wall0, step, silent = 1_780_000_000.0, 1.0 / fps, False
    for i in range(int(hours * 3600 * fps)):
        t = i * step
        hour = t / 3600
        outage = 15.0 <= hour < 15.0 + 20 / 60
        if outage != silent:
            silent = outage
            service.on_camera_health(t, wall0 + t, {"ch4"} if silent else set())
        probs = acidotic if 10.0 <= hour < 13.0 else healthy
        service.on_prediction(
            t, wall0 + t, prediction(probs, 0.05, None if silent else 0.04), FRAME, None if silent else FRAME
        )
    return {"predictions": int(hours * 3600 * fps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fps", type=float, default=1.0, help="simulated inference rate (bytes do not depend on it)")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fleet_uplink.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fume-uplink-"))
    broker = Broker(work / "broker")
    broker.start()
    relay = CountingRelay(broker.port)
    sinks = sinks_config(work, {"mqtt": {"url": f"mqtt://127.0.0.1:{relay.port}/farm"}})
    service = AlertService(policy_config(), sinks, device_id="barn-07", model_sha="9" * 64)
    service.start()
    try:
        while service.sinks.mqtt is None or not service.sinks.mqtt.connected:
            time.sleep(0.05)
        simulate(service, args.fps, args.hours)
        service.close()  # drains the outbox (every event acknowledged) and says offline
    finally:
        broker.stop()
    with AlertStore(work / "alerts.db", readonly=True) as store:
        written = len(store.events())
        assert store.unsent_count() == 0, "the outbox did not drain"
    mqtt_cfg = sinks.mqtt
    pings = int(args.hours * 3600 / mqtt_cfg.keepalive_s)  # upper bound: one each way per keepalive period
    states = int(args.hours * 3600 / mqtt_cfg.state_interval_s)
    packets_up = written + states + pings + 4  # events, states, pings, CONNECT/SUBSCRIBE/online/offline
    discovery = discovery_entities(DeviceTopics("farm", "barn-07"), ["default"], "9" * 64)
    day = 24.0 / args.hours
    report = {
        "benchmark": "fleet_uplink",
        "command": " ".join(["python", *sys.argv]),
        "machine": machine_info(),
        "simulated_hours": args.hours,
        "alert_events": written,
        "state_messages": states,
        "mqtt_bytes_up_per_day": round(relay.up * day),
        "mqtt_bytes_down_per_day": round(relay.down * day),
        "keepalive_bytes_per_day_max": round(pings * 4 * day),
        "tcp_ip_tls_overhead_per_day_estimate": round(2 * packets_up * TCP_IP_TLS_PER_PACKET * day),
        "discovery_bytes_per_connect": sum(len(e.topic) + len(e.payload) + 5 for e in discovery),
        "connections": relay.connections,
    }
    report["total_bytes_per_day_estimate"] = (
        report["mqtt_bytes_up_per_day"]
        + report["mqtt_bytes_down_per_day"]
        + report["keepalive_bytes_per_day_max"]
        + report["tcp_ip_tls_overhead_per_day_estimate"]
    )
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
