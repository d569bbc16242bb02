"""Alert storage under faults a device meets in the field: a disk that fills up and frees again, a full disk at
start-up, read-only media, a database of another program, secrets that must never reach the disk."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
from alerts_support import make_event, prediction, sinks_config
from disk_support import fill, mount_tmpfs, unmount

from fume_edge.alerts.event import AlertEvent
from fume_edge.alerts.secrets import PASSWORD_ENV, redact
from fume_edge.alerts.snapshot import SnapshotFrames
from fume_edge.alerts.store import AlertStore
from fume_edge.alerts.worker import SinkWorker
from fume_edge.errors import FumeEdgeError
from waiting import eventually

T0 = 1_780_000_000.0


def read_jsonl(path: Path) -> list[AlertEvent]:
    return [AlertEvent.from_json(line) for line in path.read_text().splitlines()]


def smooth_frames() -> SnapshotFrames:
    ramp = np.tile(np.linspace(0, 255, 640, dtype=np.float32), (480, 1)).astype(np.uint8)  # compresses well
    return SnapshotFrames(ramp, ramp, prediction(shape=(480, 640)))


def test_a_disk_that_fills_and_frees_loses_no_alert_and_keeps_every_sink_in_order(
    small_disk: Path, tmp_path: Path
) -> None:
    jsonl = tmp_path / "alerts.jsonl"  # on a disk with room: it must still get nothing SQLite does not have
    config = sinks_config(
        small_disk,
        {
            "jsonl": {"path": str(jsonl)},
            "snapshots": {"dir": str(small_disk / "snaps")},
            "retry_min_s": 0.05,
            "retry_max_s": 0.2,
        },
    )
    alerts = [make_event("start", wall=T0 + 10 * i) for i in range(12)]
    timeline = [
        event
        for start in alerts
        for event in (
            start,
            make_event("update", wall=start.epoch + 1, alert_id=start.id),
            make_event("end", wall=start.epoch + 2, alert_id=start.id),
        )
    ]
    worker = SinkWorker(config, device_id="barn-1")
    worker.start()
    for event in timeline[:6]:  # before the disk fills
        worker.submit([event], smooth_frames())
    eventually(lambda: worker.stats().written == 6, "worker.stats().written == 6")

    filler = fill(small_disk)
    for event in timeline[6:]:  # while it is full: every commit fails and is retried
        worker.submit([event], smooth_frames())
    eventually(
        lambda: worker.stats().failing == "SQLite" and worker.stats().errors >= 3,
        'worker.stats().failing == "SQLite" and worker.stats().errors >= 3',
    )
    held = worker.stats()
    assert held.written < len(timeline) and held.queued > 0 and held.dropped == 0
    assert len(read_jsonl(jsonl)) == held.written  # JSONL only ever follows committed rows
    assert not list(small_disk.rglob("*.tmp"))  # a failed snapshot write removed its temporary file at once

    filler.unlink()  # space returns
    eventually(lambda: worker.stats().written == len(timeline), "worker.stats().written == len(timeline)")
    worker.stop()
    stats = worker.stats()
    assert (stats.failing, stats.lost) == (None, 0)

    with AlertStore(config.sqlite.path, readonly=True) as store:
        stored = store.events()
    assert [e.event_id for e in stored] == [e.event_id for e in timeline]  # every alert, in order
    assert read_jsonl(jsonl) == stored  # JSONL agrees with SQLite line for line
    snapshots = [Path(e.snapshot) for e in stored if e.snapshot]
    assert all(path.is_file() for path in snapshots)  # no event points at a PNG that was never written
    assert sorted(p.name for p in (small_disk / "snaps").iterdir()) == sorted(p.name for p in snapshots)
    assert not [p for p in small_disk.rglob("*") if p.name.endswith((".tmp", "-journal"))]

    with SinkWorker(config, device_id="barn-1"):  # the next run finds nothing open: no second END anywhere
        pass
    assert len(read_jsonl(jsonl)) == len(timeline)


def test_a_run_that_cannot_store_its_events_by_shutdown_counts_them_as_lost(small_disk: Path) -> None:
    config = sinks_config(small_disk, {"retry_min_s": 0.05, "retry_max_s": 0.1, "stop_timeout_s": 0.5})
    worker = SinkWorker(config, device_id="barn-1")
    worker.start()
    fill(small_disk)
    worker.submit([make_event(wall=T0 + i) for i in range(3)])
    worker.stop()
    assert (worker.stats().written, worker.stats().unstored, worker.stats().lost) == (0, 3, 3)


def test_start_up_on_a_full_disk_is_one_clear_error(small_disk: Path) -> None:
    config = sinks_config(small_disk)
    with SinkWorker(config, device_id="barn-1") as worker:
        worker.submit([make_event()])
    fill(small_disk)
    with pytest.raises(FumeEdgeError, match="alerts.db: cannot (write to the|open as an) alert database .*free space"):
        SinkWorker(config, device_id="barn-1").start()


def test_a_read_only_archive_opens_in_immutable_mode(tmp_path: Path) -> None:
    media = tmp_path / "usb"
    mount_tmpfs(media, "1m")
    try:
        with AlertStore(media / "alerts.db") as store:  # written, then closed cleanly: no -wal, no -shm
            store.record(make_event(), publish=False)
        subprocess.run(["mount", "-o", "remount,ro", str(media)], check=True)
        assert not (media / "alerts.db-shm").exists()
        with AlertStore(media / "alerts.db", readonly=True) as store:
            assert len(store.events()) == 1
    finally:
        unmount(media)


def test_a_database_of_another_program_is_refused_and_left_untouched(tmp_path: Path) -> None:
    foreign = tmp_path / "inventory.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE cows (tag TEXT)")
    before = foreign.read_bytes()
    for readonly in (True, False):
        with pytest.raises(FumeEdgeError, match="inventory.db: not a fume-edge alert database \\(tables: cows\\)"):
            AlertStore(foreign, readonly=readonly)
    assert foreign.read_bytes() == before


def test_no_secret_reaches_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-Pa55"
    config = sinks_config(tmp_path, {"jsonl": {"path": str(tmp_path / "a.jsonl")}})
    run_config = {
        "options": {
            "mqtt": f"mqtt://edge:{secret}@broker.farm:1883/fe",
            "co2": f"rtsp://admin:{secret}@10.0.0.5/stream1",
        },
        "sinks": {"mqtt": {"url": f"mqtts://edge:{secret}@broker.farm/fe", "password": secret}},
    }
    with SinkWorker(config, device_id="barn-1", run_config=run_config) as worker:
        worker.submit([make_event()])
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert secret.encode() not in on_disk
    with AlertStore(config.sqlite.path, readonly=True) as store:
        stored = store.runs(1)[0]["config"]
    assert stored["options"]["mqtt"] == "mqtt://***@broker.farm:1883/fe"
    assert stored["options"]["co2"] == "rtsp://***@10.0.0.5/stream1"
    assert stored["sinks"]["mqtt"] == {"url": "mqtts://***@broker.farm/fe", "password": "***"}
    assert redact({"note": "see https://u:p@x.org/a and mqtt://h/p"}) == {
        "note": "see https://***@x.org/a and mqtt://h/p"
    }


def test_the_mqtt_password_comes_from_the_environment_or_an_owner_only_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fume_edge.alerts.secrets import mqtt_password

    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    secret_file = tmp_path / "mqtt.pass"
    secret_file.write_text("from-file\n")
    os.chmod(secret_file, 0o644)
    with pytest.raises(FumeEdgeError, match="readable by group or others .*chmod 600"):
        mqtt_password(None, str(secret_file), "sinks.mqtt")
    os.chmod(secret_file, 0o600)
    assert mqtt_password(None, str(secret_file), "sinks.mqtt") == "from-file"
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert mqtt_password(None, None, "sinks.mqtt") == "from-env"
    with pytest.raises(FumeEdgeError, match="given twice"):
        mqtt_password(None, str(secret_file), "sinks.mqtt")
