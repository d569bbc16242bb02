"""The alert database under what users and disks do to it: a copy of the file alone or on read-only media, the
file deleted or replaced while a run writes it, a damaged b-tree page, and a flood of rows that is not events.
Every test uses real SQLite files and a real sink worker."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from alerts_support import make_event, sinks_config
from disk_support import fill, mount_tmpfs, unmount

from fume_edge.alerts.event import AlertEvent
from fume_edge.alerts.store import AlertStore, StoreConfig
from fume_edge.alerts.subject import SubjectWatcher, current_subject, set_subject, subject_history, tag_command
from fume_edge.alerts.worker import SinkWorker
from fume_edge.errors import FumeEdgeError
from waiting import eventually

T0 = 1_780_000_000.0


def ids(events: list[AlertEvent]) -> list[str]:
    return [event.event_id for event in events]


def stored_ids(path: Path) -> list[str]:
    with AlertStore(path, readonly=True) as store:
        return ids(store.events())


def test_a_cleanly_stopped_run_leaves_every_event_in_the_database_file_alone(tmp_path: Path) -> None:
    config = sinks_config(tmp_path)
    events = [make_event(wall=T0 + i) for i in range(30)]
    worker = SinkWorker(config, device_id="barn-1")
    worker.start()
    reader = AlertStore(config.sqlite.path, readonly=True)  # as the run's subject watcher: it closes last
    worker.submit(events)
    eventually(lambda: len(reader.events()) == 30, "len(reader.events()) == 30")
    worker.stop()
    reader.close()
    alone = tmp_path / "copy" / "alerts.db"
    alone.parent.mkdir()
    shutil.copyfile(config.sqlite.path, alone)  # the file a user copies, without its -wal
    assert stored_ids(alone) == ids(events)


def test_a_read_only_copy_with_a_wal_says_so_instead_of_looking_empty(tmp_path: Path) -> None:
    config = sinks_config(tmp_path)
    events = [make_event(wall=T0 + i) for i in range(5)]
    media = tmp_path / "usb"
    mount_tmpfs(media, "2m")
    try:
        with SinkWorker(config, device_id="barn-1") as worker:
            worker.submit(events)
            eventually(lambda: worker.stats().written == 5, "worker.stats().written == 5")
            for suffix in ("", "-wal", "-shm"):  # what a copy of a running (or killed) device holds
                shutil.copyfile(f"{config.sqlite.path}{suffix}", f"{media / 'alerts.db'}{suffix}")
        subprocess.run(["mount", "-o", "remount,ro", str(media)], check=True)
        with pytest.raises(
            FumeEdgeError,
            match=r"alerts.db-wal beside it holds events not yet merged .*copy "
            r"alerts.db and alerts.db-wal to a writable folder",
        ) as error:
            AlertStore(media / "alerts.db", readonly=True)
        assert "v0" not in str(error.value)
        writable = tmp_path / "copied"
        shutil.copytree(media, writable)
        assert stored_ids(writable / "alerts.db") == ids(events)  # the advice works
    finally:
        unmount(media)


def test_a_database_deleted_mid_run_is_recreated_with_the_events_since(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jsonl = tmp_path / "alerts.jsonl"
    config = sinks_config(tmp_path, {"jsonl": {"path": str(jsonl)}})
    path = Path(config.sqlite.path)
    before, after = [make_event(wall=T0 + i) for i in range(3)], [make_event(wall=T0 + 10 + i) for i in range(4)]
    worker = SinkWorker(config, device_id="barn-1")
    worker.start()
    tag_command(path, "cow-7")
    seen: list[str | None] = []
    watcher = SubjectWatcher(
        path, lambda subject, _station: seen.append(subject), poll_s=0.02
    )  # as `run` follows `fume-edge tag`
    watcher.__enter__()
    worker.submit(before)
    eventually(lambda: worker.stats().written == 3, "worker.stats().written == 3")
    path.unlink()  # `rm alerts.db` while the run writes it
    with caplog.at_level(logging.ERROR, "fume_edge.alerts.store"):
        worker.submit(after)
        eventually(lambda: worker.stats().written == 7, "worker.stats().written == 7")
        assert worker.stats().errors == 1  # /healthz reports the sink error
        eventually(
            lambda: stored_ids(path) == ids(after), "stored_ids(path) == ids(after)"
        )  # a new file at the path, the new events in it
        tag_command(path, "cow-9")  # reaches the new file, and the running watcher follows it there
        eventually(lambda: seen[-1:] == ["cow-9"], 'seen[-1:] == ["cow-9"]')
        worker.submit([make_event(wall=T0 + 20)])
        eventually(lambda: worker.stats().written == 8, "worker.stats().written == 8")
    watcher.__exit__(None, None, None)
    worker.stop()
    logged = [r.getMessage() for r in caplog.records if "was deleted" in r.getMessage()]
    assert len(logged) == 1 and f"go on in a new database at {path}" in logged[0]  # once, not once per event
    with AlertStore(path, readonly=True) as store:
        assert len(store.events()) == 5
        assert store.runs(1)[0]["end_reason"] == "completed" and current_subject(store) == "cow-9"
        assert [change.subject for change in subject_history(store)] == ["cow-9", "cow-7"]  # carried over
    lines = [AlertEvent.from_json(line) for line in jsonl.read_text().splitlines()]
    assert ids(lines) == ids(before + after) + [lines[-1].event_id]  # JSONL follows on without gaps or repeats


def test_a_database_replaced_mid_run_is_never_written_into(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = sinks_config(tmp_path)
    path = Path(config.sqlite.path)
    theirs = make_event(wall=T0 - 100)
    backup = tmp_path / "backup.db"
    with AlertStore(backup) as store:
        store.record(theirs, publish=False)
    events = [make_event(wall=T0 + i) for i in range(6)]
    worker = SinkWorker(config, device_id="barn-1")
    worker.start()
    worker.submit(events[:3])
    eventually(lambda: worker.stats().written == 3, "worker.stats().written == 3")
    backup.replace(path)  # a restored backup moved over the database the run writes
    replacing = path.read_bytes()
    with caplog.at_level(logging.ERROR, "fume_edge.alerts.store"):
        worker.submit(events[3:])
        eventually(lambda: worker.stats().written == 6, "worker.stats().written == 6")
        assert stored_ids(path) == [theirs.event_id]  # while running: none of the run's -wal applied onto it
    worker.stop()
    assert stored_ids(path) == [theirs.event_id] and path.read_bytes() == replacing
    assert worker.stats().errors == 1
    assert len([r for r in caplog.records if "was replaced by another file" in r.getMessage()]) == 1
    (new,) = [p for p in tmp_path.glob("alerts-*.db")]
    assert stored_ids(new) == ids(events[3:])


def _flip_a_btree_page(path: Path) -> None:
    """Point the first cell of a leaf page of `events` past the end of its page, as a flipped bit would."""
    with sqlite3.connect(path) as db:
        page = db.execute(
            "SELECT pageno FROM dbstat WHERE name = 'events' AND pagetype = 'leaf' ORDER BY pageno LIMIT 1"
        ).fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with open(path, "r+b") as file:
        file.seek((page - 1) * size + 8)  # a leaf page's header is 8 bytes; the cell pointers follow
        file.write(b"\xff\xf0")


def test_a_damaged_database_is_moved_aside_at_start_and_a_new_one_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = sinks_config(tmp_path)
    path = Path(config.sqlite.path)
    with AlertStore(path) as store:
        for i in range(60):
            store.record(make_event(wall=T0 + i), publish=False)
    _flip_a_btree_page(path)
    damaged = path.read_bytes()
    with caplog.at_level(logging.ERROR, "fume_edge.alerts.store"), SinkWorker(config, device_id="barn-1") as worker:
        worker.submit([fresh := make_event(wall=T0 + 100)])
        eventually(lambda: worker.stats().written == 1, "worker.stats().written == 1")
    (aside,) = tmp_path.glob("alerts.db.corrupt-*")
    assert aside.read_bytes() == damaged  # kept as it was, for whoever wants to salvage it
    assert [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()] == [
        f"{path}: the alert database is damaged ({_quick_check(aside)}); moved aside to {aside.name} and started "
        "a new one"
    ]
    assert stored_ids(path) == [fresh.event_id]
    with AlertStore(path, readonly=True) as store:
        assert store.integrity_ok()


def _quick_check(path: Path) -> str:
    """What SQLite says of the damage: quick_check's findings, or the error a damaged page raises."""
    db = sqlite3.connect(path)
    try:
        rows = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        db.close()
    assert rows != ["ok"]
    return "; ".join(rows)


