"""`fume-edge collect`: the fleet's MQTT topics on the central broker into PostgreSQL, losing nothing.

The collector holds a persistent MQTT session (v5, clean start off, a long session expiry), so the broker queues
what arrives while it is down. paho's manual acknowledgement (`manual_ack=True`) holds back each PUBACK until the
PostgreSQL transaction holding the message has committed: a crash of the collector or of PostgreSQL before the
commit leaves the message unacknowledged, the broker delivers it again, and the upsert by event id absorbs the
duplicate. Messages are written in batches (whatever arrived while the last transaction ran, up to `batch_max`), so
one commit pays for many; events go in by COPY into a session-local staging table and one upsert from it (faster
than a statement per row). A message that is malformed is counted and acknowledged (it would never improve).

Acknowledgements belong to one connection: when the MQTT connection drops, messages received on it are still
written but not acknowledged (their ids mean nothing on the next connection); the broker sends them again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fume_edge.alerts.mqtt import MqttTarget, parse_mqtt_url
from fume_edge.errors import FumeEdgeError
from fume_edge.fleet import records
from fume_edge.fleet.schema import migrate

log = logging.getLogger(__name__)

QOS = 1
SESSION_EXPIRY_S = 7 * 86400  # how long the broker keeps the session (and queues for it) while we are away
RECEIVE_MAXIMUM = 1000  # unacknowledged messages the broker may have in flight to us
EVENT_COLUMNS = "event_id, alert_id, device_id, station, type, state, subject, time, payload"


@dataclass(frozen=True)
class CollectorConfig:
    mqtt_url: str
    dsn: str  # postgresql://user@host/db (password from PGPASSWORD or ~/.pgpass, as libpq does)
    client_id: str = "fume-edge-collector"
    credentials: tuple[str, str | None] | None = None  # (user, password) for the broker
    ca: str | None = None
    keepalive_s: int = 30
    batch_max: int = 500
    retry_max_s: float = 5.0


@dataclass
class CollectorStats:
    received: int = 0
    committed: int = 0  # messages whose transaction committed
    ignored: int = 0  # malformed messages (acknowledged, not stored)
    db_failures: int = 0  # transactions that failed and were retried
    latencies: list[float] = field(default_factory=list)  # receive -> commit seconds of each committed message


@dataclass(frozen=True)
class _Message:
    generation: int  # which MQTT connection delivered it (its mid is only valid there)
    mid: int
    qos: int
    topic: str
    payload: bytes
    retain: bool
    received: float  # time.monotonic()


def _paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise FumeEdgeError("fume-edge collect needs paho-mqtt: pip install 'fume-edge[fleet]'") from None
    return mqtt


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise FumeEdgeError("fume-edge collect needs psycopg 3: pip install 'fume-edge[fleet]'") from None
    return psycopg


class Collector:
    """`start()`, then it runs on two threads (paho's network loop and the writer) until `stop()`."""

    def __init__(self, config: CollectorConfig, *, keep_latencies: bool = False) -> None:
        self.config = config
        self.target: MqttTarget = parse_mqtt_url(config.mqtt_url, "--mqtt")
        self.stats = CollectorStats()
        self._keep_latencies = keep_latencies
        self._queue: queue.Queue[_Message] = queue.Queue()
        self._generation = 0
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._db: Any = None
        self._db_down_logged = False
        self._client = self._make_client()
        self._writer = threading.Thread(target=self._write_loop, name="fume-edge-collect", daemon=True)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _make_client(self) -> Any:
        mqtt = _paho()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.config.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        user, password = self.config.credentials or (self.target.username, self.target.password)
        if user is not None:
            client.username_pw_set(user, password)
        if self.target.tls:
            client.tls_set(ca_certs=self.config.ca)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("collector: the broker refused the connection (%s)", reason_code)
            return
        client.subscribe([(topic, QOS) for topic in records.subscriptions(self.target.prefix)])
        self._connected.set()
        log.info(
            "collector: connected to %s:%s (session %s)",
            self.target.host,
            self.target.port,
            "resumed" if flags.session_present else "new",
        )

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._generation += 1  # unacknowledged messages of that connection will come again
        if self._connected.is_set() and not self._stopping.is_set():
            log.warning("collector: lost the broker (%s); reconnecting", reason_code)
        self._connected.clear()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.stats.received += 1
        self._queue.put(
            _Message(
                self._generation,
                message.mid,
                message.qos,
                message.topic,
                message.payload,
                bool(message.retain),
                time.monotonic(),
            )
        )

    def start(self) -> None:
        _paho()
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self._open_db()  # a wrong DSN or an old schema is one clear error before anything is received
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self._client.connect_async(
            self.target.host, self.target.port, self.config.keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()
        self._writer.start()

    def stop(self) -> None:
        """Write (and acknowledge) what was received, or give up on the first failure (unacknowledged, it comes
        again), then disconnect."""
        self._stopping.set()
        self._writer.join()
        self._client.disconnect()
        self._client.loop_stop()
        if self._db is not None:
            self._db.close()

    def _open_db(self) -> None:
        psycopg = _psycopg()
        try:
            self._db = psycopg.connect(self.config.dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise FumeEdgeError(f"--db: cannot connect to PostgreSQL ({str(exc).strip()})") from None
        migrate(self._db)
        self._db.execute("CREATE TEMP TABLE incoming_events (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")

    def _write_loop(self) -> None:
        delay = 0.2
        while True:
            batch = self._next_batch()
            if not batch:
                if self._stopping.is_set():
                    return
                continue
            while True:
                try:
                    if self._db is None or self._db.closed:
                        self._open_db()
                    self._write(batch)
                    break
                except Exception as exc:  # PostgreSQL down or restarting: keep the batch, retry with backoff
                    self.stats.db_failures += 1
                    if not self._db_down_logged:
                        self._db_down_logged = True
                        log.warning(
                            "collector: PostgreSQL write failed (%s); retrying, nothing is acknowledged "
                            "until it commits",
                            str(exc).strip().splitlines()[0] if str(exc) else exc,
                        )
                    if self._db is not None:
                        self._db.close()
                    self._db = None
                    if self._stopping.is_set():  # unacknowledged: the broker sends it to the next collector
                        log.warning("collector: stopping with %d messages not written", len(batch))
                        return
                    time.sleep(delay)
                    delay = min(delay * 2, self.config.retry_max_s)
            if self._db_down_logged:
                log.warning("collector: PostgreSQL writes work again")
                self._db_down_logged = False
            delay = 0.2

    def _next_batch(self) -> list[_Message]:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(batch) < self.config.batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[_Message]) -> None:
        parsed = [(message, records.parse(self.target.prefix, message.topic, message.payload)) for message in batch]
        events = [r for _, r in parsed if isinstance(r, records.EventRecord)]
        states = [r for _, r in parsed if isinstance(r, records.StateRecord)]
        live = [(m, r) for m, r in parsed if isinstance(r, records.AvailabilityRecord)]
        uplinks = [r for _, r in parsed if isinstance(r, records.UplinkRecord)]
        with self._db.transaction(), self._db.cursor() as cur:
            if events:
                # COPY into the session's staging table, then one upsert: a redelivered event id is skipped
                with cur.copy(f"COPY incoming_events ({EVENT_COLUMNS}) FROM STDIN") as copy:
                    for e in events:
                        copy.write_row(
                            (
                                e.event_id,
                                e.alert_id,
                                e.device_id,
                                e.station,
                                e.type,
                                e.state,
                                e.subject,
                                e.time,
                                e.payload,
                            )
                        )
                cur.execute(
                    f"INSERT INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM incoming_events "
                    "ON CONFLICT (event_id) DO NOTHING"
                )
                newest: dict[str, datetime] = {}  # one row per device and batch, not per event
                for e in events:
                    newest[e.device_id] = max(e.time, newest.get(e.device_id, e.time))
                cur.executemany(
                    "INSERT INTO devices (device_id, last_seen) VALUES (%s, %s) ON CONFLICT (device_id) "
                    "DO UPDATE SET last_seen = greatest(devices.last_seen, excluded.last_seen)",
                    sorted(newest.items()),
                )
            if states:
                cur.executemany(
                    "INSERT INTO station_state (device_id, station, time, state) VALUES (%s,%s,%s,%s) "
                    "ON CONFLICT (device_id, station) DO UPDATE SET time = excluded.time, state = excluded.state, "
                    "received = now() WHERE station_state.time IS NULL OR excluded.time >= station_state.time",
                    [(s.device_id, s.station, s.time, s.payload) for s in states],
                )
                cur.executemany(
                    "INSERT INTO devices (device_id, last_seen) VALUES (%s, coalesce(%s, now())) "
                    "ON CONFLICT (device_id) DO UPDATE SET last_seen = greatest(devices.last_seen, excluded.last_seen)",
                    [(s.device_id, s.time) for s in states],
                )
            for message, record in live:  # a retained replay says the state, not when it changed
                cur.execute(
                    "INSERT INTO devices (device_id, availability, availability_at) VALUES (%s, %s, now()) "
                    "ON CONFLICT (device_id) DO UPDATE SET availability = excluded.availability, availability_at = "
                    "CASE WHEN %s THEN coalesce(devices.availability_at, now()) ELSE now() END, last_seen = "
                    "CASE WHEN %s OR excluded.availability = 'offline' THEN devices.last_seen ELSE now() END",
                    (record.device_id, record.availability, message.retain, message.retain),
                )
            for uplink in uplinks:
                cur.execute(
                    "INSERT INTO devices (device_id, uplink, uplink_at) VALUES (%s, %s, now()) "
                    "ON CONFLICT (device_id) DO UPDATE SET uplink = excluded.uplink, uplink_at = now()",
                    (uplink.device_id, uplink.uplink),
                )
        committed = time.monotonic()
        self.stats.committed += len(batch)
        self.stats.ignored += sum(record is None for _, record in parsed)
        if self._keep_latencies:
            self.stats.latencies.extend(committed - message.received for message in batch)
        for message in batch:
            if message.qos > 0 and message.generation == self._generation:
                self._client.ack(message.mid, message.qos)
