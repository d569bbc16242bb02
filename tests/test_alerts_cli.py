"""`fume-edge alerts`: the table, JSON export, filters, and one-line errors (run as the real entry point)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alerts_support import make_event

from fume_edge.alerts.event import AlertEvent
from fume_edge.alerts.report import parse_since
from fume_edge.alerts.store import AlertStore
from fume_edge.errors import FumeEdgeError


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from fume_edge.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[AlertEvent]]:
    path = tmp_path_factory.mktemp("cli") / "alerts.db"
    now = time.time()
    events = [
        make_event("start", "acidosis_risk", wall=now - 3 * 3600, snapshot="/var/snaps/a.png"),
        make_event("start", "camera_degraded", wall=now - 1800, camera_ids=("ch4",)),
        make_event("end", "camera_degraded", wall=now - 600, camera_ids=("ch4",)),
    ]
    with AlertStore(path) as store:
        for event in events:
            store.record(event, publish=False)
    return path, events


def test_table_lists_every_event(db: tuple[Path, list[AlertEvent]]) -> None:
    path, events = db
    result = cli("alerts", "--db", str(path))
    assert result.returncode == 0, result.stderr
    assert "3 alert events" in result.stdout and "acidosis_risk" in result.stdout and "a.png" in result.stdout
    assert "end (cleared)" in result.stdout and events[0].id[:8] in result.stdout


def test_json_export_round_trips_and_filters(db: tuple[Path, list[AlertEvent]]) -> None:
    path, events = db
    every = cli("alerts", "--db", str(path), "--json")
    assert [AlertEvent.from_json(line) for line in every.stdout.splitlines()] == events
    typed = cli("alerts", "--db", str(path), "--json", "--type", "camera_degraded", "--since", "1h")
    assert [AlertEvent.from_json(line) for line in typed.stdout.splitlines()] == events[1:]
    newest = cli("alerts", "--db", str(path), "--json", "--limit", "1")
    assert [AlertEvent.from_json(line) for line in newest.stdout.splitlines()] == events[2:]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--db", "nowhere.db"], "nowhere.db: no alert database here"),
        (["--since", "yesterday-ish"], "--since 'yesterday-ish': not a time"),
        (["--type", "fire"], "--type 'fire': not an alert type"),
    ],
)
def test_user_errors_are_one_line(db: tuple[Path, list[AlertEvent]], args: list[str], message: str) -> None:
    if "--db" not in args:
        args = ["--db", str(db[0]), *args]
    result = cli("alerts", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_since_accepts_ages_and_iso_times() -> None:
    now = 1_780_000_000.0
    assert parse_since("30m", now) == now - 1800
    assert parse_since("1.5h", now) == now - 5400
    assert parse_since("2w", now) == now - 14 * 86400
    assert parse_since("2026-05-28T20:26:40", now) == now
    assert parse_since("2026-05-28T22:26:40+02:00", now) == now
    with pytest.raises(FumeEdgeError):
        parse_since("5 parsecs", now)


def test_csv_export_reads_back_with_the_same_filters(db: tuple[Path, list[AlertEvent]]) -> None:
    path, events = db
    every = cli("alerts", "--db", str(path), "--csv")
    assert every.returncode == 0, every.stderr
    rows = list(csv.DictReader(io.StringIO(every.stdout)))
    assert [(r["alert_id"], r["event_id"], r["type"], r["state"], r["time"]) for r in rows] == [
        (e.id, e.event_id, e.type, e.state, e.time) for e in events
    ]
    first = rows[0]
    assert float(first["p_Acidotic"]) == events[0].probs["Acidotic"] and float(first["gas_area_co2"]) == 0.05
    assert first["gas_area_ch4"] == "" and first["snapshot"] == "/var/snaps/a.png" and first["camera_ids"] == "co2 ch4"
    assert rows[2]["reason"] == "cleared" and int(rows[2]["frames"]) == events[2].frames
    typed = cli("alerts", "--db", str(path), "--csv", "--type", "camera_degraded", "--since", "1h", "--limit", "1")
    assert [r["event_id"] for r in csv.DictReader(io.StringIO(typed.stdout))] == [events[2].event_id]
    both = cli("alerts", "--db", str(path), "--csv", "--json")
    assert both.returncode == 2 and "pass one of them" in both.stderr
