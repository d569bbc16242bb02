"""What the loop publishes for other threads: an immutable snapshot of every station, replaced as a whole.

The web page, the live panel, /metrics and the systemd watchdog run in their own threads. Reading the loop's own
objects from there raced the loop (a dict resized while it was iterated, a subject written under an event being
built); instead the loop builds a new `LoopSnapshot` after its ticks (at most `PUBLISH_S` apart, and at the end)
and swaps one reference. Readers take `pipeline.snapshot` once and read that: fresh containers built for it, which
nobody mutates (plain dicts, so they go into JSON as they are).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

from fume_edge.alerts.policy import ActiveAlert
from fume_edge.runtime.base import Prediction

PUBLISH_S = 0.02  # readers poll a few times a second; 50 snapshots a second is plenty and costs the loop little


@dataclass(frozen=True)
class StationSnapshot:
    """One station at publish time."""

    id: str
    stats: dict[str, Any]  # the station's counters and cameras, JSON-ready
    latest: Prediction | None  # its newest finite prediction
    smoothed: dict[str, float] | None  # smoothed pH probabilities by class name
    open_alerts: tuple[ActiveAlert, ...]
    subject: str | None


@dataclass(frozen=True)
class LoopSnapshot:
    """Every station, plus the device-wide totals (`stats`, as `Pipeline.stats()` returns them)."""

    stats: dict[str, Any]
    stations: Mapping[str, StationSnapshot]

    @property
    def first(self) -> StationSnapshot | None:
        """The first (on a one-station device, the only) station."""
        return next(iter(self.stations.values()), None)
