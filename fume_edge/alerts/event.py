"""The one alert schema every sink writes (SQLite, JSONL, MQTT, snapshot banners): `AlertEvent`.

An *alert* is a condition with a lifecycle (start, zero or more updates, end); each step is an *event*. `id` names
the alert and is shared by all its events, so a consumer can join them; `event_id` names the event itself and is
the de-duplication key for at-least-once sinks (MQTT QoS 1 may deliver an event twice). Times are UTC ISO-8601
wall-clock strings plus the monotonic frame time the pipeline measured, because wall clocks jump (NTP) and
monotonic clocks do not survive a reboot: each is useless alone for a device that runs for months.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal
from collections.abc import Callable, Mapping

from fume_edge.errors import FumeEdgeError

SCHEMA_VERSION = 1
DEFAULT_STATION = "default"  # the station of a one-camera-pair device, and of events written before stations

# Alert types. Risk types come from smoothed pH probabilities, the others from camera health and gas presence.
ACIDOSIS_RISK = "acidosis_risk"
TRANSITIONAL_RISK = "transitional_risk"
GAS_ABSENT = "gas_absent"
CAMERA_DEGRADED = "camera_degraded"
CAMERA_OFFLINE = "camera_offline"
CAMERAS_UNPAIRED = "cameras_unpaired"  # both cameras deliver but no frames pair (clocks apart, wrong FPS)
SINK_DEGRADED = "sink_degraded"  # the alert sink queue overflowed: events were lost (`detail.dropped`)
# Model updates (fume_edge/bundle/): one-off steps, stored as a start and an end at the same moment (`done`)
MODEL_INSTALLED = "model_installed"  # a bundle passed the gate and became models/current
MODEL_REJECTED = "model_rejected"  # a bundle was refused (signature, hashes, size) or failed the gate (`detail`)
MODEL_SWITCHED = "model_switched"  # the running loop swapped to the new model
MODEL_ROLLED_BACK = "model_rolled_back"  # back to the model before (`detail.reason`)
MODEL_TYPES: tuple[str, ...] = (MODEL_INSTALLED, MODEL_REJECTED, MODEL_SWITCHED, MODEL_ROLLED_BACK)
DONE = "done"  # the end reason of a one-off step: its start and end are the same moment
ALERT_TYPES: tuple[str, ...] = (
    ACIDOSIS_RISK,
    TRANSITIONAL_RISK,
    GAS_ABSENT,
    CAMERA_DEGRADED,
    CAMERA_OFFLINE,
    CAMERAS_UNPAIRED,
    SINK_DEGRADED,
    *MODEL_TYPES,
)

# Lifecycle states.
START, UPDATE, END = "start", "update", "end"
STATES: tuple[str, ...] = (START, UPDATE, END)
AlertState = Literal["start", "update", "end"]  # STATES as a type, for configuration fields

# Why an alert ended (`reason` of an `end` event).
CLEARED = "cleared"  # the condition fell below its off threshold for the minimum duration
RECOVERED = "recovered"  # the cameras it named are delivering frames again
SUPERSEDED = "superseded"  # camera health changed to another non-ok state, which opens its own alert
INTERRUPTED = "interrupted"  # the run stopped (shutdown, or found open after a crash) while it was active


def iso_utc(epoch_s: float) -> str:
    """Wall-clock seconds since the epoch as UTC ISO-8601 with milliseconds (`2026-11-25T15:09:27.123+00:00`)."""
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="milliseconds")


def parse_iso(text: str) -> float:
    """UTC ISO-8601 (as written by `iso_utc`, or any offset) back to epoch seconds; naive times are taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


# The sha of the model behind the predictions: fixed, or asked at each event (a model swapped in a running loop).
ModelSha = str | Callable[[], str | None] | None


def model_sha_now(model_sha: ModelSha) -> str | None:
    return model_sha() if callable(model_sha) else model_sha


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class AlertEvent:
    """One step of one alert, exactly as every sink stores and publishes it."""

    id: str  # the alert's uuid, shared by its start/update/end events
    event_id: str  # this event's uuid (de-duplication key)
    type: str  # one of ALERT_TYPES
    state: str  # start | update | end
    device_id: str
    camera_ids: tuple[str, ...]  # the cameras the alert is about (all cameras for pH and gas alerts)
    time: str  # this event, UTC ISO-8601
    mono: float  # this event, monotonic frame time (seconds)
    start_time: str
    start_mono: float
    end_time: str | None = None
    end_mono: float | None = None
    reason: str | None = None  # one of the end reasons above, on end events only
    probs: dict[str, float] | None = None  # smoothed pH probabilities by class name
    gas_areas: dict[str, float | None] = field(default_factory=dict)  # gas pixel fraction per camera (None: silent)
    frames: int = 0  # predictions seen while the alert was open
    frames_triggering: int = 0  # of those, frames whose value met the alert's on condition
    snapshot: str | None = None  # PNG path, when a snapshot was taken for this event
    model_sha: str | None = None  # sha256 of the model that produced the predictions
    subject: str | None = None  # the animal or sample id set when the event happened (None: none set)
    degraded: bool = False  # raised while a camera was out: the model saw one gas only
    cameras_in_use: tuple[str, ...] = ()  # the cameras delivering frames when this event was raised
    detail: dict[str, float | int | str] | None = None  # measured values of health alerts (offset_s, dropped)
    station: str = DEFAULT_STATION  # the camera pair (run.yaml `stations:`) the alert is about
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"alert state {self.state!r} is not one of {STATES}")
        if (self.state == END) != (self.reason is not None):
            raise ValueError("an end event needs a reason, and only end events have one")

    @property
    def epoch(self) -> float:
        """This event's wall time as epoch seconds (for indexing and retention)."""
        return parse_iso(self.time)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["camera_ids"] = list(self.camera_ids)
        data["cameras_in_use"] = list(self.cameras_in_use)
        return data

    def to_json(self) -> str:
        """Compact one-line JSON: the JSONL line, the MQTT payload and the SQLite payload column."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertEvent:
        values = dict(data)
        values["camera_ids"] = tuple(values.get("camera_ids", ()))
        values["cameras_in_use"] = tuple(values.get("cameras_in_use", ()))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> AlertEvent:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_row(cls, row: sqlite3.Row | Mapping[str, Any]) -> AlertEvent:
        """Rebuild from an `events` row of the alert store (its `payload` column holds `to_json()`)."""
        try:
            return cls.from_json(row["payload"])
        except (ValueError, TypeError, KeyError) as exc:
            raise FumeEdgeError(
                f"alert store: event row {row['seq']} is unreadable ({exc}); the database is damaged"
            ) from exc
