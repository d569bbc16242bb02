"""/metrics of a real `fume-edge run --http`, parsed by prometheus_client, against the run's own summary."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from fume_edge.alerts.event import ALERT_TYPES
from fume_edge.hashing import sha256_file
from fume_edge.web.metrics import CAMERA_STATES, DROP_REASONS
from waiting import eventually
from web_support import FUME_EDGE, LOOPING_OUTAGE, WebRun

# The text format has no state set or info type: prometheus_client writes them as gauges.
FAMILIES = {
    "fume_edge_inference_fps": "gauge",
    "fume_edge_station_inference_fps": "gauge",
    "fume_edge_inferences": "counter",
    "fume_edge_degraded_inferences": "counter",
    "fume_edge_stale_pairs": "counter",
    "fume_edge_stage_seconds": "histogram",
    "fume_edge_camera_frames": "counter",
    "fume_edge_camera_garbage": "counter",
    "fume_edge_camera_reconnects": "counter",
    "fume_edge_camera_dropped": "counter",
    "fume_edge_camera_state": "gauge",
    "fume_edge_open_alerts": "gauge",
    "fume_edge_outbox_backlog": "gauge",
    "fume_edge_sink_queue": "gauge",
    "fume_edge_sink_errors": "counter",
    "fume_edge_alert_events_written": "counter",
    "fume_edge_alert_events_dropped": "counter",
    "fume_edge_web_frames_encoded": "counter",
    "fume_edge_model_info": "gauge",
}


def scrape(run: WebRun) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """family name -> {(sample name, sorted labels): value}, with each family's type checked."""
    response = run.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {}
    for family in text_string_to_metric_families(response.text):
        if family.name.startswith("fume_edge_"):
            assert FAMILIES.get(family.name) == family.type, (family.name, family.type)
            families[family.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    return families


def value(families: dict, family: str, sample: str | None = None, **labels: str) -> float:
    return families[family][(sample or family, tuple(sorted(labels.items())))]


def _cameras_agree(live: dict, station: str, cameras: dict) -> None:
    """The station's camera families agree with its cameras in the run's final stats (`cameras`)."""
    for camera, summary in cameras.items():
        for key in ("frames", "garbage", "reconnects"):
            scraped = value(
                live, f"fume_edge_camera_{key}", f"fume_edge_camera_{key}_total", camera=camera, station=station
            )
            assert scraped <= summary[key], (station, camera, key)
        assert (
            value(live, "fume_edge_camera_frames", "fume_edge_camera_frames_total", camera=camera, station=station) > 0
        )
        for reason in DROP_REASONS:
            scraped = value(
                live,
                "fume_edge_camera_dropped",
                "fume_edge_camera_dropped_total",
                camera=camera,
                reason=reason,
                station=station,
            )
            assert scraped <= summary[reason]
        states = [
            value(live, "fume_edge_camera_state", camera=camera, station=station, fume_edge_camera_state=s)
            for s in CAMERA_STATES
        ]
        assert sorted(states) == [0.0] * (len(CAMERA_STATES) - 1) + [1.0], (station, camera)


def test_metrics_cover_every_family_and_agree_with_the_run_summary(tmp_path: Path, small_onnx: Path) -> None:
    run = WebRun(tmp_path, "--model", str(small_onnx), "--duration", "120", yaml=LOOPING_OUTAGE).wait_ready()
    try:
        run.wait_for(lambda s: s["inferences"] >= 20 and s["sinks"]["written"] >= 1, timeout=90)
        quiet = scrape(run)
        done = run.get("/api/status").json()["inferences"]
        run.wait_for(lambda s: s["inferences"] >= done + 10, timeout=60)  # the run went on, with nobody watching
        # Nobody looked at the cameras: nothing was encoded. A viewer makes the encoder run.
        assert value(scrape(run), "fume_edge_web_frames_encoded", "fume_edge_web_frames_encoded_total") == 0
        assert run.get("/api/frame/co2.jpg").content.startswith(b"\xff\xd8")
        assert value(scrape(run), "fume_edge_web_frames_encoded", "fume_edge_web_frames_encoded_total") == 1
        assert set(quiet) == set(FAMILIES)
        tagged = subprocess.run(
            [*FUME_EDGE, "tag", "cow-7", "--db", str(run.db)], capture_output=True, text=True, timeout=60
        )
        assert tagged.returncode == 0, tagged.stderr
        run.wait_for(lambda s: s["subject"] == "cow-7", timeout=15)
        live = scrape(run)
    finally:
        output = run.stop()
    assert "fume-edge run: interrupted" in output, output
    with sqlite3.connect(run.db) as conn:
        final = json.loads(conn.execute("SELECT stats FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0])
        minutes = conn.execute("SELECT frames, subject FROM summary ORDER BY id").fetchall()

    inferences = value(live, "fume_edge_inferences", "fume_edge_inferences_total", station="default")
    assert 20 <= inferences <= final["inferences"]
    for stage in ("prepare", "infer", "alerts", "capture_to_result"):  # one observation per result (live mode)
        count = value(live, "fume_edge_stage_seconds", "fume_edge_stage_seconds_count", stage=stage)
        assert abs(count - inferences) <= 2, stage
        assert value(live, "fume_edge_stage_seconds", "fume_edge_stage_seconds_bucket", stage=stage, le="+Inf") == count
    assert value(live, "fume_edge_inference_fps") > 0
    assert value(live, "fume_edge_station_inference_fps", station="default") > 0
    _cameras_agree(live, "default", final["cameras"])
    assert (
        value(live, "fume_edge_degraded_inferences", "fume_edge_degraded_inferences_total", station="default")
        <= final["degraded"]
    )
    assert (
        1
        <= value(live, "fume_edge_alert_events_written", "fume_edge_alert_events_written_total")
        <= final["sinks"]["written"]
    )
    for name in ("fume_edge_sink_errors", "fume_edge_alert_events_dropped"):
        assert value(live, name, name + "_total") == 0 == final["sinks"]["errors"] == final["sinks"]["dropped"]
    assert value(live, "fume_edge_outbox_backlog") == 0  # no MQTT: nothing waits for a broker
    opened = [value(live, "fume_edge_open_alerts", type=t, station="default") for t in ALERT_TYPES]
    assert set(opened) <= {0.0, 1.0}
    info = next(labels for (name, labels) in live["fume_edge_model_info"])
    assert dict(info) == {
        "device_id": dict(info)["device_id"],
        "model": small_onnx.name,
        "backend": "onnxruntime",
        "model_sha256": sha256_file(small_onnx),
        "version": dict(info)["version"],
    }

    # The per-minute summary rows hold every inference of the run; the last carries the subject set during it.
    assert sum(frames for frames, _ in minutes) == final["inferences"]
    assert minutes[-1][1] == "cow-7"


# Two stations on the same synthetic scenario; only pen-b's acidosis_risk can start (pen-a's waits an hour).
TWO_STATIONS = LOOPING_OUTAGE.replace(
    "sources:",
    """stations:
  - id: pen-a
    co2: synthetic
    ch4: synthetic
    alerts: {acidosis_risk: {start_after_s: 3600, single_gas_start_after_s: null}}
  - id: pen-b
    co2: synthetic
    ch4: synthetic
    alerts: {acidosis_risk: {start_at: 0.01, end_below: 0.0, start_after_s: 0.5}}
sources:""",
)


def test_metrics_carry_a_station_label_on_what_belongs_to_one_station(tmp_path: Path, small_onnx: Path) -> None:
    run = WebRun(
        tmp_path, "--model", str(small_onnx), "--duration", "120", yaml=TWO_STATIONS, stations=True
    ).wait_ready()
    try:
        run.wait_for(lambda s: all(row["inferences"] >= 10 for row in s["stations"]), timeout=90)

        def alert_open() -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] | None:
            page = scrape(run)
            return page if value(page, "fume_edge_open_alerts", type="acidosis_risk", station="pen-b") == 1 else None

        live = eventually(alert_open, "pen-b's open acidosis_risk alert in the metrics", timeout_s=30, every_s=0.3)
    finally:
        run.stop()
    with sqlite3.connect(run.db) as conn:
        final = json.loads(conn.execute("SELECT stats FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0])
    assert set(live) == set(FAMILIES)
    for station in ("pen-a", "pen-b"):
        own = final["stations"][station]
        assert (
            10
            <= value(live, "fume_edge_inferences", "fume_edge_inferences_total", station=station)
            <= own["inferences"]
        )
        assert value(live, "fume_edge_station_inference_fps", station=station) > 0
        _cameras_agree(live, station, own["cameras"])
    assert value(live, "fume_edge_open_alerts", type="acidosis_risk", station="pen-b") == 1
    assert value(live, "fume_edge_open_alerts", type="acidosis_risk", station="pen-a") == 0
    # The stage histograms take one observation per result of every station (each station's feed runs them).
    inferences = sum(
        value(live, "fume_edge_inferences", "fume_edge_inferences_total", station=s) for s in ("pen-a", "pen-b")
    )
    for stage in ("prepare", "infer", "alerts", "capture_to_result"):
        count = value(live, "fume_edge_stage_seconds", "fume_edge_stage_seconds_count", stage=stage)
        assert abs(count - inferences) <= 4, (stage, count, inferences)  # the snapshot trails by a tick at most
    assert value(live, "fume_edge_inference_fps") >= value(live, "fume_edge_station_inference_fps", station="pen-a")
