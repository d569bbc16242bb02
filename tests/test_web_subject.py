"""The subject (animal or sample id): set over MQTT on a live run, carried by summary rows, and the schema step
that added it to an existing alert database."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import paho.mqtt.publish as publish
import pytest

from fume_edge.alerts.store import MIGRATIONS, AlertStore, StoreConfig
from fume_edge.alerts.subject import current_subject, subject_history
from fume_edge.alerts.summary import MinuteSummary, prune_summary, record_summary, summary_rows
from mqtt_broker import Broker
from alerts_support import make_event
from waiting import eventually
from web_support import LOOPING_OUTAGE, WebRun


def test_mqtt_command_sets_the_subject_of_a_running_device(tmp_path: Path, small_onnx: Path, broker: Broker) -> None:
    run = WebRun(
        tmp_path,
        "--model",
        str(small_onnx),
        "--duration",
        "120",
        "--device-id",
        "barn-9",
        "--mqtt",
        f"mqtt://127.0.0.1:{broker.port}/farm1",
        yaml=LOOPING_OUTAGE,
    ).wait_ready()
    topic = "farm1/barn-9/cmd/subject"

    def send(payload: str) -> None:
        publish.single(topic, payload, qos=1, hostname="127.0.0.1", port=broker.port)

    try:

        def taken() -> bool:  # the run subscribes once connected: send until it takes
            send("sample A-3")
            return bool(run.get("/api/status").json()["subject"] == "sample A-3")

        eventually(taken, "the run taking the subject command", timeout_s=30, every_s=1)
        send("bad;id")  # refused (logged, never stored); the next command taking effect shows it was handled
        send("")
        run.wait_for(lambda s: s["subject"] is None, timeout=20)
    finally:
        output = run.stop()
    with AlertStore(run.db, readonly=True) as store:
        changes = subject_history(store)
    assert [(c.subject, c.source) for c in changes][:2] == [(None, "mqtt"), ("sample A-3", "mqtt")]
    assert all(c.subject != "bad;id" for c in changes)  # an invalid id is refused (and logged), not stored
    assert "MQTT subject command ignored" in output


def test_minute_summary_closes_rows_on_minute_and_subject_changes() -> None:
    summary = MinuteSummary("barn-1")
    t0 = 1_800_000_000.0 - 1_800_000_000.0 % 60
    probs = {"Healthy": 0.8, "Transitional": 0.1, "Acidotic": 0.1}
    assert summary.add(t0 + 1, None, probs, {"co2": 0.2, "ch4": 0.1}) is None
    assert (
        summary.add(t0 + 30, None, {"Healthy": 0.4, "Transitional": 0.1, "Acidotic": 0.5}, {"co2": 0.4, "ch4": None})
        is None
    )
    row = summary.add(t0 + 61, None, None, {"co2": 0.1, "ch4": 0.1})  # next minute: the first closes
    assert row is not None and row.minute == t0 and row.frames == 2 and row.degraded == 1
    assert row.probs == pytest.approx({"Healthy": 0.6, "Transitional": 0.1, "Acidotic": 0.3})
    assert row.gas_areas == pytest.approx({"co2": 0.3, "ch4": 0.1})  # means over each camera's live frames
    row = summary.add(t0 + 62, "cow-1", probs, {"co2": 0.1, "ch4": 0.1})  # a new subject closes it early
    assert row is not None and row.subject is None and row.probs is None and row.frames == 1
    last = summary.flush()
    assert last is not None and last.subject == "cow-1" and last.minute == t0 + 60
    assert summary.flush() is None


def test_summary_rows_follow_the_store_retention(tmp_path: Path) -> None:
    now = time.time()
    summary = MinuteSummary("barn-1")
    with AlertStore(tmp_path / "a.db") as store:
        for minute in range(10):
            summary.add(now - 10 * 86400 + minute * 60, "cow-2", None, {"co2": 0.1})
        for minute in range(10):
            row = summary.add(now - 3600 + minute * 60, "cow-2", None, {"co2": 0.1})
            if row is not None:
                record_summary(store, row)
        config = StoreConfig(path=str(store.path), max_events=5, max_bytes=1 << 30, max_age_days=2, max_runs=10)
        assert len(summary_rows(store, 0)) == 10  # one 10-days-old row, nine from the last hour
        assert prune_summary(store, config, now) == 5  # the old one by age, then the oldest beyond 5 rows
        rows = summary_rows(store, 0, subject="cow-2")
        assert len(rows) == 5 and rows[0].minute >= now - 3600


def test_an_older_database_gains_the_subject_column_and_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    old = make_event()
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO events (event_id, alert_id, type, state, epoch, payload) VALUES (?,?,?,?,?,?)",
        (
            old.event_id,
            old.id,
            old.type,
            old.state,
            old.epoch,
            json.dumps({k: v for k, v in old.to_dict().items() if k != "subject"}),
        ),
    )  # as v1 wrote it
    conn.commit()
    conn.close()
    with AlertStore(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.events() == [old] and old.subject is None and current_subject(store) is None
        tagged = make_event(subject="cow-3")
        store.record(tagged, publish=False)
        assert store.events(subject="cow-3") == [tagged]
