"""JSONL and snapshot sinks, and the sink worker that writes SQLite -> JSONL -> snapshots from its own thread."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from alerts_support import make_event, policy_config, prediction, seg_with_gas, sinks_config

from fume_edge.alerts.event import AlertEvent
from fume_edge.alerts.jsonl import JsonlConfig, JsonlWriter
from fume_edge.alerts.service import AlertService
from fume_edge.alerts.snapshot import (
    BANNER_H,
    SnapshotConfig,
    SnapshotDir,
    SnapshotFrames,
    render_snapshot,
    to_gray_u8,
)
from fume_edge.alerts.store import AlertStore
from fume_edge.alerts.worker import SinkWorker
from fume_edge.errors import FumeEdgeError

T0 = 1_780_000_000.0


def read_lines(path: Path) -> list[AlertEvent]:
    return [AlertEvent.from_json(line) for line in path.read_text().splitlines()]


def snap_config(folder: Path, **kw: object) -> SnapshotConfig:
    values = dict(dir=str(folder), states=["start"], max_count=100, max_bytes=1 << 30, max_age_days=30.0, max_pending=8)
    values.update(kw)
    return SnapshotConfig(**values)  # type: ignore[arg-type]


def frames(gas: float = 0.1) -> SnapshotFrames:
    co2 = np.random.default_rng(0).integers(0, 4096, (480, 640), dtype=np.uint16)  # raw 12-bit thermal
    ch4 = np.full((1, 1, 480, 640), 0.5, np.float32)  # a model input
    pred = prediction(co2_gas=gas, ch4_gas=gas, shape=(480, 640))
    return SnapshotFrames(co2, ch4, pred)


def test_jsonl_appends_whole_lines_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "out" / "alerts.jsonl"
    events = [make_event(wall=T0 + i) for i in range(10)]
    line_bytes = len(events[0].to_json()) + 1
    with JsonlWriter(JsonlConfig(path=str(path), max_bytes=3 * line_bytes, backups=2)) as writer:
        for event in events:
            writer.write(event)
    files = [path.with_name("alerts.jsonl.2"), path.with_name("alerts.jsonl.1"), path]
    assert not path.with_name("alerts.jsonl.3").exists()
    kept = [e for f in files for e in read_lines(f)]
    assert kept == events[3:]  # 3 + 3 + 1 lines: the oldest file rotated out
    with JsonlWriter(JsonlConfig(path=str(path), max_bytes=1 << 20, backups=0)) as writer:
        writer.write(events[0])  # reopening appends
    assert read_lines(path)[-1] == events[0]


def test_jsonl_terminates_a_line_torn_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    first, second = make_event(), make_event()
    path.write_text(first.to_json() + "\n" + second.to_json()[:40])  # power cut mid-line
    third = make_event()
    with JsonlWriter(JsonlConfig(path=str(path), max_bytes=1 << 20, backups=1)) as writer:
        writer.write(third)
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and AlertEvent.from_json(lines[0]) == first and AlertEvent.from_json(lines[2]) == third


def test_jsonl_bad_path_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(FumeEdgeError, match="cannot open the JSONL alert file"):
        JsonlWriter(JsonlConfig(path=str(tmp_path / "file" / "a.jsonl"), max_bytes=100, backups=1))


def test_to_gray_u8_handles_every_frame_layout() -> None:
    assert to_gray_u8(np.array([[0, 1000], [500, 1000]], np.uint16)).tolist() == [[0, 255], [127, 255]]
    assert to_gray_u8(np.full((1, 1, 2, 2), 0.5, np.float32)).tolist() == [[127, 127], [127, 127]]
    assert to_gray_u8(np.zeros((2, 2, 3), np.uint8)).shape == (2, 2)
    assert to_gray_u8(np.array([[np.nan, 2.0]])).tolist() == [[0, 255]]


def test_snapshot_shows_both_frames_with_overlays_and_a_banner(tmp_path: Path) -> None:
    event = make_event(gas_areas={"co2": 0.1, "ch4": 0.1})
    image = render_snapshot(frames(), event)
    assert image.shape == (BANNER_H + 480, 1280, 3) and image.dtype == np.uint8
    gas = seg_with_gas(0.1, (480, 640)) == 2
    body = image[BANNER_H:]
    for panel in (body[:, :640], body[:, 640:]):
        red_minus_blue = panel[..., 2].astype(int) - panel[..., 0].astype(int)
        # gas pixels lean to the gas colour (orange-red), the untinted gray ones do not
        untinted = seg_with_gas(0.1, (480, 640)) == 0
        assert red_minus_blue[gas].mean() > 50 and abs(red_minus_blue[untinted]).max() == 0
    silent = render_snapshot(SnapshotFrames(None, frames().ch4, None), event)
    assert silent[BANNER_H + 300, 100].tolist() == [48, 48, 48]  # the NO SIGNAL panel


def test_snapshot_files_are_named_after_the_event_and_leave_no_temporary_file(tmp_path: Path) -> None:
    folder = SnapshotDir(snap_config(tmp_path / "snaps"))
    event = make_event()
    path = folder.path_for(event)
    assert path.is_absolute() and event.event_id[:8] in path.name and path.name.startswith("20")
    image = render_snapshot(frames(), event)
    _, png = cv2.imencode(".png", image)
    folder.write(path, png.tobytes())
    assert cv2.imread(str(path)).shape == image.shape
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_snapshot_retention_keeps_unsent_and_removes_oldest(tmp_path: Path) -> None:
    folder = SnapshotDir(snap_config(tmp_path, max_count=3, max_bytes=10_000, max_age_days=1.0))
    now = time.time()
    paths = []
    for i in range(6):
        path = tmp_path / f"{i}.png"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - (6 - i) * 60, now - (6 - i) * 60))
        paths.append(path)
    (tmp_path / "crashed.png.tmp").write_bytes(b"half")
    assert folder.prune(keep={str(paths[0])}, now=now) == 3  # count: 6 -> 3, the oldest kept (unsent)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.png", "4.png", "5.png"]
    assert folder.prune(keep=set(), now=now + 2 * 86400) == 3  # age


def test_worker_stores_each_event_alike_in_sqlite_jsonl_and_snapshots(tmp_path: Path) -> None:
    """(The order, SQLite before anything else, is shown where SQLite fails: test_alerts_faults.py.)"""
    config = sinks_config(
        tmp_path,
        {
            "jsonl": {"path": str(tmp_path / "a.jsonl")},
            "snapshots": {"dir": str(tmp_path / "snaps"), "states": ["start", "end"]},
        },
    )
    start, update = make_event("start", wall=T0), make_event("update", wall=T0 + 1)
    end = make_event("end", wall=T0 + 2, alert_id=start.id)
    with SinkWorker(config, device_id="barn-1", model_sha="f00d", run_config={"k": 1}) as worker:
        worker.submit([start, update], frames())
        worker.submit([end])  # no frames at hand: no snapshot
        worker.record_stats({"frames": 10})
    stats = worker.stats()
    assert (stats.written, stats.snapshots, stats.errors, stats.dropped, stats.mqtt_connected) == (3, 1, 0, 0, None)
    with AlertStore(config.sqlite.path, readonly=True) as store:
        stored = store.events()
        run = store.runs(1)[0]
    assert [e.event_id for e in stored] == [start.event_id, update.event_id, end.event_id]
    assert stored[0].snapshot and Path(stored[0].snapshot).is_file() and stored[1].snapshot is None
    assert read_lines(tmp_path / "a.jsonl") == stored
    assert run["end_reason"] == "completed" and run["stats"] == {"frames": 10} and run["config"] == {"k": 1}


def test_worker_ends_alerts_a_crashed_run_left_open(tmp_path: Path) -> None:
    config = sinks_config(tmp_path)
    left_open = make_event("update", wall=T0)
    with AlertStore(config.sqlite.path) as store:  # what a killed run left behind
        store.record(left_open, publish=False)
    with SinkWorker(config, device_id="barn-1"):
        pass
    with AlertStore(config.sqlite.path, readonly=True) as store:
        last = store.events()[-1]
        assert store.open_alerts() == []
    assert (last.id, last.state, last.reason, last.end_mono) == (left_open.id, "end", "interrupted", left_open.mono)


def test_back_pressure_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    config = sinks_config(tmp_path, {"queue_size": 2, "snapshots": {"dir": str(tmp_path / "s"), "max_pending": 1}})
    worker = SinkWorker(config, device_id="barn-1")
    events = [make_event(wall=T0 + i) for i in range(3)]
    worker.submit(events, frames())  # thread not started: nothing drains (a blocking submit would hang here)
    stats = worker.stats()
    assert (stats.queued, stats.dropped, stats.snapshots_skipped) == (2, 1, 2)
    worker.start()
    worker.stop()
    assert (worker.stats().written, worker.stats().snapshots, worker.stats().lost) == (4, 1, 1)
    with AlertStore(config.sqlite.path, readonly=True) as store:
        stored = store.events()
    # the two queued events, then the overflow as an alert of its own with the number it lost
    assert [e.event_id for e in stored[:2]] == [e.event_id for e in events[:2]]
    assert [(e.type, e.state) for e in stored[2:]] == [("sink_degraded", "start"), ("sink_degraded", "end")]
    assert stored[3].detail == {"queue_size": 2, "dropped": 1} and stored[2].id == stored[3].id


def test_a_broken_sink_does_not_stop_the_others(tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    config = sinks_config(tmp_path, {"jsonl": {"path": str(tmp_path / "a.jsonl")}, "snapshots": {"dir": str(snaps)}})
    with SinkWorker(config, device_id="barn-1") as worker:
        snaps.rmdir()
        snaps.write_text("the disk went away")  # every snapshot write now fails
        worker.submit([make_event()], frames())
    assert (worker.stats().written, worker.stats().snapshots, worker.stats().errors) == (1, 0, 1)
    assert len(read_lines(tmp_path / "a.jsonl")) == 1


def test_service_drives_policy_and_sinks_and_interrupts_on_close(tmp_path: Path) -> None:
    rule = {"start_after_s": 1.0, "end_after_s": 1.0}
    policy = policy_config({"smoothing_s": 0.0, "acidosis_risk": rule, "transitional_risk": rule})
    sinks = sinks_config(tmp_path, {"snapshots": {"dir": str(tmp_path / "snaps")}})
    service = AlertService(policy, sinks, device_id="barn-1", model_sha="f00d")
    service.start()
    co2 = ch4 = np.zeros((480, 640), np.uint8)
    for i in range(30):
        service.on_prediction(i / 10, T0 + i / 10, prediction((0.1, 0.1, 0.8)), co2, ch4)
    service.on_camera_health(3.0, T0 + 3, {"co2"}, None, ch4)
    ends = service.close(stats={"frames": 30}, reason="interrupted")
    assert {(e.type, e.reason) for e in ends} == {("acidosis_risk", "interrupted"), ("camera_degraded", "interrupted")}
    assert service.close() == []
    with AlertStore(sinks.sqlite.path, readonly=True) as store:
        stored = [(e.type, e.state) for e in store.events()]
        run = store.runs(1)[0]
        snapshots = [e.snapshot for e in store.events() if e.snapshot]
    assert stored == [
        ("acidosis_risk", "start"),
        ("camera_degraded", "start"),
        ("acidosis_risk", "end"),
        ("camera_degraded", "end"),
    ]
    assert len(snapshots) == 2 and all(Path(p).is_file() for p in snapshots)
    assert run["end_reason"] == "interrupted" and run["stats"] == {"frames": 30}
