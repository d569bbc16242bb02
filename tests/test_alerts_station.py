"""Events and summary rows per station in the alert store: an older database keeps its events as station
`default`, and `fume-edge alerts --station` lists one station's events."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from alerts_support import make_event

from fume_edge.alerts.event import AlertEvent
from fume_edge.alerts.store import MIGRATIONS, AlertStore
from fume_edge.alerts.summary import SummaryRow, record_summary, summary_rows


def test_an_older_database_keeps_its_events_as_station_default(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    old = make_event()
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + MIGRATIONS[1] + "PRAGMA user_version = 2;")
    conn.execute("INSERT INTO events (event_id, alert_id, type, state, epoch, payload) VALUES (?,?,?,?,?,?)",
                 (old.event_id, old.id, old.type, old.state, old.epoch,
                  json.dumps({k: v for k, v in old.to_dict().items() if k != "station"})))  # as v2 wrote it
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
    result = subprocess.run([sys.executable, "-c", "from fume_edge.cli import main; main()", "alerts", "--db",
                             str(path), "--json", "--station", "pen-1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [AlertEvent.from_json(line) for line in result.stdout.splitlines()] == [events[0], events[2]]
