"""What one MQTT message from the fleet means for the archive: an event, a station's state, or availability.

Input from a broker is untrusted: a topic outside the fleet's layout, an id that is not topic-safe, a payload that
is not the JSON it should be, all become `None` (the collector counts and acknowledges them, so a bad message is
never redelivered forever), never an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fume_edge.alerts.event import ALERT_TYPES
from fume_edge.alerts.event import DEFAULT_STATION
from fume_edge.alerts.topics import TOPIC_ID

AVAILABILITY = ("online", "offline")


@dataclass(frozen=True)
class EventRecord:
    event_id: str
    alert_id: str
    device_id: str
    station: str
    type: str
    state: str
    subject: str | None
    time: datetime
    payload: str


@dataclass(frozen=True)
class StateRecord:
    device_id: str
    station: str
    time: datetime | None
    payload: str


@dataclass(frozen=True)
class AvailabilityRecord:
    device_id: str
    availability: str


@dataclass(frozen=True)
class UplinkRecord:
    device_id: str
    uplink: str  # "up" or "down"


Record = EventRecord | StateRecord | AvailabilityRecord | UplinkRecord
UPLINK = {"1": "up", "0": "down"}  # Mosquitto's bridge notifications


def subscriptions(prefix: str) -> list[str]:
    """The topic filters of everything the archive keeps."""
    return [f"{prefix}/+/+/alerts/+", f"{prefix}/+/availability", f"{prefix}/+/uplink", f"{prefix}/+/+/state"]


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _text(value: Any, limit: int = 200) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def parse(prefix: str, topic: str, payload: bytes) -> Record | None:
    """The record a message carries, or None for anything malformed."""
    if not topic.startswith(prefix + "/"):
        return None
    levels = topic[len(prefix) + 1 :].split("/")
    if not levels or not TOPIC_ID.match(levels[0]):
        return None
    device = levels[0]
    if levels[1:] == ["availability"]:
        text = payload.decode("utf-8", "replace")
        return AvailabilityRecord(device, text) if text in AVAILABILITY else None
    if levels[1:] == ["uplink"]:
        text = payload.decode("utf-8", "replace")
        return UplinkRecord(device, UPLINK[text]) if text in UPLINK else None
    if b"\\u0000" in payload:  # valid JSON that PostgreSQL's jsonb refuses
        return None
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if len(levels) == 4 and levels[2] == "alerts" and levels[3] in ALERT_TYPES:
        event_id, alert_id, state = (_text(data.get(key)) for key in ("event_id", "id", "state"))
        when = _time(data.get("time"))
        if event_id is None or alert_id is None or state is None or when is None:
            return None
        if data.get("type") != levels[3] or data.get("device_id") != device:
            return None
        station = data.get("station", DEFAULT_STATION)
        if station != levels[1] or not TOPIC_ID.match(station):  # the payload's station is the topic's
            return None
        return EventRecord(
            event_id,
            alert_id,
            device,
            station,
            levels[3],
            state,
            _text(data.get("subject")),
            when,
            payload.decode("utf-8"),
        )
    if len(levels) == 3 and levels[2] == "state" and TOPIC_ID.match(levels[1]):
        return StateRecord(device, levels[1], _time(data.get("time")), payload.decode("utf-8"))
    return None
