"""`fume-edge alerts --csv`: the events as one spreadsheet table, a row per event and a column per value.

Nested fields are spread out (a column per pH class and per camera's gas area), so a spreadsheet sorts and plots
them without parsing; the health alerts' `detail` stays one JSON cell.
"""

from __future__ import annotations

import csv
import json
from typing import TextIO

from fume_edge.alerts.event import AlertEvent

LEADING = ("time", "type", "state", "alert_id", "event_id", "device_id", "subject", "camera_ids", "reason")
TRAILING = (
    "frames",
    "frames_triggering",
    "degraded",
    "cameras_in_use",
    "snapshot",
    "start_time",
    "end_time",
    "model_sha",
    "detail",
    "schema_version",
)


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def write_csv(events: list[AlertEvent], out: TextIO) -> None:
    """Write a header and one row per event; `p_CLASS` and `gas_area_CAMERA` columns as the events carry them."""
    classes = _unique([name for e in events for name in (e.probs or {})])
    cameras = _unique([camera for e in events for camera in e.gas_areas])
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*LEADING, *(f"p_{name}" for name in classes), *(f"gas_area_{c}" for c in cameras), *TRAILING])
    for e in events:
        probs, areas = e.probs or {}, e.gas_areas
        writer.writerow(
            [
                e.time,
                e.type,
                e.state,
                e.id,
                e.event_id,
                e.device_id,
                e.subject or "",
                " ".join(e.camera_ids),
                e.reason or "",
                *(_number(probs.get(name)) for name in classes),
                *(_number(areas.get(c)) for c in cameras),
                e.frames,
                e.frames_triggering,
                int(e.degraded),
                " ".join(e.cameras_in_use),
                e.snapshot or "",
                e.start_time,
                e.end_time or "",
                e.model_sha or "",
                json.dumps(e.detail) if e.detail else "",
                e.schema_version,
            ]
        )


def _number(value: float | None) -> str:
    """A value as its shortest exact text; empty where there is none (a silent camera, a class not reported)."""
    return "" if value is None else repr(value)
