"""Read-only queries of the fleet archive: alerts across devices, and one line per device."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fume_edge.alerts.event import AlertEvent


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    availability: str | None
    uplink: str | None  # the bridge of its local broker, when it has one: up / down
    last_seen: datetime
    model_sha: str | None
    open_alerts: tuple[str, ...]  # over all its stations, as its latest states say
    fps: float | None  # summed over its stations
    stations: tuple[str, ...]


def fleet_events(
    conn: Any,
    *,
    since: float | None = None,
    device: str | None = None,
    station: str | None = None,
    subject: str | None = None,
    alert_type: str | None = None,
    limit: int | None = None,
) -> list[AlertEvent]:
    """Events matching every filter given, oldest first (`limit`: the newest N)."""
    where: list[str] = ["true"]
    args: list[object] = []
    for column, value in (("device_id", device), ("station", station), ("subject", subject), ("type", alert_type)):
        if value is not None:
            where.append(f"{column} = %s")
            args.append(value)
    if since is not None:
        where.append("time >= %s")
        args.append(datetime.fromtimestamp(since, timezone.utc))
    sql = f"SELECT payload::text FROM events WHERE {' AND '.join(where)} ORDER BY time DESC, event_id"
    if limit is not None:
        sql += " LIMIT %s"
        args.append(limit)
    rows = conn.execute(sql, args).fetchall()
    return [AlertEvent.from_json(row[0]) for row in reversed(rows)]


def fleet_devices(conn: Any) -> list[DeviceRow]:
    rows = conn.execute(
        "SELECT d.device_id, d.availability, d.uplink, d.last_seen, coalesce(json_agg(s.state ORDER BY s.station) "
        "FILTER (WHERE s.station IS NOT NULL), '[]') FROM devices d LEFT JOIN station_state s USING (device_id) "
        "GROUP BY d.device_id ORDER BY d.device_id"
    ).fetchall()
    devices = []
    for device_id, availability, uplink, last_seen, states in rows:
        states = states if isinstance(states, list) else json.loads(states)
        fps = [s.get("fps") for s in states if isinstance(s.get("fps"), (int, float))]
        devices.append(
            DeviceRow(
                device_id=device_id,
                availability=availability,
                uplink=uplink,
                last_seen=last_seen,
                model_sha=next((s.get("model_sha") for s in states if s.get("model_sha")), None),
                open_alerts=tuple(sorted({a for s in states for a in s.get("open_alerts") or []})),
                fps=sum(fps) if fps else None,
                stations=tuple(s.get("station", "?") for s in states),
            )
        )
    return devices
