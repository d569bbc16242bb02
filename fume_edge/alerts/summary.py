"""The per-minute summary table: what the web page's trend draws, kept in the alert database.

The loop produces a prediction many times a second; a trend over hours or days needs far less. `MinuteSummary`
averages the smoothed pH probabilities and the gas areas of every prediction within one wall-clock minute (and
one subject: a subject change closes the row early, so every row belongs to exactly one animal or sample) and
hands back the finished row, which the sink worker writes like an alert event: off the inference thread.
Retention follows the alert store's limits (age and count), oldest rows first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

from fume_edge.alerts.event import DEFAULT_STATION
from fume_edge.alerts.store import AlertStore, StoreConfig


@dataclass(frozen=True)
class SummaryRow:
    """One minute (or the part of it with one subject) of one device: means over its predictions."""

    minute: float  # epoch seconds of the minute's start
    device_id: str
    subject: str | None
    frames: int
    degraded: int  # predictions made with one camera silent
    probs: dict[str, float] | None  # mean smoothed pH probabilities (None: no usable prediction)
    gas_areas: dict[str, float | None]  # mean gas pixel fraction per camera over its live frames
    station: str = DEFAULT_STATION  # the camera pair it summarises

    def to_dict(self) -> dict[str, Any]:
        return {
            "minute": self.minute,
            "device_id": self.device_id,
            "station": self.station,
            "subject": self.subject,
            "frames": self.frames,
            "degraded": self.degraded,
            "probs": self.probs,
            "gas_areas": self.gas_areas,
        }


@dataclass
class MinuteSummary:
    """Accumulates one station's predictions; `add` returns the row it closed (minute or subject changed), else None."""

    device_id: str
    station: str = DEFAULT_STATION
    _key: tuple[float, str | None] | None = None
    _frames: int = 0
    _degraded: int = 0
    _probs: dict[str, float] = field(default_factory=dict)
    _probs_n: int = 0
    _areas: dict[str, list[float]] = field(default_factory=dict)  # gas -> [sum, count]

    def add(
        self, wall: float, subject: str | None, probs: Mapping[str, float] | None, gas_areas: Mapping[str, float | None]
    ) -> SummaryRow | None:
        key = (wall - wall % 60.0, subject)
        closed = self.flush() if self._key is not None and key != self._key else None
        self._key = key
        self._frames += 1
        self._degraded += any(area is None for area in gas_areas.values())
        if probs is not None:
            self._probs_n += 1
            for name, p in probs.items():
                self._probs[name] = self._probs.get(name, 0.0) + float(p)
        for gas, area in gas_areas.items():
            sums = self._areas.setdefault(gas, [0.0, 0])
            if area is not None:
                sums[0] += float(area)
                sums[1] += 1
        return closed

    def flush(self) -> SummaryRow | None:
        """The row in progress (at shutdown, or when a new one starts); None when there is none."""
        if self._key is None or self._frames == 0:
            return None
        row = SummaryRow(
            minute=self._key[0],
            device_id=self.device_id,
            subject=self._key[1],
            frames=self._frames,
            degraded=self._degraded,
            probs={name: s / self._probs_n for name, s in self._probs.items()} if self._probs_n else None,
            gas_areas={gas: (s / n if n else None) for gas, (s, n) in self._areas.items()},
            station=self.station,
        )
        self._key, self._frames, self._degraded, self._probs_n = None, 0, 0, 0
        self._probs, self._areas = {}, {}
        return row


def record_summary(store: AlertStore, row: SummaryRow) -> None:
    store.execute(
        "INSERT INTO summary (minute, device_id, subject, frames, degraded, probs, gas_areas, station) "
        "VALUES (?,?,?,?,?,?,?,?)",
        (
            row.minute,
            row.device_id,
            row.subject,
            row.frames,
            row.degraded,
            None if row.probs is None else json.dumps(row.probs),
            json.dumps(row.gas_areas),
            row.station,
        ),
    )


def summary_rows(
    store: AlertStore, since: float, until: float | None = None, subject: str | None = None, station: str | None = None
) -> list[SummaryRow]:
    """Rows with a minute in [since, until), oldest first, optionally of one subject and of one station."""
    where: list[str] = ["minute >= ?"]
    args: list[object] = [since]
    if until is not None:
        where.append("minute < ?")
        args.append(until)
    if subject is not None:
        where.append("subject = ?")
        args.append(subject)
    if station is not None:
        where.append("station = ?")
        args.append(station)
    rows = store.query(f"SELECT * FROM summary WHERE {' AND '.join(where)} ORDER BY minute, id", args)
    return [
        SummaryRow(
            minute=r["minute"],
            device_id=r["device_id"],
            subject=r["subject"],
            frames=r["frames"],
            degraded=r["degraded"],
            probs=None if r["probs"] is None else json.loads(r["probs"]),
            gas_areas=json.loads(r["gas_areas"]),
            station=r["station"],
        )
        for r in rows
    ]


def prune_summary(store: AlertStore, config: StoreConfig, now: float) -> int:
    """Delete rows older than `max_age_days`, then the oldest beyond `max_events` rows. Returns how many."""
    deleted = store.execute("DELETE FROM summary WHERE minute < ?", (now - config.max_age_days * 86400,))
    return deleted + store.execute(
        "DELETE FROM summary WHERE id NOT IN (SELECT id FROM summary ORDER BY id DESC LIMIT ?)", (config.max_events,)
    )
