"""The fleet archive with the real parts on loopback: Mosquitto (a device-local broker bridged to a central one),
`fume-edge collect`, and PostgreSQL 15. Outages of each part lose nothing and store nothing twice."""

from __future__ import annotations

import itertools
import shutil
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import psycopg
import pytest
from alerts_support import make_event, policy_config, prediction, sinks_config
from mqtt_broker import MOSQUITTO, Broker
from postgres_support import Postgres

from fume_edge.alerts.service import AlertService
from fume_edge.alerts.store import AlertStore
from fume_edge.alerts.worker import SinkWorker
from fume_edge.fleet.bridge import BridgeSettings, bridge_config
from fume_edge.fleet.collector import Collector, CollectorConfig
from fume_edge.fleet.queries import fleet_devices, fleet_events
from fume_edge.errors import FumeEdgeError
from fume_edge.fleet.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from waiting import eventually

DEVICE = "barn-1"
T0 = 1_780_000_000.0
_names = itertools.count()


@pytest.fixture
def dsn(postgres: Postgres) -> str:
    return postgres.create_db(f"fleet{next(_names)}")


@pytest.fixture
def central(tmp_path: Path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
    broker = Broker(tmp_path / "central")
    broker.start()
    yield broker
    broker.stop()


def rows(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def count(dsn: str, sql: str = "SELECT count(*) FROM events") -> int:
    try:
        return int(rows(dsn, sql)[0][0])
    except psycopg.OperationalError:  # PostgreSQL restarting
        return -1


def publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-device")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def test_collector_archives_events_state_and_availability_once(central: Broker, dsn: str, tmp_path: Path) -> None:
    collector = Collector(CollectorConfig(f"mqtt://127.0.0.1:{central.port}/fe", dsn))
    collector.start()
    eventually(lambda: collector.connected, "collector.connected", timeout_s=20.0)
    client = publisher(central.port)
    events = [make_event(wall=T0 + i, subject="cow-1" if i % 2 else None) for i in range(6)]
    for event in [*events, events[0]]:  # a redelivery of the first
        client.publish(f"fe/{DEVICE}/{event.station}/alerts/{event.type}", event.to_json(), qos=1).wait_for_publish(5)
    state = {
        "station": "default",
        "time": "2026-06-01T00:00:00+00:00",
        "ph_class": "Acidotic",
        "fps": 4.5,
        "open_alerts": ["acidosis_risk"],
        "model_sha": "ab" * 32,
    }
    client.publish(f"fe/{DEVICE}/default/state", json.dumps(state), qos=1, retain=True).wait_for_publish(5)
    client.publish(f"fe/{DEVICE}/availability", "online", qos=1, retain=True).wait_for_publish(5)
    for topic, payload in (
        (f"fe/{DEVICE}/default/alerts/acidosis_risk", b"{not json"),
        ("fe/bad id!/availability", b"online"),
        (f"fe/{DEVICE}/default/alerts/acidosis_risk", b'{"event_id": "\\u0000"}'),
    ):
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    eventually(lambda: collector.stats.committed >= 12, "collector.stats.committed >= 12", timeout_s=20.0)
    collector.stop()
    client.loop_stop()
    assert collector.stats.ignored == 3
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT version FROM fleet_schema").fetchone() == (SCHEMA_VERSION,)
        stored = fleet_events(conn)
        assert sorted(e.event_id for e in stored) == sorted(e.event_id for e in events)
        assert [e.event_id for e in fleet_events(conn, device=DEVICE, subject="cow-1")] == [
            e.event_id for e in events if e.subject == "cow-1"
        ]
        assert fleet_events(conn, device="barn-2") == [] and fleet_events(conn, station="pen-9") == []
        assert len(fleet_events(conn, since=T0 + 4)) == 2
        (device,) = fleet_devices(conn)
    assert (device.device_id, device.availability, device.fps, device.open_alerts, device.model_sha) == (
        DEVICE,
        "online",
        4.5,
        ("acidosis_risk",),
        "ab" * 32,
    )
    listed = subprocess.run(
        [sys.executable, "-m", "fume_edge", "alerts", "--db", dsn, "--device", DEVICE, "--subject", "cow-1", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["subject"] for line in listed.stdout.splitlines()] == ["cow-1"] * 3
    shown = subprocess.run(
        [sys.executable, "-m", "fume_edge", "fleet", "--db", dsn],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert shown.returncode == 0 and DEVICE in shown.stdout and "online" in shown.stdout and "4.5" in shown.stdout


def bridged_local(tmp_path: Path, central: Broker) -> Broker:
    settings = BridgeSettings(f"mqtt://127.0.0.1:{central.port}/fe", DEVICE)
    local = Broker(tmp_path / "local", "allow_anonymous true\n" + bridge_config(settings))
    local.start()
    return local


def test_every_stored_event_reaches_postgresql_once_across_outages(
    central: Broker, postgres: Postgres, dsn: str, tmp_path: Path
) -> None:
    local = bridged_local(tmp_path, central)
    config = CollectorConfig(f"mqtt://127.0.0.1:{central.port}/fe", dsn)
    collector = Collector(config)
    collector.start()
    device = SinkWorker(
        sinks_config(
            tmp_path, {"mqtt": {"url": f"mqtt://127.0.0.1:{local.port}/fe", "reconnect_min_s": 1, "reconnect_max_s": 1}}
        ),
        device_id=DEVICE,
    )
    device.start()
    wall = itertools.count()

    def emit(n: int) -> None:
        for _ in range(n):
            device.submit([make_event(wall=T0 + next(wall))])
            time.sleep(0.01)

    try:
        emit(20)
        eventually(lambda: count(dsn) == 20, "count(dsn) == 20", timeout_s=30)
        central.stop()  # the uplink's far end goes away: the local broker queues for the bridge
        emit(20)
        time.sleep(2)
        central.start()
        emit(10)
        eventually(lambda: count(dsn) == 50, "count(dsn) == 50", timeout_s=60)
        collector.stop()  # the collector goes away: the central broker queues for its session
        emit(20)
        time.sleep(2)
        collector = Collector(config)
        collector.start()
        eventually(lambda: count(dsn) == 70, "count(dsn) == 70", timeout_s=60)
        postgres.stop()  # PostgreSQL goes away: nothing is acknowledged, the broker keeps it in flight
        emit(20)
        eventually(lambda: collector.stats.db_failures > 0, "collector.stats.db_failures > 0", timeout_s=30)
        postgres.start()
        emit(10)
        eventually(lambda: count(dsn) == 100, "count(dsn) == 100", timeout_s=60)
    finally:
        device.stop()
        collector.stop()
        local.stop()
    with AlertStore(tmp_path / "alerts.db", readonly=True) as store:
        stored = {event.event_id for event in store.events()}
    archived = [row[0] for row in rows(dsn, "SELECT event_id FROM events")]
    assert len(stored) == 100 and sorted(archived) == sorted(stored)  # all of them, each once


DEVICE_PROCESS = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[3])
    from alerts_support import sinks_config
    from pathlib import Path
    from fume_edge.alerts.worker import SinkWorker
    config = sinks_config(Path(sys.argv[2]), {"mqtt": {"url": sys.argv[1], "keepalive_s": 2}})
    worker = SinkWorker(config, device_id="barn-1")
    worker.start()
    while not worker.mqtt.connected:
        time.sleep(0.02)
    print("connected", flush=True)
    time.sleep(120)
""")


def test_a_killed_device_turns_offline_in_the_archive_and_online_again(
    central: Broker, dsn: str, tmp_path: Path
) -> None:
    local = bridged_local(tmp_path, central)
    collector = Collector(CollectorConfig(f"mqtt://127.0.0.1:{central.port}/fe", dsn))
    collector.start()
    availability = f"SELECT availability FROM devices WHERE device_id = '{DEVICE}'"

    def start_device() -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                DEVICE_PROCESS,
                f"mqtt://127.0.0.1:{local.port}/fe",
                str(tmp_path),
                str(Path(__file__).parent),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "connected"
        return child

    child = start_device()
    try:
        eventually(
            lambda: rows(dsn, availability) == [("online",)], 'rows(dsn, availability) == [("online",)]', timeout_s=30
        )
        child.send_signal(signal.SIGKILL)
        child.wait()
        killed = time.monotonic()
        eventually(
            lambda: rows(dsn, availability) == [("offline",)], 'rows(dsn, availability) == [("offline",)]', timeout_s=10
        )
        assert time.monotonic() - killed < 2 * 1.5 + 2  # the keepalive window (1.5 x 2 s) plus delivery
        child = start_device()
        eventually(
            lambda: rows(dsn, availability) == [("online",)], 'rows(dsn, availability) == [("online",)]', timeout_s=30
        )
        uplink = f"SELECT uplink FROM devices WHERE device_id = '{DEVICE}'"
        assert rows(dsn, uplink) == [("up",)]
        local._proc.kill()  # type: ignore[union-attr]  # the local broker dies: its bridge's last will says so
        eventually(lambda: rows(dsn, uplink) == [("down",)], 'rows(dsn, uplink) == [("down",)]', timeout_s=15)
    finally:
        child.kill()
        child.wait()
        collector.stop()
        local.stop()


def test_fume_edge_collect_runs_as_a_command_and_stops_on_sigterm(central: Broker, dsn: str, tmp_path: Path) -> None:
    credentials = tmp_path / "collector.credentials"
    credentials.write_text("collector:unused\n")  # the test broker is anonymous; the file is still read
    command = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fume_edge",
            "collect",
            "--mqtt",
            f"mqtt://127.0.0.1:{central.port}/fe",
            "--db",
            dsn,
            "--credentials",
            str(credentials),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert command.stdout is not None  # the first lines: "collecting ..." and the log's "connected"
        assert any("collecting fe/#" in line for line in itertools.islice(iter(command.stdout.readline, ""), 3))
        event = make_event()
        client = publisher(central.port)

        def taken() -> bool:  # publish until the command's subscription takes it
            if count(dsn) == 1:
                return True
            client.publish(f"fe/{DEVICE}/{event.station}/alerts/{event.type}", event.to_json(), qos=1).wait_for_publish(
                5
            )
            return False

        eventually(taken, "the collector command storing the event", timeout_s=30, every_s=0.5)
        client.loop_stop()
        assert rows(dsn, "SELECT event_id FROM events") == [(event.event_id,)]
        command.send_signal(signal.SIGTERM)
        output, _ = command.communicate(timeout=30)
        assert command.returncode == 0 and "stopped:" in output and "Traceback" not in output, output
    finally:
        command.kill()


def test_the_schema_is_migrated_from_v1_and_a_newer_one_is_refused(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(MIGRATIONS[0])  # a database a v1 collector made
        conn.execute("CREATE TABLE fleet_schema (version integer NOT NULL); INSERT INTO fleet_schema VALUES (1)")
        conn.execute("INSERT INTO devices (device_id, availability) VALUES ('barn-1', 'online')")
        assert migrate(conn) == 1 and migrate(conn) == SCHEMA_VERSION == 2
        assert conn.execute("SELECT device_id, availability, uplink FROM devices").fetchall() == [
            ("barn-1", "online", None)
        ]
        conn.execute("UPDATE fleet_schema SET version = 99")
        with pytest.raises(FumeEdgeError, match="v99 is newer"):
            migrate(conn)


def test_a_bridged_device_works_under_the_documented_acl(tmp_path: Path, dsn: str) -> None:
    """The central broker runs fume_edge/fleet/mosquitto-acl.conf; the device's local broker bridges in with the
    device's login and the collector reads with its own: events, state, availability and uplink all arrive."""
    passwd_tool = shutil.which("mosquitto_passwd")
    if MOSQUITTO is None or passwd_tool is None:
        pytest.skip("needs mosquitto and mosquitto_passwd (apt-get install mosquitto)")
    passwd = tmp_path / "passwd"
    for i, user in enumerate((DEVICE, "collector")):
        subprocess.run([passwd_tool, "-b", *(["-c"] if i == 0 else []), str(passwd), user, f"pw-{user}"], check=True)
    acl = Path(__file__).parents[1] / "fume_edge" / "fleet" / "mosquitto-acl.conf"
    central = Broker(
        tmp_path / "central",
        f"allow_anonymous false\npassword_file {passwd}\nacl_file {acl}\nuse_username_as_clientid true\n",
    )
    central.start()
    settings = BridgeSettings(f"mqtt://127.0.0.1:{central.port}/fume-edge", DEVICE, login=(DEVICE, f"pw-{DEVICE}"))
    local = Broker(tmp_path / "local", "allow_anonymous true\n" + bridge_config(settings))
    local.start()
    collector = Collector(
        CollectorConfig(f"mqtt://127.0.0.1:{central.port}/fume-edge", dsn, credentials=("collector", "pw-collector"))
    )
    collector.start()
    config = sinks_config(
        tmp_path, {"mqtt": {"url": f"mqtt://127.0.0.1:{local.port}/fume-edge", "state_interval_s": 1.0}}
    )
    service = AlertService(policy_config(), config, device_id=DEVICE)
    service.start()
    try:
        event = make_event()
        service.sinks.submit([event])
        frame = np.zeros((48, 64), np.float32)
        service.on_prediction(0.0, T0, prediction(), frame, frame)
        eventually(lambda: count(dsn) == 1, "count(dsn) == 1", timeout_s=30)
        eventually(
            lambda: rows(dsn, "SELECT availability, uplink FROM devices") == [("online", "up")],
            'rows(dsn, "SELECT availability, uplink FROM devices") == [("online"...',
            timeout_s=30,
        )
        eventually(
            lambda: count(dsn, "SELECT count(*) FROM station_state") == 1,
            'count(dsn, "SELECT count(*) FROM station_state") == 1',
            timeout_s=30,
        )
    finally:
        service.close()
        collector.stop()
        local.stop()
        central.stop()


def test_a_collector_stopped_while_postgresql_is_down_leaves_its_messages_to_the_next(
    central: Broker, postgres: Postgres, dsn: str
) -> None:
    config = CollectorConfig(f"mqtt://127.0.0.1:{central.port}/fe", dsn)
    collector = Collector(config)
    collector.start()
    eventually(lambda: collector.connected, "collector.connected", timeout_s=20.0)
    postgres.stop()
    try:
        event = make_event()
        client = publisher(central.port)
        client.publish(f"fe/{DEVICE}/{event.station}/alerts/{event.type}", event.to_json(), qos=1).wait_for_publish(5)
        client.loop_stop()
        eventually(lambda: collector.stats.db_failures > 0, "collector.stats.db_failures > 0", timeout_s=20.0)
        stopping = threading.Thread(target=collector.stop)
        stopping.start()
        stopping.join(timeout=30)
        assert not stopping.is_alive()  # no endless retry at shutdown
    finally:
        postgres.start()
    again = Collector(config)
    again.start()
    eventually(
        lambda: rows(dsn, "SELECT event_id FROM events") == [(event.event_id,)],
        'rows(dsn, "SELECT event_id FROM events") == [(event.event_id,)]',
        timeout_s=30,
    )
    again.stop()
