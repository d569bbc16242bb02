"""The MQTT sink: publishes the SQLite outbox at QoS 1 and marks rows sent only after the broker's PUBACK.

MQTT v5 is used where the broker speaks it (a 3.1.1-only broker is retried with 3.1.1): under v5 a PUBACK carries
a reason code, and a row is marked sent only when it says success; a refusal (an ACL denies the topic, a quota)
keeps the row unsent, is counted and logged once, and the row is tried again after `reconnect_max_s`. Under 3.1.1
a broker acknowledges even a publish its ACL dropped, so v5 is what makes "sent" mean delivered. The broker going
down and coming back is logged once each (also under `--quiet`), never once per reconnect attempt.

The outbox, not this process's memory, is what must reach the broker: events are committed before this module
sees them, so a broker outage, a network cut or a restart of fume-edge only delays them. Delivery is at least once
(a PUBACK lost in a disconnect means a resend), so subscribers de-duplicate by `event_id`.

Topics (fume_edge/alerts/topics.py): `<prefix>/<device>/<station>/alerts/<type>` (one event's JSON, not retained);
the availability topic `<prefix>/<device>/availability`: "online" (retained) on every connect, "offline" (retained) as
the last will when the connection dies and on a clean stop; `<prefix>/<device>/<station>/state` (retained, at most
once per `state_interval_s`, fume_edge/alerts/device_state.py); Home Assistant discovery configs when
`discovery: true` (fume_edge/alerts/discovery.py).

A message on `<prefix>/<device>/cmd/subject` sets the current subject of every station (animal or sample id; empty
clears it), one on `<prefix>/<device>/<station>/cmd/subject` that station's only (a station the device does not run
is ignored and counted), logged in the alert store like every other change. Retained command messages are never
obeyed on (re)connect: under
v5 the subscription asks the broker not to send them (retain handling 2) and a command published with the retain
flag is applied once, live, then cleared from the broker (an empty retained message); under 3.1.1 a message with
the retain flag is a stored one and is dropped. Commands pass a token bucket (`command_rate_per_s`,
`command_burst`; fume_edge/alerts/command_gate.py), and one equal to the current subject is skipped.

`<prefix>/<device>/cmd/model` (same retained-message rule and rate limit) names a bundle to install: an absolute
path on the device or an https URL. It is handed to `model_command` (set by the run: fume_edge/bundle/remote.py,
which installs on its own worker thread, never on paho's) and the steps come back on `<prefix>/<device>/model/
progress` (not retained). Without a `model_command` the message is logged and ignored.

paho reconnects with exponential backoff (`reconnect_min_s` doubling up to `reconnect_max_s`); a connection the
broker closes before accepting it (an ACL or a client id it refuses) is logged with the reason paho reports. paho
is an optional dependency (`pip install fume-edge[mqtt]`); it is imported on first use.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, model_validator

from fume_edge.alerts.command_gate import CommandGate
from fume_edge.alerts.device_state import StationState
from fume_edge.alerts.discovery import discovery_entities, discovery_wildcard, stale_config
from fume_edge.alerts.event import DEFAULT_STATION, AlertEvent
from fume_edge.alerts.secrets import mqtt_password
from fume_edge.alerts.store import AlertStore
from fume_edge.alerts.subject import check_subject, current_subject, set_subject
from fume_edge.alerts.topics import DeviceTopics, check_topic_id
from fume_edge.config import ConfigModel, Count, PositiveSeconds, Seconds
from fume_edge.errors import FumeEdgeError

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "fume-edge"
QOS = 1  # at least once: the only level whose PUBACK tells us a row may be marked sent
UNSUPPORTED_PROTOCOL = 132  # CONNACK reason code (3.1.1's return code 1 maps to it)


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    prefix: str


def parse_mqtt_url(url: str, where: str = "--mqtt") -> MqttTarget:
    """`mqtt://[user[:pass]@]host[:port]/prefix` or `mqtts://...` (TLS, default port 8883). Escape special
    characters in the user or password with %XX. An empty path means the prefix `fume-edge`."""
    hint = "expected mqtt://[user:pass@]host[:port]/prefix or mqtts://..."
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise FumeEdgeError(f"{where}: {url!r} is not an MQTT URL; {hint}")
    try:
        port = parts.port
    except ValueError:
        raise FumeEdgeError(f"{where}: {url!r} has an invalid port; {hint}") from None
    if not parts.hostname:
        raise FumeEdgeError(f"{where}: {url!r} names no broker host; {hint}")
    if "?" in url or "#" in url:
        raise FumeEdgeError(f"{where}: {url!r} has a query or fragment, which MQTT URLs do not take; {hint}")
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    if any(ch in prefix for ch in "+#") or "//" in prefix:
        raise FumeEdgeError(f"{where}: topic prefix {prefix!r} may not contain '+', '#' or empty levels")
    tls = parts.scheme == "mqtts"
    return MqttTarget(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
        prefix=prefix,
    )


class MqttConfig(ConfigModel):
    """`sinks.mqtt` in run.yaml; `url: null` disables MQTT."""

    url: str | None
    password_file: str | None  # the password on its first line, mode 0600 (or FUME_EDGE_MQTT_PASSWORD)
    ca: str | None  # CA bundle that signed the broker's certificate (mqtts); None: the system's CAs
    cert: str | None  # client certificate for brokers that require one (with `key`)
    key: str | None
    insecure: bool  # skip broker certificate and host name checks (test brokers only)
    credentials: str | None  # file holding `user:password` (${VAR}s expanded); overrides the url's user info
    keepalive_s: Annotated[int, Field(ge=1, le=65535)]  # MQTT's keep alive is a 16-bit number of seconds
    reconnect_min_s: Annotated[int, Field(ge=1, le=86400)]
    reconnect_max_s: Annotated[int, Field(ge=1, le=86400)]
    max_inflight: Annotated[int, Field(ge=1, le=65535)]
    drain_timeout_s: Seconds
    state_interval_s: PositiveSeconds  # retained per-station state at most this often
    discovery: bool  # Home Assistant MQTT discovery configs (retained)
    discovery_prefix: str
    command_rate_per_s: Annotated[float, Field(gt=0, le=1000)]  # commands admitted per second after the burst
    command_burst: Count

    @model_validator(mode="after")
    def _usable(self) -> MqttConfig:
        """The checks a broker would only fail later, as configuration errors (`FumeEdgeError` becomes the line)."""
        try:
            self._check()
        except FumeEdgeError as exc:
            raise ValueError(str(exc)) from None
        return self

    def _check(self) -> None:
        if self.url is not None:
            self.login("credentials")
            target = parse_mqtt_url(self.url, "url")
            if not target.tls and (self.ca or self.cert or self.key or self.insecure):
                raise FumeEdgeError(f"url: ca/cert/key/insecure need an mqtts:// url, got {self.url!r}")
            password = mqtt_password(target.password, self.password_file, "mqtt")
            if password is not None and target.username is None:
                raise FumeEdgeError("url: a password needs a user name; write mqtt://USER@host/prefix")
        if (self.cert is None) != (self.key is None):
            raise FumeEdgeError("key: cert and key go together; set both or neither")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise FumeEdgeError("reconnect_min_s: must be <= reconnect_max_s")
        check_topic_id(self.discovery_prefix, "discovery_prefix")

    def login(self, where: str = "sinks.mqtt.credentials") -> tuple[str, str | None] | None:
        """(user, password) from the credentials file; None without one or when it is empty."""
        return None if self.credentials is None else read_login(self.credentials, where)


def read_login(credentials: str, where: str) -> tuple[str, str | None] | None:
    """(user, password) from a file holding `user:password` (%XX-escaped, ${VARS} expanded); None when empty. The
    file stays the only place the secret is kept: it is read when needed, never copied into a config or database."""
    path = os.path.expandvars(credentials)
    try:
        with open(path, encoding="utf-8") as file:
            line = file.readline().strip()
    except OSError as exc:
        raise FumeEdgeError(
            f"{where}: cannot read {path} ({exc.strerror}); it holds user:password "
            "(under systemd: LoadCredential=mqtt:FILE in the unit)"
        ) from None
    if not line:
        return None
    user, sep, password = line.partition(":")
    return unquote(user), unquote(password) if sep else None


def _paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise FumeEdgeError("MQTT needs paho-mqtt: pip install 'fume-edge[mqtt]'") from None
    return mqtt


class MqttPublisher:
    """Drains the store's outbox to a broker from its own thread. `notify()` after committing new events;
    `stop()` drains for up to `drain_timeout_s`, publishes "offline" and disconnects."""

    def __init__(
        self,
        config: MqttConfig,
        store: AlertStore,
        device_id: str,
        *,
        model_sha: str | None = None,
        stations: tuple[str, ...] = (DEFAULT_STATION,),
        poll_s: float = 1.0,
    ) -> None:
        if config.url is None:
            raise ValueError("MqttPublisher needs a url")
        self.config = config
        self.target = parse_mqtt_url(config.url, "mqtt url")
        self.store = store
        self.device_id = check_topic_id(device_id, "device id (--device-id)")
        self.stations = tuple(check_topic_id(station, "station id") for station in stations)
        self.topics = DeviceTopics(self.target.prefix, device_id)
        self.status_topic = self.topics.availability
        self.subject_topic = self.topics.subject_command
        self.model_topic = self.topics.model_command
        self.model_command: Callable[[str], None] | None = None  # starts an install (must not block paho's thread)
        self.command_topics = (self.subject_topic, self.topics.station_subject_commands, self.model_topic)
        self.discovery = (
            discovery_entities(self.topics, self.stations, model_sha, config.discovery_prefix)
            if config.discovery
            else []
        )
        self._discovery_topics = frozenset(entity.topic for entity in self.discovery)
        self.commands = CommandGate(config.command_rate_per_s, config.command_burst)
        self._states: dict[str, StationState] = {}  # the latest state of each station (published on connect too)
        self.password = mqtt_password(self.target.password, config.password_file, "sinks.mqtt")
        self.sent = 0  # events acknowledged by the broker in this run
        self.refused = 0  # PUBACKs whose reason code was a failure (the rows stay unsent)
        self.connect_failures = 0  # connection attempts that failed in this run (logged once per outage, not each)
        self.unsent = store.unsent_count()  # refreshed by the publisher thread
        self._poll_s = poll_s
        self._cond = threading.Condition()
        self._connected = False
        self._stopping = False
        self._wake = True
        self._inflight: dict[int, int] = {}  # paho message id -> outbox event seq
        self._acked: set[int] = set()  # message ids whose PUBACK arrived with success
        self._refused: dict[int, str] = {}  # message ids whose PUBACK refused them -> the reason
        self._held: dict[int, float] = {}  # refused outbox seq -> monotonic time of its next try
        self._down_logged = False  # "broker unreachable" was logged and "reachable again" was not yet
        self._refusal_logged: set[str] = set()
        self._protocol = _paho().MQTTv5
        self._downgrade = False
        self._subjects: list[tuple[str, str | None]] = []  # (subject, station) commands received, not yet logged
        self._client = self._make_client()
        self._thread = threading.Thread(target=self._run, name="fume-edge-mqtt", daemon=True)

    def alert_topic(self, event: AlertEvent) -> str:
        return self.topics.alert(event.station, event.type)

    def publish_state(self, state: StationState) -> None:
        """Send a station's state (retained; QoS 1 so it survives a bridge); the latest is sent again on connect."""
        with self._cond:
            self._states[state.station] = state
            connected = self._connected
        if connected:
            self._client.publish(self.topics.state(state.station), state.to_json(), qos=QOS, retain=True)

    def publish_model_progress(self, line: str) -> None:
        """One step of a model install (QoS 1, not retained); dropped while the broker is away (the log has it)."""
        if self._connected:
            self._client.publish(self.topics.model_progress, line, qos=QOS)

    @property
    def connected(self) -> bool:
        return self._connected

    def _make_client(self) -> Any:
        mqtt = _paho()
        v5 = self._protocol == mqtt.MQTTv5
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"fume-edge-{self.device_id}",
            clean_session=None if v5 else True,
            protocol=self._protocol,
        )
        user, password = self.config.login() or (self.target.username, self.password)
        if user is not None:
            client.username_pw_set(user, password)
        if self.target.tls:
            try:
                client.tls_set(
                    ca_certs=self.config.ca,
                    certfile=self.config.cert,
                    keyfile=self.config.key,
                    cert_reqs=ssl.CERT_NONE if self.config.insecure else ssl.CERT_REQUIRED,
                )
            except (OSError, ssl.SSLError) as exc:
                raise FumeEdgeError(
                    f"mqtt tls: cannot load ca/cert/key ({exc}); check sinks.mqtt.ca/cert/key"
                ) from None
            client.tls_insecure_set(self.config.insecure)
        client.will_set(self.status_topic, "offline", qos=QOS, retain=True)
        client.reconnect_delay_set(self.config.reconnect_min_s, self.config.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _attempt_failed(self, why: str) -> None:
        """A connection attempt failed: counted every time (the status shows retries go on), logged once."""
        with self._cond:
            self.connect_failures += 1
        self._broker_down(why)

    def _broker_down(self, why: str) -> None:
        if not self._down_logged:
            self._down_logged = True
            log.warning(
                "MQTT broker %s:%s unreachable (%s); events wait in the outbox, retrying with backoff",
                self.target.host,
                self.target.port,
                why,
            )

    # paho callbacks run on paho's network thread: they only touch memory, never the database.
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            if reason_code == UNSUPPORTED_PROTOCOL and self._protocol == _paho().MQTTv5:
                with self._cond:  # a 3.1.1 broker: the publisher thread reconnects with 3.1.1
                    self._downgrade = True
                    self._cond.notify_all()
                return
            self._attempt_failed(f"it refused the connection: {reason_code}")
            return
        if self._down_logged:
            log.warning("MQTT broker %s:%s reachable again", self.target.host, self.target.port)
            self._down_logged = False
        client.publish(self.status_topic, "online", qos=QOS, retain=True)
        if self._protocol == _paho().MQTTv5:  # never the stored (retained) command; see a live one's retain flag
            from paho.mqtt.subscribeoptions import SubscribeOptions

            options = SubscribeOptions(
                qos=QOS, retainAsPublished=True, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND
            )
            client.subscribe([(topic, options) for topic in self.command_topics])
        else:
            client.subscribe([(topic, QOS) for topic in self.command_topics])
        for entity in self.discovery:
            client.publish(entity.topic, entity.payload, qos=QOS, retain=True)
        if self.config.discovery:  # the retained configs of stations no longer configured get emptied
            client.subscribe(discovery_wildcard(self.config.discovery_prefix, self.device_id), qos=QOS)
        with self._cond:
            self._connected = self._wake = True
            states = list(self._states.values())
            self._cond.notify_all()
        for state in states:
            client.publish(self.topics.state(state.station), state.to_json(), qos=QOS, retain=True)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._attempt_failed("no connection: unknown host, nothing listening, or TLS to a plain port")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        with self._cond:
            was = self._connected
            self._connected = False
            self._cond.notify_all()
        if self._stopping:
            return
        if was:
            self._broker_down(f"connection lost: {reason_code}")
        else:  # no CONNACK: the broker dropped us (a Will topic or client id it refuses, an ACL, a listener limit)
            self._attempt_failed(f"it closed the connection before accepting it ({reason_code}); see the broker's log")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        with self._cond:
            if reason_code.is_failure:
                self._refused[mid] = str(reason_code)
            else:
                self._acked.add(mid)
            self._cond.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        is_model = message.topic == self.model_topic
        station = None if is_model else self.topics.subject_station(message.topic, self.stations)
        if station is None and not is_model:  # a discovery config of this device, or a station it does not run
            if stale_config(message.topic, message.payload, self._discovery_topics):
                client.publish(message.topic, b"", qos=QOS, retain=True)
            elif message.topic.endswith("/cmd/subject"):
                self.commands.unknown_station()
            return
        if message.retain:
            # 3.1.1: a stored message replayed on subscribe. v5 (stored ones are not sent): a live command published
            # with the retain flag, applied once and cleared, unless it is empty (a clearing, maybe our own).
            if self._protocol != _paho().MQTTv5 or not message.payload:
                return
            client.publish(message.topic, b"", qos=QOS, retain=True)
        if not self.commands.admit():
            return
        if is_model:
            self._model_command(message.payload.decode("utf-8", "replace"))
            return
        with self._cond:
            self._subjects.append((message.payload.decode("utf-8", "replace"), station or None))
            self._wake = True
            self._cond.notify_all()

    def _model_command(self, text: str) -> None:
        handler = self.model_command
        if handler is None:
            log.warning(
                "MQTT model command ignored: this run installs no models (it runs a fixed model.path, or lacks the "
                "bundle extra: pip install 'fume-edge[bundle]')"
            )
            return
        handler(text)  # checks the text and starts a worker thread; the install never runs here

    def start(self) -> None:
        self._connect()
        self._thread.start()

    def _connect(self) -> None:
        clean = {"clean_start": True} if self._protocol == _paho().MQTTv5 else {}
        self._client.connect_async(self.target.host, self.target.port, self.config.keepalive_s, **clean)
        self._client.loop_start()  # connects, and reconnects with backoff, on paho's own thread

    def _use_v311(self) -> None:
        """The broker does not speak v5: start over with 3.1.1 (PUBACKs then carry no reason code)."""
        log.warning(
            "MQTT broker %s:%s does not support MQTT v5; using 3.1.1, whose PUBACKs cannot report an ACL refusal",
            self.target.host,
            self.target.port,
        )
        self._client.disconnect()
        self._client.loop_stop()
        self._protocol = _paho().MQTTv311
        self._client = self._make_client()
        self._connect()

    def notify(self) -> None:
        """New events were committed to the outbox."""
        with self._cond:
            self._wake = True
            self._cond.notify_all()

    def _ready(self) -> bool:
        return (
            self._stopping
            or self._downgrade
            or bool(self._acked or self._refused or self._subjects)
            or (self._connected and self._wake and len(self._inflight) < self.config.max_inflight)
        )

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._ready, timeout=self._poll_s)
                if self._stopping:
                    return
                downgrade, self._downgrade = self._downgrade, False
                # Resolve acks under the lock and only here: every id we publish is recorded before this runs
                # again, so an ack that raced ahead of its record is still matched; the rest (status messages)
                # are dropped.
                done = [self._inflight.pop(mid) for mid in self._acked if mid in self._inflight]
                self._acked.clear()
                self._hold_refused()
                room = self.config.max_inflight - len(self._inflight) if self._connected else 0
                exclude = frozenset(self._inflight.values()) | frozenset(self._held)
                self._wake = False
                if not downgrade:  # a downgrade starts over; the commands wait for the new connection
                    subjects, self._subjects = self._subjects, []
            if downgrade:
                self._use_v311()
                continue
            try:
                self._log_subjects(subjects)
                self._publish_step(done, room, exclude)
            except Exception:  # a disk error must not kill the thread; the rows stay unsent and are retried
                log.exception("MQTT outbox step failed; retrying")
                time.sleep(self._poll_s)

    def _log_subjects(self, commands: list[tuple[str, str | None]]) -> None:
        for text, station in commands:
            topic = self.subject_topic if station is None else self.topics.station_subject_command(station)
            try:
                subject = check_subject(text, topic)
            except FumeEdgeError as exc:
                log.warning("MQTT subject command ignored: %s", exc)
                continue
            if subject == current_subject(self.store, station):
                self.commands.skip_unchanged()
            else:
                set_subject(self.store, subject, "mqtt", station=station)

    def _hold_refused(self) -> None:
        """Refused publishes stay unsent and wait `reconnect_max_s` before another try (called under the lock)."""
        now = time.monotonic()
        for mid, reason in self._refused.items():
            seq = self._inflight.pop(mid, None)
            if seq is None:
                continue
            self.refused += 1
            self._held[seq] = now + self.config.reconnect_max_s
            if reason not in self._refusal_logged:
                self._refusal_logged.add(reason)
                log.error("MQTT broker refused an alert publish (%s); it stays in the outbox and is retried", reason)
        self._refused.clear()
        self._held = {seq: due for seq, due in self._held.items() if due > now}  # due ones: the poll retries

    def _publish_step(self, done: list[int], room: int, exclude: frozenset[int]) -> None:
        if done:
            self.store.mark_sent(done)
            self.sent += len(done)
        rows = self.store.unsent(room, exclude) if room > 0 else []
        for seq, event in rows:
            info = self._client.publish(self.alert_topic(event), event.to_json(), qos=QOS)
            with self._cond:
                self._inflight[info.mid] = seq
        if rows and len(rows) == room:
            self.notify()  # a full batch: there may be more
        self.unsent = self.store.unsent_count()

    def _idle(self) -> bool:
        with self._cond:
            waiting = bool(self._inflight or self._acked)
        return not waiting and self.store.unsent_count() == 0

    def stop(self) -> None:
        """Give in-flight and queued events up to `drain_timeout_s` to be acknowledged (while connected), then
        publish "offline" and disconnect. Whatever is still unsent stays in the outbox for the next run."""
        deadline = time.monotonic() + self.config.drain_timeout_s
        while self._connected and not self._idle() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        if self._connected:
            info = self._client.publish(self.status_topic, "offline", qos=QOS, retain=True)
            if info.rc == 0:  # the connection may have dropped since the check
                info.wait_for_publish(timeout=2.0)
        self._client.disconnect()
        self._client.loop_stop()
        self.unsent = self.store.unsent_count()
