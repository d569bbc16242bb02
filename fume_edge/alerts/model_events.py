"""Model-update steps (fume_edge/bundle/store.py `event()` records) as alert events, so they reach SQLite, MQTT and
the page through the same sinks as every alert and are never lost with the JSONL log alone.

Each step is a one-off: one alert whose start and end are the same moment (end reason `done`), as `sink_degraded`
is stored. Only the steps an operator acts on become alerts; verification, build and gate passes, pruning and the
end of a health window stay lines in `models/events.jsonl` and the log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fume_edge.alerts.event import (
    DONE,
    END,
    MODEL_INSTALLED,
    MODEL_REJECTED,
    MODEL_ROLLED_BACK,
    MODEL_SWITCHED,
    START,
    AlertEvent,
    iso_utc,
    new_id,
    parse_iso,
)

# store event name -> alert type
ALERT_OF_STEP = {
    "model_switched": MODEL_INSTALLED,  # `bundle install` made it models/current
    "model_refused": MODEL_REJECTED,  # signature, hash, size or member refused
    "model_rejected": MODEL_REJECTED,  # the gate failed it
    "model_swapped": MODEL_SWITCHED,  # the running loop swapped to it
    "model_rolled_back": MODEL_ROLLED_BACK,
}


def _scalar(value: Any) -> float | int | str:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | str):
        return value
    return json.dumps(value, default=str, separators=(",", ":"))


def _detail(record: Mapping[str, Any]) -> dict[str, float | int | str]:
    """The record's fields as flat scalars: gate figures become `figure.<name>`, the
    gate's failures one line, other lists and mappings JSON."""
    detail: dict[str, float | int | str] = {"step": str(record["event"])}
    for key, value in record.items():
        if key in ("time", "event") or value is None:
            continue
        if key == "figures" and isinstance(value, Mapping):
            detail.update({f"figure.{name}": _scalar(v) for name, v in value.items() if v is not None})
        elif key == "failures" and isinstance(value, list):
            detail[key] = "; ".join(map(str, value))
        else:
            detail[key] = _scalar(value)
    return detail


def model_alerts(record: Mapping[str, Any], device_id: str, model_sha: str | None, mono: float) -> list[AlertEvent]:
    """The start and end events of one model-update step, or [] for a step that is only logged."""
    alert_type = ALERT_OF_STEP.get(str(record.get("event")))
    if alert_type is None:
        return []
    when = iso_utc(parse_iso(record["time"])) if "time" in record else iso_utc(0.0)
    sha = record.get("model_sha") if isinstance(record.get("model_sha"), str) else model_sha
    start = AlertEvent(
        id=new_id(),
        event_id=new_id(),
        type=alert_type,
        state=START,
        device_id=device_id,
        camera_ids=(),
        time=when,
        mono=mono,
        start_time=when,
        start_mono=mono,
        model_sha=sha,
        detail=_detail(record),
    )
    return [start, replace(start, event_id=new_id(), state=END, reason=DONE, end_time=when, end_mono=mono)]
