"""A real Mosquitto broker for the MQTT tests, and a persistent-session subscriber that collects what arrives.

The broker runs from a temporary config on a free local port with persistence on, so stopping it (SIGTERM, which
saves its state) and starting it again on the same port behaves like a broker restart in the field: sessions and
queued QoS 1 messages survive. Tests skip with the reason when the `mosquitto` binary is absent (`.ci/run` installs
it with apt).
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest

MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """One mosquitto process; `stop()` and `start()` again keep the port, the persistence and the config."""

    def __init__(self, workdir: Path, extra_config: str = "allow_anonymous true\n") -> None:
        assert MOSQUITTO is not None
        self.binary = MOSQUITTO
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n{extra_config}"
            f"persistence true\npersistence_location {workdir}/\n"
            f"log_dest file {workdir}/mosquitto.log\nuser {getpass.getuser()}\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self._proc.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        """SIGTERM: mosquitto closes every connection and saves its persistence file."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        self._proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
    running = Broker(tmp_path / "broker")
    running.start()
    yield running
    running.stop()


class Subscriber:
    """A QoS 1 subscriber with a persistent session (clean_session False): what the broker queued for it while it
    or the broker was down arrives after reconnect. Collects alert event ids and availability messages."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        client_id: str = "test-subscriber",
        *,
        tls_ca: str | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.event_ids: list[str] = []
        self.statuses: list[tuple[str, bool]] = []  # (payload, retained)
        self._cond = threading.Condition()
        self._topics = topics
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=tls_ca)
        if auth is not None:
            self.client.username_pw_set(*auth)
        self.client.reconnect_delay_set(1, 1)
        self._subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host="127.0.0.1", port=port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the test subscriber could not subscribe")

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        client.subscribe([(topic, 1) for topic in self._topics])

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            if message.topic.endswith("/availability"):
                self.statuses.append((message.payload.decode(), bool(message.retain)))
            else:
                self.event_ids.append(json.loads(message.payload)["event_id"])
            self._cond.notify_all()

    def wait_for(self, condition: Callable[[Subscriber], bool], timeout: float = 20.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: condition(self), timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
