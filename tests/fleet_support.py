"""Helpers for the fleet tests: a subscriber that keeps every message by topic, and a polling wait."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt


class Recorder:
    """Subscribes to `topics` (QoS 1) and keeps every message as (topic, payload, retained), in arrival order."""

    def __init__(self, port: int, topics: list[str], client_id: str, *, auth: tuple[str, str] | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if auth is not None:
            self.client.username_pw_set(*auth)
        self.client.on_connect = lambda c, *a: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the recorder could not subscribe")

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def latest(self) -> dict[str, bytes]:
        """The last payload per topic."""
        with self._lock:
            return {topic: payload for topic, payload, _ in self.messages}

    def payloads(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
