"""Throughput and latency of `fume-edge collect` into PostgreSQL, from a replay of alert events.

    python benchmarks/fleet_collector.py [--events 20000] [--devices 50] [--rate 2000]

Starts a real Mosquitto and a real PostgreSQL 15 (temporary, loopback; as `nobody` under root) with the test
suite's helpers, and one collector in this process. Replayed events are real `AlertEvent` JSON (as `fume-edge run`
publishes them) from `--devices` devices. Two phases: `burst` publishes every event as fast as a QoS 1 client can
(throughput: events committed per second from the first publish to the last commit), then `paced` offers `--rate`
events/s (latency: publish -> PostgreSQL commit of each event, p50/p99/max). Every event is checked to be stored
exactly once. Targets (issue 24): >= 2,000 events/s, p99 < 1 s. The JSON goes to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import multiprocessing
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from alerts_support import make_event  # noqa: E402
from mqtt_broker import Broker  # noqa: E402
from postgres_support import Postgres  # noqa: E402

from fume_edge.bench.machine import machine_info  # noqa: E402
from fume_edge.fleet.collector import Collector, CollectorConfig  # noqa: E402

PREFIX = "fleet"


class TimedCollector(Collector):
    """Records the commit time of every message (the benchmark's only addition)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.commits: list[tuple[bytes, float]] = []

    def _write(self, batch: list) -> None:  # type: ignore[override]
        super()._write(batch)
        now = time.monotonic()
        self.commits.extend((message.payload, now) for message in batch)


def replay(count: int, devices: int, offset: int) -> list[tuple[str, str, str]]:
    """(event_id, topic, payload) of `count` events spread over `devices` devices."""
    events = []
    for i in range(count):
        device = f"barn-{i % devices:02d}"
        event = make_event(
            wall=1_780_000_000.0 + offset + i,
            device_id=device,
            alert_type=("acidosis_risk", "camera_degraded", "gas_absent")[i % 3],
            state=("start", "update", "end")[i % 3],
            subject=f"cow-{i % 97}",
        )
        events.append((event.event_id, f"{PREFIX}/{device}/alerts/{event.type}", event.to_json()))
    return events


def publish(port: int, events: list[tuple[str, str, str]], rate: float | None, out: Path) -> None:
    """In its own process (the collector's GIL stays the collector's): publish at QoS 1, paced at `rate` (None: as
    fast as possible), and write each event's publish time (CLOCK_MONOTONIC, the same in every process)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="replay")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent: dict[str, float] = {}
    start = time.monotonic()
    infos = []
    for i, (event_id, topic, payload) in enumerate(events):
        if rate is not None:
            wait = start + i / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        sent[event_id] = time.monotonic()
        infos.append(client.publish(topic, payload, qos=1))
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()
    out.write_text(json.dumps(sent))


def phase(
    name: str, collector: TimedCollector, port: int, events: list[tuple[str, str, str]], rate: float | None, work: Path
) -> dict[str, object]:
    collector.commits.clear()
    times = work / f"{name}.json"
    publisher = multiprocessing.Process(target=publish, args=(port, events, rate, times))
    publisher.start()
    publisher.join()
    sent = json.loads(times.read_text())
    deadline = time.monotonic() + 300
    while len(collector.commits) < len(events) and time.monotonic() < deadline:
        time.sleep(0.05)
    committed = {json.loads(payload)["event_id"]: at for payload, at in collector.commits}
    latencies = sorted(committed[event_id] - sent[event_id] for event_id, _, _ in events)
    span = max(committed.values()) - min(sent.values())
    quantile = statistics.quantiles(latencies, n=100)
    result = {
        "phase": name,
        "events": len(events),
        "offered_rate": rate,
        "seconds": round(span, 3),
        "events_per_s": round(len(events) / span, 1),
        "latency_p50_s": round(quantile[49], 4),
        "latency_p99_s": round(quantile[98], 4),
        "latency_max_s": round(latencies[-1], 4),
    }
    print(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fleet_collector.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fume-collect-bench-"))
    broker = Broker(work / "broker", "allow_anonymous true\nmax_inflight_messages 1000\nmax_queued_messages 0\n")
    broker.start()
    postgres = Postgres()
    postgres.start()
    dsn = postgres.create_db("fleet")
    collector = TimedCollector(CollectorConfig(f"mqtt://127.0.0.1:{broker.port}/{PREFIX}", dsn))
    collector.start()
    try:
        while not collector.connected:
            time.sleep(0.05)
        time.sleep(0.5)  # the collector's subscription is in place
        results = [
            phase("burst", collector, broker.port, replay(args.events, args.devices, 0), None, work),
            phase("paced", collector, broker.port, replay(args.events, args.devices, args.events), args.rate, work),
        ]
        with psycopg.connect(dsn) as conn:
            stored, distinct = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
        assert stored == distinct == 2 * args.events, (stored, distinct)
    finally:
        collector.stop()
        broker.stop()
        postgres.remove()
    report = {
        "benchmark": "fleet_collector",
        "command": " ".join(["python", *sys.argv]),
        "machine": machine_info(),
        "devices": args.devices,
        "stored_exactly_once": True,
        "phases": results,
        "targets": {"events_per_s": 2000, "latency_p99_s": 1.0},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
