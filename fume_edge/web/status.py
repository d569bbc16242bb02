"""What the JSON API answers: the live status, pages of alert history, the trend, and health.

Live values come from the snapshot the loop published (`pipeline.snapshot`: per station its counters, camera
states, smoothed probabilities, open alerts and subject; readers never touch the loop's own objects) and the
`LiveFeeds` (each station's camera images); `status` answers every station in brief (`stations`, the page's
grid) and one in detail (`?station=ID`, default the first). History and trend come from the alert database
through the server's own read connection (WAL: readers never block the sink thread's writes). Without a pipeline
(`fume-edge serve alerts.db`) the same answers come from the stored database alone: `live` is false, and the trend
ends at its newest minute.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fume_edge.alerts.event import AlertEvent, iso_utc
from fume_edge.alerts.store import AlertStore
from fume_edge.alerts.subject import current_subject, subject_history
from fume_edge.alerts.summary import summary_rows
from fume_edge.labels import GASES, PH_CLASS_NAMES
from fume_edge.pipeline.loop import Pipeline
from fume_edge.pipeline.published import StationSnapshot
from fume_edge.runtime.base import Prediction
from fume_edge.web.feed import LiveFeeds
from fume_edge.web.rates import DEVICE, StationRates

if TYPE_CHECKING:
    from fume_edge.bundle.remote import RemoteInstaller

FIT_LOOKBACK_H = 24 * 7  # a trend without `hours` fits the rows of this window
FIT_MIN_S = 600.0  # ... and spans at least this much, so a few minutes of data do not fill the width


@dataclass
class WebSources:
    """Everything the server reads; the store is its own connection to the alert database. `pipeline` and `feeds`
    are None when serving a stored database without a run."""

    pipeline: Pipeline | None
    feeds: LiveFeeds | None
    store: AlertStore
    snapshot_dir: Path | None
    info: Mapping[str, str]  # device_id, model, model_sha256, backend, version
    stale_after_s: float
    access: dict[str, Any] = field(default_factory=dict)  # what the page needs to explain a missing token
    installer: RemoteInstaller | None = None  # model installs from the page (a run that follows the model store)
    rates: StationRates = field(default_factory=StationRates)  # per-station FPS, shared with /metrics
    _errors: tuple[int, float] = field(default=(0, 0.0))  # sink error count and when it last grew
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def live(self) -> bool:
        return self.pipeline is not None

    def stats(self) -> dict[str, Any]:
        assert self.pipeline is not None
        return self.pipeline.snapshot.stats  # published by the loop thread, never changed after

    def station(self, station_id: str | None) -> StationSnapshot | None:
        """The published station `station_id` (None: the first); None when the run has no such station."""
        if self.pipeline is None:
            return None
        stations = self.pipeline.snapshot.stations
        return self.pipeline.snapshot.first if station_id is None else stations.get(station_id)

    def open_alerts(self, station_id: str | None = None) -> list[dict[str, Any]]:
        """The open alerts of one station (None: the first), or of every station (`station_id="*"`)."""
        if self.pipeline is None:
            return []  # a stored database: what was open ended with its run
        stations = (
            self.pipeline.snapshot.stations.values()
            if station_id == "*"
            else [s for s in (self.station(station_id),) if s is not None]
        )
        return [_open_alert(s.id, a) for s in stations for a in s.open_alerts]

    def snapshot_url(self, path: str | None) -> str | None:
        """The URL of a snapshot file, only when it lies directly in the snapshot folder (for a stored database,
        copied from a device: when a file of its name is in the folder given)."""
        if path is None or self.snapshot_dir is None:
            return None
        name = Path(path).name
        if Path(path).parent != self.snapshot_dir and (self.live or not (self.snapshot_dir / name).is_file()):
            return None
        return f"/snapshots/{name}"

    def last_sink_error(self, errors: int, now: float) -> float | None:
        """When the sink error count last grew, given its value `errors` seen at `now` (None: no error yet)."""
        with self._lock:
            if errors != self._errors[0]:
                self._errors = (errors, now)
            return self._errors[1] if self._errors[0] else None

    def event_dict(self, event: AlertEvent) -> dict[str, Any]:
        return {**event.to_dict(), "snapshot_url": self.snapshot_url(event.snapshot)}


def archive_status(src: WebSources) -> dict[str, Any]:
    """What a stored database can say: who it came from, its last subject, and that nothing is live."""
    changes = subject_history(src.store, 1)
    return {
        **src.info,
        "live": False,
        "time": iso_utc(time.time()),
        "subject": current_subject(src.store),
        "subject_since": iso_utc(changes[0].epoch) if changes else None,
        "open_alerts": [],
        "access": src.access,
        "health": health(src)[1],
    }


def _open_alert(station: str, alert: Any) -> dict[str, Any]:
    return {
        "station": station,
        "type": alert.type,
        "id": alert.id,
        "cameras": list(alert.camera_ids),
        "since": alert.start_time,
    }


def _ph_class(smoothed: dict[str, float] | None) -> str | None:
    return None if smoothed is None else max(smoothed, key=lambda name: smoothed[name])


def _gas_areas(prediction: Prediction | None, cameras: tuple[str, ...], silent: list[str]) -> dict[str, Any] | None:
    """Each camera's gas area fraction in the newest result; None for a camera that was silent."""
    if prediction is None:
        return None
    return {gas: (None if gas in silent else prediction.gas_area.get(gas)) for gas in cameras}


