"""What the JSON API answers: the live status, pages of alert history, the trend, and health.

Live values come from the pipeline (counters, camera states, smoothed probabilities and open alerts of the alert
policy) and the `LiveFeed`; history and trend from the alert database through the server's own read connection
(WAL: readers never block the sink thread's writes). Without a pipeline (`fume-edge serve alerts.db`) the same
answers come from the stored database alone: `live` is false, and the trend ends at its newest minute.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fume_edge.alerts.event import AlertEvent, iso_utc
from fume_edge.alerts.store import AlertStore
from fume_edge.alerts.subject import current_subject, subject_history
from fume_edge.alerts.summary import summary_rows
from fume_edge.labels import GASES, PH_CLASS_NAMES
from fume_edge.pipeline.loop import Pipeline
from fume_edge.web.feed import LiveFeed

FIT_LOOKBACK_H = 24 * 7  # a trend without `hours` fits the rows of this window
FIT_MIN_S = 600.0  # ... and spans at least this much, so a few minutes of data do not fill the width


@dataclass
class WebSources:
    """Everything the server reads; the store is its own connection to the alert database. `pipeline` and `feed`
    are None when serving a stored database without a run."""

    pipeline: Pipeline | None
    feed: LiveFeed | None
    store: AlertStore
    snapshot_dir: Path | None
    info: dict[str, str]  # device_id, model, model_sha256, backend, version
    stale_after_s: float
    access: dict[str, Any] = field(default_factory=dict)  # what the page needs to explain a missing token
    _errors: tuple[int, float] = field(default=(0, 0.0))  # sink error count and when it last grew
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def live(self) -> bool:
        return self.pipeline is not None

    def stats(self) -> dict[str, Any]:
        assert self.pipeline is not None
        return self.pipeline.snapshot.stats  # published by the loop thread, never changed after

    def open_alerts(self) -> list[dict[str, Any]]:
        if self.pipeline is None:
            return []  # a stored database: what was open ended with its run
        station = self.pipeline.snapshot.first
        alerts = () if station is None else station.open_alerts
        return [{"type": a.type, "id": a.id, "cameras": list(a.camera_ids), "since": a.start_time} for a in alerts]

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
    return {**src.info, "live": False, "time": iso_utc(time.time()), "subject": current_subject(src.store),
            "subject_since": iso_utc(changes[0].epoch) if changes else None, "open_alerts": [],
            "access": src.access, "health": health(src)[1]}


def status(src: WebSources) -> dict[str, Any]:
    if src.pipeline is None or src.feed is None:
        return archive_status(src)
    stats, feed, pipeline = src.stats(), src.feed, src.pipeline
    latest = feed.latest
    station = pipeline.snapshot.first
    smoothed = None if station is None else station.smoothed
    frame_probs = None if latest is None or latest.prediction.ph_probs is None else latest.prediction.ph_probs
    areas = None if latest is None else {
        gas: (None if image is None else latest.prediction.gas_area.get(gas))
        for gas, image in zip(pipeline.cameras, latest.images, strict=True)}
    changes = subject_history(src.store, 1)
    return {
        **src.info, "live": True, "access": src.access,
        "time": iso_utc(time.time()), "elapsed_s": stats["elapsed_s"], "mode": stats["mode"],
        "subject": None if station is None else station.subject,
        "subject_since": iso_utc(changes[0].epoch) if changes else None,
        "fps": feed.fps(), "inferences": stats["inferences"], "result_seq": None if latest is None else latest.seq,
        "stage_ms": {k: stats[f"{k}_ms"] for k in ("prepare", "infer", "alerts")}, "latency_ms": stats["latency_ms"],
        "cameras": {cam: {k: v for k, v in values.items() if k != "last_garbage"}
                    for cam, values in stats["cameras"].items()},
        "ph": {"classes": list(PH_CLASS_NAMES), "smoothed": smoothed,
               "class": None if smoothed is None else max(smoothed, key=lambda name: smoothed[name]),
               "frame": None if frame_probs is None else {
                   n: float(p) for n, p in zip(PH_CLASS_NAMES, frame_probs, strict=True)}},
        "gas_areas": areas, "open_alerts": src.open_alerts(), "sinks": stats["sinks"],
        "frame_interval_s": feed.frame_interval_s, "health": health(src, stats)[1],
    }


def alerts_page(src: WebSources, *, alert_type: str | None, since: float | None, until: float | None,
                subject: str | None, page: int, per_page: int) -> dict[str, Any]:
    """One page of history, newest first (page 0 is the newest), plus the open alerts."""
    events = src.store.events(alert_type=alert_type, since=since, until=until, subject=subject,
                              limit=per_page + 1, offset=page * per_page)
    newest_first = list(reversed(events))
    return {"page": page, "per_page": per_page, "has_more": len(newest_first) > per_page,
            "events": [src.event_dict(e) for e in newest_first[:per_page]], "open": src.open_alerts()}


def _trend_end(src: WebSources) -> float:
    """Now for a live run; the end of the newest stored minute for a stored database."""
    if src.live:
        return time.time()
    newest = src.store.query("SELECT MAX(minute) AS minute FROM summary")[0]["minute"]
    return time.time() if newest is None else float(newest) + 60.0


def trend(src: WebSources, hours: float | None, subject: str | None) -> dict[str, Any]:
    """Minute rows of the `hours` before the end; without `hours`, from the first row of the last week (a
    window that fits the data present, at least `FIT_MIN_S` wide)."""
    end = _trend_end(src)
    since = end - (hours or FIT_LOOKBACK_H) * 3600
    rows = summary_rows(src.store, since - since % 60, subject=subject)
    if hours is None:
        since = min(rows[0].minute, end - FIT_MIN_S) if rows else end - FIT_MIN_S
    cameras = list(src.pipeline.cameras) if src.pipeline is not None else list(GASES)
    return {"since": iso_utc(since), "until": iso_utc(end), "classes": list(PH_CLASS_NAMES), "cameras": cameras,
            "rows": [{**row.to_dict(), "time": iso_utc(row.minute)} for row in rows]}


def health(src: WebSources, stats: dict[str, Any] | None = None) -> tuple[bool, dict[str, Any]]:
    """Healthy while results flow (one within `stale_after_s`) and no sink write failed within it; a stored
    database served alone is always ok (nothing there can stall)."""
    if src.feed is None:
        return True, {"status": "ok", "problems": [], "mode": "archive"}
    now = time.monotonic()
    latest = src.feed.latest
    errors = (stats or src.stats())["sinks"]["errors"]
    last_error = src.last_sink_error(errors, now)
    age = None if latest is None else now - latest.at
    problems = []
    if age is None or age > src.stale_after_s:
        problems.append("no inference results" + ("" if age is None else f" for {age:.0f} s"))
    if last_error is not None and now - last_error <= src.stale_after_s:
        problems.append("an alert sink failed to write")
    return not problems, {"status": "ok" if not problems else "unhealthy", "problems": problems,
                          "last_result_age_s": age, "sink_errors": errors}
