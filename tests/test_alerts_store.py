"""The SQLite alert store on a real database: outbox semantics, retention limits, schema versions, crashes."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from alerts_support import make_event, sinks_config

from fume_edge.alerts.event import AlertEvent
from fume_edge.alerts.store import MIGRATIONS, AlertStore, StoreConfig
from fume_edge.errors import FumeEdgeError

DAY = 86400.0
T0 = 1_780_000_000.0


def limits(**kw: float) -> StoreConfig:
    values = dict(path="unused", max_events=10_000, max_bytes=1 << 30, max_age_days=365.0, max_runs=100)
    values.update(kw)
    return StoreConfig(**values)  # type: ignore[arg-type]


def test_a_new_store_is_wal_and_at_the_latest_schema(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "a.db") as store:
        assert store.schema_version == len(MIGRATIONS)
    db = sqlite3.connect(tmp_path / "a.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")} >= {
        "events",
        "outbox",
        "runs",
    }


def test_events_round_trip_and_the_outbox_tracks_acks(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "a.db") as store:
        published = [make_event(wall=T0 + i) for i in range(3)]
        local_only = make_event(wall=T0 + 10, snapshot="/snaps/x.png")
        seqs = [store.record(e, publish=True) for e in published]
        store.record(local_only, publish=False)
        assert store.record(published[0], publish=True) == seqs[0]  # idempotent by event_id
        assert [e for _, e in store.unsent(10)] == published
        assert [s for s, _ in store.unsent(10, exclude=frozenset(seqs[:2]))] == [seqs[2]]
        store.mark_sent(seqs[:2])
        assert store.unsent_count() == 1 and [s for s, _ in store.unsent(10)] == [seqs[2]]
        assert store.events() == published + [local_only]
        assert store.unsent_snapshots() == set()


def test_queries_filter_by_time_and_type(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "a.db") as store:
        events = [
            make_event(wall=T0 + i * 60, alert_type=t)
            for i, t in enumerate(["acidosis_risk", "camera_degraded", "acidosis_risk", "gas_absent"])
        ]
        for e in events:
            store.record(e, publish=False)
        assert store.events(since=T0 + 60) == events[1:]
        assert store.events(alert_type="acidosis_risk") == [events[0], events[2]]
        assert store.events(limit=2) == events[2:]


def test_open_alerts_are_those_without_an_end(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "a.db") as store:
        closed = make_event("start", wall=T0)
        store.record(closed, publish=False)
        store.record(make_event("end", wall=T0 + 5, alert_id=closed.id), publish=False)
        left_open = make_event("start", alert_type="camera_offline", wall=T0 + 6)
        store.record(left_open, publish=False)
        latest = make_event("update", alert_type="camera_offline", wall=T0 + 7, alert_id=left_open.id)
        store.record(latest, publish=False)
        assert store.open_alerts() == [latest]


def test_retention_by_count_and_age_never_deletes_unsent(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "a.db") as store:
        old_unsent = make_event(wall=T0 - 400 * DAY, snapshot=str(tmp_path / "keep.png"))
        store.record(old_unsent, publish=True)
        old_sent = make_event(wall=T0 - 300 * DAY)
        store.mark_sent([store.record(old_sent, publish=True)])
        recent = [make_event(wall=T0 + i) for i in range(10)]
        for e in recent:
            store.record(e, publish=False)
        assert store.enforce_retention(limits(max_age_days=200.0), now=T0) == 1  # old_sent: too old and sent
        assert store.events()[0] == old_unsent
        assert store.enforce_retention(limits(max_events=5), now=T0) == 6  # oldest deletable first
        assert store.events() == [old_unsent] + recent[-4:]
        assert store.unsent_snapshots() == {str(tmp_path / "keep.png")}
        assert store.unsent_count() == 1


def test_retention_by_bytes_keeps_the_database_bounded(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "a.db") as store:
        pad = "x" * 2000
        for i in range(300):
            store.record(make_event(wall=T0 + i, model_sha=pad), publish=False)
        before = store.used_bytes()
        deleted = store.enforce_retention(limits(max_bytes=before // 3), now=T0 + 400)
        assert 150 < deleted < 300
        assert store.used_bytes() <= before // 3
        assert store.events()[-1].epoch == pytest.approx(T0 + 299, abs=1e-3)  # the newest survive


def test_runs_record_stats_and_are_bounded(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "a.db") as store:
        ids = [store.begin_run("barn-1", "f00d", {"fps": 30}) for _ in range(5)]
        store.update_run(ids[-1], {"frames": 10})
        store.update_run(ids[-1], {"frames": 20}, end_reason="interrupted")
        latest = store.runs(1)[0]
        assert latest["stats"] == {"frames": 20} and latest["end_reason"] == "interrupted"
        assert latest["ended_at"] is not None and latest["config"] == {"fps": 30}
        store.enforce_retention(limits(max_runs=2))
        assert [r["id"] for r in store.runs()] == ids[-2:][::-1]


def test_concurrent_writer_and_acker_threads(tmp_path: Path) -> None:
    """The sink worker records while the MQTT thread marks rows sent, on one shared connection."""
    with AlertStore(tmp_path / "a.db") as store:
        done = threading.Event()

        def acker() -> None:
            while not done.is_set() or store.unsent_count():
                store.mark_sent([seq for seq, _ in store.unsent(5)])

        thread = threading.Thread(target=acker)
        thread.start()
        for i in range(100):
            store.record(make_event(wall=T0 + i), publish=True)
        done.set()
        thread.join(timeout=30)
        assert not thread.is_alive() and store.unsent_count() == 0 and len(store.events()) == 100


WRITER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[2])
    from alerts_support import make_event
    from fume_edge.alerts.store import AlertStore
    store = AlertStore(sys.argv[1])
    for i in range(40):
        event = make_event(wall=1_780_000_000.0 + i)
        store.record(event, publish=True)
        print(event.event_id, flush=True)  # reported only once committed
    db = store._db  # a transaction the process dies inside: it must leave no trace
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO events (event_id, alert_id, type, state, epoch, payload) "
               "VALUES ('x','x','t','start',0,'{}')")
    db.execute("DELETE FROM outbox")
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_killed_writer_leaves_every_committed_event_and_nothing_half_written(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, str(path), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    committed = proc.stdout.split()
    assert len(committed) == 40
    with AlertStore(path) as store:
        assert store.integrity_ok()
        assert [e.event_id for e in store.events()] == committed
        assert store.unsent_count() == 40


def test_unreadable_and_newer_databases_are_one_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(FumeEdgeError, match="junk.db: cannot open as an alert database"):
        AlertStore(junk)
    with pytest.raises(FumeEdgeError, match="cannot open as an alert database"):
        AlertStore(junk / "sub" / "a.db")  # a folder that cannot exist
    newer = tmp_path / "newer.db"
    sqlite3.connect(newer).execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(FumeEdgeError, match="newer than this fume-edge"):
        AlertStore(newer)
    with pytest.raises(FumeEdgeError, match="no alert database here"):
        AlertStore(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()


def test_readonly_store_reads_while_a_writer_has_it_open(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with AlertStore(path) as writer:
        event = make_event()
        writer.record(event, publish=False)
        with AlertStore(path, readonly=True) as reader:
            assert reader.events() == [event]
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                reader.record(make_event(), publish=False)


def test_a_damaged_payload_names_the_row(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "a.db") as store:
        store.record(make_event(), publish=False)
        store._db.execute("UPDATE events SET payload = '{\"id\": 1}'")
        with pytest.raises(FumeEdgeError, match="event row 1 is unreadable"):
            store.events()


def test_store_config_limits_are_validated(tmp_path: Path) -> None:
    with pytest.raises(FumeEdgeError, match=r"run\.sinks\.sqlite\.max_events: must be >= 1 \(got 0\)"):
        sinks_config(tmp_path, {"sqlite": {"max_events": 0}})


def test_event_json_round_trip() -> None:
    event = make_event("end", snapshot="/s.png")
    assert AlertEvent.from_json(event.to_json()) == event
    with pytest.raises(ValueError, match="needs a reason"):
        replace(event, reason=None)
