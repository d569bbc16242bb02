"""Events, summary rows and subjects per station in the alert store: an older database keeps its events as
station `default`, `fume-edge alerts --station` lists one station's events, `fume-edge tag --station` tags one."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from alerts_support import make_event
from pipeline_support import run_config

from fume_edge.alerts.event import AlertEvent
from fume_edge.alerts.service import AlertService
from fume_edge.alerts.store import MIGRATIONS, AlertStore
from fume_edge.alerts.subject import SubjectWatcher, set_subject, tag_command
from fume_edge.alerts.summary import SummaryRow, record_summary, summary_rows


def test_an_older_database_keeps_its_events_as_station_default(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    old = make_event()
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + MIGRATIONS[1] + "PRAGMA user_version = 2;")
    conn.execute(
        "INSERT INTO events (event_id, alert_id, type, state, epoch, payload) VALUES (?,?,?,?,?,?)",
        (
            old.event_id,
            old.id,
            old.type,
            old.state,
            old.epoch,
            json.dumps({k: v for k, v in old.to_dict().items() if k != "station"}),
        ),
    )  # as v2 wrote it
    conn.commit()
    conn.close()
    with AlertStore(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.events(station="default") == [old] and old.station == "default"
        pen = make_event(station="pen-2")
        store.record(pen, publish=False)
        assert store.events(station="pen-2") == [pen]
        record_summary(store, SummaryRow(60.0, "barn-1", None, 3, 0, None, {"co2": 0.1}, station="pen-2"))
        assert [row.station for row in summary_rows(store, 0)] == ["pen-2"]


def test_alerts_lists_one_station(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    events = [make_event(station=station) for station in ("pen-1", "pen-2", "pen-1")]
    with AlertStore(path) as store:
        for event in events:
            store.record(event, publish=False)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from fume_edge.cli import main; main()",
            "alerts",
            "--db",
            str(path),
            "--json",
            "--station",
            "pen-1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert [AlertEvent.from_json(line) for line in result.stdout.splitlines()] == [events[0], events[2]]


def test_tag_station_sets_one_stations_subject_and_a_plain_tag_every_station(tmp_path: Path) -> None:
    config = run_config(tmp_path)
    service = AlertService(
        config.alerts,
        config.sinks,
        device_id="barn-1",
        stations=dict.fromkeys(("pen-1", "pen-2", "pen-3"), config.alerts),
    )
    with AlertStore(config.sinks.sqlite.path) as store:
        set_subject(store, "cow-1", "cli", station="pen-1")  # overridden by the tag for every station after it
        set_subject(store, "herd-A", "cli")
        set_subject(store, "cow-2", "cli", station="pen-2")

    def subjects() -> dict[str, str | None]:
        return {name: policy.subject for name, policy in service.policies.items()}

    try:
        with SubjectWatcher(config.sinks.sqlite.path, service.set_subject, poll_s=60.0) as watcher:
            assert subjects() == {"pen-1": "herd-A", "pen-2": "cow-2", "pen-3": "herd-A"}
            tag_command(Path(config.sinks.sqlite.path), "cow-9", station="pen-3")
            watcher.check()
            assert subjects() == {"pen-1": "herd-A", "pen-2": "cow-2", "pen-3": "cow-9"}
            tag_command(Path(config.sinks.sqlite.path), "")
            watcher.check()
            assert subjects() == dict.fromkeys(("pen-1", "pen-2", "pen-3"))
    finally:
        service.close()