def station_grid(src: WebSources, fps: dict[str, float]) -> list[dict[str, Any]]:
    """Every station in brief, in run.yaml order: what the page's grid shows."""
    assert src.pipeline is not None
    return [
        {
            "id": sid,
            "subject": s.subject,
            "ph_class": _ph_class(s.smoothed),
            "fps": fps[sid],
            "inferences": s.stats["inferences"],
            "degraded": s.stats["degraded"],
            "cameras": {cam: values["state"] for cam, values in s.stats["cameras"].items()},
            "open_alerts": [_open_alert(sid, a) for a in s.open_alerts],
        }
        for sid, s in src.pipeline.snapshot.stations.items()
    ]


def status(src: WebSources, station_id: str | None = None) -> dict[str, Any]:
    """The device and every station in brief, and station `station_id` (None: the first) in detail, with the
    `result_seq` of its camera images (`/api/frame/STATION/CAMERA.jpg`)."""
    if src.pipeline is None or src.feeds is None:
        return archive_status(src)
    stats, feeds, pipeline = src.stats(), src.feeds, src.pipeline
    station = src.station(station_id)
    if station is None:
        raise LookupError(f"no station {station_id!r} in this run; see `stations` in /api/status")
    fps = src.rates.fps(pipeline.snapshot)
    latest, own = feeds[station.id].latest, station.stats
    prediction = station.latest
    frame_probs = None if prediction is None or prediction.ph_probs is None else prediction.ph_probs
    changes = subject_history(src.store, 1)
    return {
        **src.info,
        "live": True,
        "access": src.access,
        "station": station.id,
        "stations": station_grid(src, fps),
        "time": iso_utc(time.time()),
        "elapsed_s": stats["elapsed_s"],
        "mode": stats["mode"],
        "subject": station.subject,
        "subject_since": iso_utc(changes[0].epoch) if changes else None,
        "fps": fps[station.id],
        "device_fps": fps[DEVICE],
        "inferences": own["inferences"],
        "result_seq": None if latest is None else latest.seq,
        "stage_ms": {k: stats[f"{k}_ms"] for k in ("prepare", "infer", "alerts")},
        "latency_ms": own["latency_ms"],
        "cameras": {
            cam: {k: v for k, v in values.items() if k != "last_garbage"} for cam, values in own["cameras"].items()
        },
        "ph": {
            "classes": list(PH_CLASS_NAMES),
            "smoothed": station.smoothed,
            "class": _ph_class(station.smoothed),
            "frame": None
            if frame_probs is None
            else {n: float(p) for n, p in zip(PH_CLASS_NAMES, frame_probs, strict=True)},
        },
        "gas_areas": _gas_areas(prediction, pipeline.cameras, own["silent"]),
        "open_alerts": [_open_alert(station.id, a) for a in station.open_alerts],
        "sinks": stats["sinks"],
        "frame_interval_s": feeds.frame_interval_s,
        "health": health(src, stats)[1],
    }


def alerts_page(
    src: WebSources,
    *,
    alert_type: str | None,
    since: float | None,
    until: float | None,
    subject: str | None,
    page: int,
    per_page: int,
    station: str | None = None,
) -> dict[str, Any]:
    """One page of history (of every station, or of `station`), newest first (page 0 is the newest), plus the open
    alerts of every station."""
    events = src.store.events(
        alert_type=alert_type,
        since=since,
        until=until,
        subject=subject,
        limit=per_page + 1,
        offset=page * per_page,
        station=station,
    )
    newest_first = list(reversed(events))
    return {
        "page": page,
        "per_page": per_page,
        "has_more": len(newest_first) > per_page,
        "events": [src.event_dict(e) for e in newest_first[:per_page]],
        "open": src.open_alerts("*"),
    }


def _trend_end(src: WebSources) -> float:
    """Now for a live run; the end of the newest stored minute for a stored database."""
    if src.live:
        return time.time()
    newest = src.store.query("SELECT MAX(minute) AS minute FROM summary")[0]["minute"]
    return time.time() if newest is None else float(newest) + 60.0


def trend(src: WebSources, hours: float | None, subject: str | None, station: str | None = None) -> dict[str, Any]:
    """Minute rows (of every station, or of `station`) of the `hours` before the end; without `hours`, from the
    first row of the last week (a window that fits the data present, at least `FIT_MIN_S` wide)."""
    end = _trend_end(src)
    since = end - (hours or FIT_LOOKBACK_H) * 3600
    rows = summary_rows(src.store, since - since % 60, subject=subject, station=station)
    if hours is None:
        since = min(rows[0].minute, end - FIT_MIN_S) if rows else end - FIT_MIN_S
    cameras = list(src.pipeline.cameras) if src.pipeline is not None else list(GASES)
    return {
        "since": iso_utc(since),
        "until": iso_utc(end),
        "classes": list(PH_CLASS_NAMES),
        "cameras": cameras,
        "rows": [{**row.to_dict(), "time": iso_utc(row.minute)} for row in rows],
    }


def health(src: WebSources, stats: dict[str, Any] | None = None) -> tuple[bool, dict[str, Any]]:
    """Healthy while results flow (one of any station within `stale_after_s`) and no sink write failed within it;
    a stored database served alone is always ok (nothing there can stall)."""
    if src.feeds is None:
        return True, {"status": "ok", "problems": [], "mode": "archive"}
    now = time.monotonic()
    newest = src.feeds.newest_at()
    errors = (stats or src.stats())["sinks"]["errors"]
    last_error = src.last_sink_error(errors, now)
    age = None if newest is None else now - newest
    problems = []
    if age is None or age > src.stale_after_s:
        problems.append("no inference results" + ("" if age is None else f" for {age:.0f} s"))
    if last_error is not None and now - last_error <= src.stale_after_s:
        problems.append("an alert sink failed to write")
    return not problems, {
        "status": "ok" if not problems else "unhealthy",
        "problems": problems,
        "last_result_age_s": age,
        "sink_errors": errors,
    }
