"""Prometheus metrics (`fume_edge_*`): read from the loop's published snapshot at scrape time, plus stage histograms.

Counters the pipeline already keeps (frames, garbage, drops, reconnects, inferences, sink counts) are not copied
into prometheus objects on every frame: a custom collector reads the snapshot the loop published
(`pipeline.snapshot`) when /metrics is scraped, so the values are exactly the ones the run summary prints. What
belongs to one station (inferences, FPS, cameras, open alerts) carries a `station` label; `inference_fps` without
one is the device's total, beside `station_inference_fps{station}`. Only the stage latency histograms need per-result
observations; `StageHistograms.update` takes them from the loop's summed stage times (a few microseconds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, StateSetMetricFamily
from prometheus_client.registry import Collector

from fume_edge.alerts.event import ALERT_TYPES
from fume_edge.pipeline.loop import LoopCounters
from fume_edge.pipeline.published import LoopSnapshot
from fume_edge.web.rates import DEVICE, StationRates

PREFIX = "fume_edge"
CAMERA_STATES = ("starting", "live", "silent", "reconnecting", "ended", "stopped")
DROP_REASONS = ("overwritten", "unmatched", "out_of_order")
# Stage times from 1 ms to 5 s: a Jetson at 30 FPS sits in the low buckets, a CPU fallback in the high ones.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_STAGES = (("prepare", "prepare_s"), ("infer", "infer_s"), ("alerts", "alerts_s"))


class StageHistograms:
    """`fume_edge_stage_seconds{stage}`, fed from the loop's running sums after each result."""

    def __init__(self, registry: CollectorRegistry, counters: Callable[[], LoopCounters]) -> None:
        # `_created` series would show up as extra gauge families in the text format; scrapers know the start.
        disable_created_metrics()
        self.histogram = Histogram(
            f"{PREFIX}_stage_seconds",
            "Time per inference in each pipeline stage",
            ["stage"],
            registry=registry,
            buckets=BUCKETS,
        )
        self._children = {stage: self.histogram.labels(stage) for stage in (*dict(_STAGES), "capture_to_result")}
        self._counters = counters
        self._last = LoopCounters()

    def update(self) -> None:
        """Observe what the last result added to each stage's sum (call right after each result)."""
        now, last = self._counters(), self._last
        for stage, total in _STAGES:
            self._children[stage].observe(getattr(now, total) - getattr(last, total))
        if now.latency_n != last.latency_n:  # capture-to-result is measured in live mode only
            self._children["capture_to_result"].observe(now.latency_s - last.latency_s)
        self._last = replace(now)


class PipelineCollector(Collector):
    """Everything else, from the published snapshot (`LoopSnapshot`), the page's encode count and `info`."""

    def __init__(
        self,
        snapshot: Callable[[], LoopSnapshot],
        rates: StationRates,
        encoded: Callable[[], int],
        info: Mapping[str, str],
    ) -> None:
        self._snapshot, self._rates, self._encoded, self._info = snapshot, rates, encoded, info

    def collect(self) -> Iterator[Any]:
        snapshot = self._snapshot()
        stats, fps = snapshot.stats, self._rates.fps(snapshot)
        yield GaugeMetricFamily(
            f"{PREFIX}_inference_fps", "Inference results per second, all stations (last seconds)", value=fps[DEVICE]
        )
        per_station: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "station_inference_fps": GaugeMetricFamily(
                f"{PREFIX}_station_inference_fps",
                "Inference results per second of the station (last seconds)",
                labels=["station"],
            ),
            "inferences": CounterMetricFamily(f"{PREFIX}_inferences", "Inferences run", labels=["station"]),
            "degraded": CounterMetricFamily(
                f"{PREFIX}_degraded_inferences", "Inferences with one camera silent", labels=["station"]
            ),
            "stale": CounterMetricFamily(
                f"{PREFIX}_stale_pairs", "Ready pairs skipped for a newer one (live mode)", labels=["station"]
            ),
        }
        open_by_type = GaugeMetricFamily(f"{PREFIX}_open_alerts", "Open alerts by type", labels=["station", "type"])
        for sid, station in snapshot.stations.items():
            per_station["station_inference_fps"].add_metric([sid], fps[sid])
            for key in ("inferences", "degraded", "stale"):
                per_station[key].add_metric([sid], station.stats[key])
            opened = [alert.type for alert in station.open_alerts]
            for alert_type in ALERT_TYPES:
                open_by_type.add_metric([sid, alert_type], opened.count(alert_type))
        yield from per_station.values()
        yield from self._cameras({sid: s.stats["cameras"] for sid, s in snapshot.stations.items()})
        yield open_by_type
        sinks = stats["sinks"]
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_backlog", "Alert events waiting for the MQTT broker's ack", value=sinks["mqtt_unsent"]
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_sink_queue", "Items waiting for the alert sink thread", value=sinks["queued"]
        )
        yield CounterMetricFamily(f"{PREFIX}_sink_errors", "Alert sink write failures", value=sinks["errors"])
        yield CounterMetricFamily(
            f"{PREFIX}_alert_events_written", "Alert events committed to SQLite", value=sinks["written"]
        )
        yield CounterMetricFamily(
            f"{PREFIX}_alert_events_dropped", "Alert events lost to a full sink queue", value=sinks["dropped"]
        )
        yield CounterMetricFamily(
            f"{PREFIX}_web_frames_encoded", "Camera JPEGs encoded for page viewers", value=self._encoded()
        )
        yield InfoMetricFamily(f"{PREFIX}_model", "The model and backend this run uses", value=dict(self._info))

    @staticmethod
    def _cameras(stations: dict[str, dict[str, dict[str, Any]]]) -> Iterator[Any]:
        """Per station and camera (gas): frames, garbage, reconnects, drops by reason, state."""
        families = {
            key: CounterMetricFamily(f"{PREFIX}_camera_{key}", help_text, labels=["station", "camera"])
            for key, help_text in (
                ("frames", "Frames delivered by the camera"),
                ("garbage", "Unusable frames skipped"),
                ("reconnects", "Reconnects after the camera was lost"),
            )
        }
        drops = CounterMetricFamily(
            f"{PREFIX}_camera_dropped", "Frames dropped, by reason", labels=["station", "camera", "reason"]
        )
        state = StateSetMetricFamily(f"{PREFIX}_camera_state", "Camera state", labels=["station", "camera"])
        for station, cameras in stations.items():
            for camera, values in cameras.items():
                for key, family in families.items():
                    family.add_metric([station, camera], values[key])
                for reason in DROP_REASONS:
                    drops.add_metric([station, camera, reason], values[reason])
                state.add_metric([station, camera], {name: values["state"] == name for name in CAMERA_STATES})
        yield from families.values()
        yield drops
        yield state