def test_retention_bounds_a_subject_flood_and_keeps_every_event_and_the_current_subject(tmp_path: Path) -> None:
    now = time.time()
    path = tmp_path / "alerts.db"
    with AlertStore(path) as store:
        seqs = [store.record(make_event(wall=now - 60 + i), publish=True) for i in range(9)]
        store.mark_sent(seqs[:5])
        for age_days in (400, 390):  # older than max_age_days
            set_subject(store, "old-cow", "web", now=now - age_days * 86400)
        limit = store.used_bytes() + 16 * 1024
        for i in range(6000):  # a command flood
            set_subject(store, f"cow-{i}", "mqtt", now=now - 6000 + i)
        assert store.used_bytes() > limit
        config = StoreConfig(path=str(path), max_events=200_000, max_bytes=limit, max_age_days=365, max_runs=10)
        assert store.enforce_retention(config, now) == 0
        assert store.used_bytes() <= limit
        assert len(store.events()) == 9  # sent or not, no event gave way to subject rows
        left = store.query("SELECT COUNT(*), MIN(epoch) FROM subjects")[0]
        assert 0 < left[0] < 6000 and left[1] > now - 365 * 86400 and current_subject(store) == "cow-5999"
        tight = StoreConfig(path=str(path), max_events=200_000, max_bytes=4096, max_age_days=365, max_runs=10)
        store.enforce_retention(tight, now)  # a limit nothing fits: only what must stay, stays
        assert len(store.events()) == 4 and store.unsent_count() == 4 and current_subject(store) == "cow-5999"


def test_a_database_deleted_on_a_full_disk_is_recreated_once_space_returns(small_disk: Path) -> None:
    config = sinks_config(small_disk, {"retry_min_s": 0.05, "retry_max_s": 0.2})
    path = Path(config.sqlite.path)
    events = [make_event(wall=T0 + i) for i in range(4)]
    worker = SinkWorker(config, device_id="barn-1")
    worker.start()
    worker.submit(events[:1])
    eventually(lambda: worker.stats().written == 1, "worker.stats().written == 1")
    filler = fill(small_disk)
    path.unlink()  # still open, so no space comes back: the new database cannot be made yet
    worker.submit(events[1:])
    eventually(lambda: worker.stats().errors >= 3, "worker.stats().errors >= 3")  # the move is retried with every write
    filler.unlink()
    eventually(lambda: worker.stats().written == 4, "worker.stats().written == 4")
    worker.stop()
    assert worker.stats().lost == 0
    assert stored_ids(path) == ids(events[1:])
