"""The SQLite alert store: the source of truth every other sink follows.

An event is committed (WAL, `synchronous=FULL`) before it is written or published anywhere else, together with its
outbox row when a publisher (MQTT) will send it, in one transaction: a crash leaves either both or neither. The
publisher reads unsent outbox rows and marks them sent only after the broker acknowledged them, so an outage or a
restart loses nothing. Retention keeps a device that runs for months within its limits (event count, bytes, age;
oldest first) and never deletes an event that is still waiting to be sent.

Tables (schema versioned by `PRAGMA user_version`, upgraded by `MIGRATIONS` in order):
- `events`: one row per alert event; indexed columns plus the event's JSON (`payload`, see `AlertEvent.to_json`).
- `outbox`: one row per event to publish; `sent_at` is NULL until the broker's ack.
- `runs`: one row per `fume-edge run`: device, model, config, end reason and the pipeline's counters as JSON.
- `subjects`: every change of the current subject (animal or sample id; NULL: none), with its time and source;
  `events.subject` is the subject when the event happened (`alerts/subject.py`).
- `summary`: per-minute means of the smoothed pH probabilities and gas areas (`alerts/summary.py`).
`events.station` and `summary.station` name the camera pair (run.yaml `stations:`); rows written before stations
read `default`; `subjects.station` is the station a subject was set for (NULL: every station).

One connection is shared by the sink worker and the publisher thread, serialised by a lock. A database that is
not fume-edge's is refused by name, never "upgraded"; a read-only archive (a cleanly closed database on read-only
media, where WAL's `-shm` cannot be made) is opened in SQLite's immutable mode. Nothing secret is stored: the
run's config goes through `secrets.redact`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from fume_edge.alerts.event import END, AlertEvent
from fume_edge.alerts.secrets import redact
from fume_edge.errors import FumeEdgeError

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        alert_id TEXT NOT NULL,
        type TEXT NOT NULL,
        state TEXT NOT NULL,
        epoch REAL NOT NULL,
        run_id INTEGER,
        payload TEXT NOT NULL
    );
    CREATE INDEX events_epoch ON events(epoch);
    CREATE INDEX events_alert ON events(alert_id);
    CREATE TABLE outbox (
        event_seq INTEGER PRIMARY KEY REFERENCES events(seq),
        queued_at REAL NOT NULL,
        sent_at REAL
    );
    CREATE INDEX outbox_unsent ON outbox(event_seq) WHERE sent_at IS NULL;
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at REAL NOT NULL,
        ended_at REAL,
        end_reason TEXT,
        device_id TEXT NOT NULL,
        model_sha TEXT,
        config TEXT,
        stats TEXT
    );
    """,
    """
    ALTER TABLE events ADD COLUMN subject TEXT;
    CREATE INDEX events_subject ON events(subject);
    CREATE TABLE subjects (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        epoch REAL NOT NULL,
        subject TEXT,
        source TEXT NOT NULL
    );
    CREATE TABLE summary (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        minute REAL NOT NULL,
        device_id TEXT NOT NULL,
        subject TEXT,
        frames INTEGER NOT NULL,
        degraded INTEGER NOT NULL,
        probs TEXT,
        gas_areas TEXT NOT NULL
    );
    CREATE INDEX summary_minute ON summary(minute);
    """,
    """
    ALTER TABLE events ADD COLUMN station TEXT NOT NULL DEFAULT 'default';
    CREATE INDEX events_station ON events(station);
    ALTER TABLE summary ADD COLUMN station TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE subjects ADD COLUMN station TEXT;
    """,
)

APPLICATION_ID = 0x46554D45  # "FUME": `PRAGMA application_id` of every database fume-edge creates
TABLES = frozenset({"events", "outbox", "runs"})
KILLED = "killed"  # end_reason of a run found without one by the next run (SIGKILL, power loss)

# An event may be deleted by retention only when nothing still has to publish it.
_DELETABLE = "NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_seq = events.seq AND o.sent_at IS NULL)"


@dataclass
class StoreConfig:
    """`sinks.sqlite` in run.yaml."""

    path: str
    max_events: int
    max_bytes: int
    max_age_days: float
    max_runs: int

    def validate(self, where: str) -> None:
        for name in ("max_events", "max_bytes", "max_age_days", "max_runs"):
            if getattr(self, name) <= 0:
                raise FumeEdgeError(f"{where}.{name}: must be > 0, got {getattr(self, name)}")


class AlertStore:
    """The alert database at `path`. `readonly=True` opens an existing file for queries and never creates one."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        if readonly and not self.path.is_file():
            raise FumeEdgeError(f"{self.path}: no alert database here; pass --db with the file `fume-edge run` wrote")
        try:
            if readonly:
                # A folder we cannot write (read-only media) has no writer either, and WAL's -shm cannot be
                # created there: immutable mode reads the file as it is.
                immutable = "&immutable=1" if not os.access(self.path.resolve().parent, os.W_OK) else ""
                self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro{immutable}", uri=True,
                                           isolation_level=None, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA busy_timeout = 5000")
            self._migrate(readonly)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise FumeEdgeError(f"{self.path}: cannot open as an alert database ({exc}); free space on its disk "
                                "or pass a writable path to a fume-edge alert database") from None

    def _migrate(self, readonly: bool) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise FumeEdgeError(f"{self.path}: alert database schema v{version} is newer than this fume-edge "
                                f"understands (v{len(MIGRATIONS)}); upgrade fume-edge")
        self._refuse_foreign(version)  # before anything (even the journal mode) changes the file
        if not readonly:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
        if version < len(MIGRATIONS) and readonly:
            raise FumeEdgeError(f"{self.path}: alert database schema v{version} is older than v{len(MIGRATIONS)}; "
                                "open it once with `fume-edge run` to upgrade it")
        for number in range(version + 1, len(MIGRATIONS) + 1):
            # executescript commits first; the BEGIN..COMMIT makes each migration and its version bump atomic.
            self._db.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[number - 1]} PRAGMA user_version = {number}; COMMIT;")
        if version == 0 and not readonly:
            self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    def _refuse_foreign(self, version: int) -> None:
        """A database another program made (its own tables, or another application id) is not ours to change."""
        app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        foreign = app_id not in (0, APPLICATION_ID) or (version == 0 and tables) or (version > 0 and TABLES - tables)
        if foreign:
            shown = ", ".join(sorted(tables)[:5]) or "none"
            raise FumeEdgeError(f"{self.path}: not a fume-edge alert database (tables: {shown}); it belongs to "
                                "another program and is left untouched; pass --alerts/--db with another file")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @property
    def lock(self) -> threading.RLock:
        """Held around a group of calls that other threads must not see half done (the publisher waits on it)."""
        return self._lock

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full) may leave the transaction open: end it, so the next try starts clean.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def record(self, event: AlertEvent, *, publish: bool, run_id: int | None = None) -> int:
        """Commit one event (and its outbox row when `publish`); returns its sequence number. Idempotent by
        `event_id`: recording the same event again returns the existing row."""
        with self._transaction() as db:
            found = db.execute("SELECT seq FROM events WHERE event_id = ?", (event.event_id,)).fetchone()
            if found is not None:
                return int(found[0])
            seq = db.execute(
                "INSERT INTO events (event_id, alert_id, type, state, epoch, run_id, payload, subject, station) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (event.event_id, event.id, event.type, event.state, event.epoch, run_id, event.to_json(),
                 event.subject, event.station),
            ).lastrowid
            if publish:
                db.execute("INSERT INTO outbox (event_seq, queued_at) VALUES (?, ?)", (seq, time.time()))
            return int(seq)  # type: ignore[arg-type]

    def replace_payload(self, seq: int, event: AlertEvent) -> None:
        """Rewrite a committed event whose side effect failed (its snapshot was never written)."""
        with self._transaction() as db:
            db.execute("UPDATE events SET payload = ? WHERE seq = ?", (event.to_json(), seq))

    def last_seq(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def events_after(self, seq: int, limit: int = 100) -> list[tuple[int, AlertEvent]]:
        """Committed events after sequence number `seq`, oldest first (what a follower sink has not written yet)."""
        with self._lock:
            rows = self._db.execute("SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                    (seq, limit)).fetchall()
        return [(int(row["seq"]), AlertEvent.from_row(row)) for row in rows]

    def unsent(self, limit: int, exclude: frozenset[int] = frozenset()) -> list[tuple[int, AlertEvent]]:
        """The oldest outbox events not yet acknowledged, skipping sequence numbers in `exclude` (in flight)."""
        marks = ",".join("?" * len(exclude))
        with self._lock:
            rows = self._db.execute(
                "SELECT e.seq, e.payload FROM outbox o JOIN events e ON e.seq = o.event_seq "
                f"WHERE o.sent_at IS NULL AND o.event_seq NOT IN ({marks}) ORDER BY o.event_seq LIMIT ?",
                (*sorted(exclude), limit),
            ).fetchall()
        return [(int(row["seq"]), AlertEvent.from_row(row)) for row in rows]

    def unsent_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])

    def mark_sent(self, seqs: list[int]) -> None:
        """Mark outbox rows acknowledged by the broker."""
        with self._transaction() as db:
            db.executemany("UPDATE outbox SET sent_at = ? WHERE event_seq = ? AND sent_at IS NULL",
                           [(time.time(), seq) for seq in seqs])

    def unsent_snapshots(self) -> set[str]:
        """Snapshot paths of events still waiting in the outbox: snapshot retention must keep them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT json_extract(e.payload, '$.snapshot') FROM outbox o JOIN events e ON e.seq = o.event_seq "
                "WHERE o.sent_at IS NULL AND json_extract(e.payload, '$.snapshot') IS NOT NULL").fetchall()
        return {row[0] for row in rows}

    def events(self, *, since: float | None = None, alert_type: str | None = None,
               limit: int | None = None, subject: str | None = None, until: float | None = None,
               offset: int = 0, station: str | None = None) -> list[AlertEvent]:
        """Events in time order, optionally from epoch `since` on (before `until`), of one type, of one subject
        and of one station; `limit` keeps the newest, after skipping the `offset` newest (pages of history)."""
        where, args = ["1"], list[Any]()
        for clause, value in (("epoch >= ?", since), ("epoch < ?", until), ("type = ?", alert_type),
                              ("subject = ?", subject), ("station = ?", station)):
            if value is not None:
                where.append(clause)
                args.append(value)
        query = f"SELECT seq, payload FROM events WHERE {' AND '.join(where)} ORDER BY seq DESC"
        if limit is not None or offset:
            query += f" LIMIT {-1 if limit is None else int(limit)} OFFSET {int(offset)}"
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [AlertEvent.from_row(row) for row in reversed(rows)]

    def open_alerts(self) -> list[AlertEvent]:
        """The latest event of every alert that has no end event (left open by a crash or power loss)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM events WHERE seq IN (SELECT MAX(seq) FROM events GROUP BY alert_id) "
                "AND alert_id NOT IN (SELECT alert_id FROM events WHERE state = ?) ORDER BY seq", (END,)).fetchall()
        return [AlertEvent.from_row(row) for row in rows]

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows of one read query (for tables other alert modules own: `subjects`, `summary`)."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """One write statement in its own committed transaction; returns the rows it changed."""
        with self._transaction() as db:
            return int(db.execute(sql, args).rowcount)

    def begin_run(self, device_id: str, model_sha: str | None, config: Mapping[str, Any] | None = None) -> int:
        """Record a new run (its config redacted); earlier runs that never recorded an end were killed."""
        stored = json.dumps(redact(json.loads(json.dumps(config, default=str))))
        with self._transaction() as db:
            db.execute("UPDATE runs SET end_reason = ? WHERE end_reason IS NULL", (KILLED,))
            cursor = db.execute("INSERT INTO runs (started_at, device_id, model_sha, config) VALUES (?,?,?,?)",
                                (time.time(), device_id, model_sha, stored))
            return int(cursor.lastrowid)  # type: ignore[arg-type]

    def update_run(self, run_id: int, stats: Mapping[str, Any] | None, end_reason: str | None = None) -> None:
        """Store the run's latest counters (None keeps the previous ones); with `end_reason` also its end time."""
        with self._transaction() as db:
            db.execute("UPDATE runs SET stats = COALESCE(?, stats), end_reason = COALESCE(?, end_reason), "
                       "ended_at = CASE WHEN ? IS NULL THEN ended_at ELSE ? END WHERE id = ?",
                       (None if stats is None else json.dumps(stats, default=str), end_reason, end_reason,
                        time.time(), run_id))

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [{**dict(row), "config": json.loads(row["config"] or "null"), "stats": json.loads(row["stats"] or "null")}
                for row in rows]

    def used_bytes(self) -> int:
        """Bytes of the database in use (freed pages are reused, so this is what retention bounds)."""
        with self._lock:
            pages = self._db.execute("PRAGMA page_count").fetchone()[0] - self._db.execute(
                "PRAGMA freelist_count").fetchone()[0]
            return int(pages * self._db.execute("PRAGMA page_size").fetchone()[0])

    def enforce_retention(self, config: StoreConfig, now: float | None = None) -> int:
        """Delete the oldest deletable events beyond the count, age and byte limits (with their outbox rows), and
        runs beyond `max_runs`. Returns how many events were deleted."""
        now = time.time() if now is None else now
        deleted = 0
        with self._transaction() as db:
            deleted += self._delete(db, f"epoch < ? AND {_DELETABLE}", (now - config.max_age_days * 86400,))
            excess = db.execute("SELECT COUNT(*) FROM events").fetchone()[0] - config.max_events
            if excess > 0:
                deleted += self._delete(db, f"seq IN (SELECT seq FROM events WHERE {_DELETABLE} ORDER BY seq LIMIT ?)",
                                        (excess,))
            db.execute("DELETE FROM runs WHERE id NOT IN (SELECT id FROM runs ORDER BY id DESC LIMIT ?)",
                       (config.max_runs,))
        while (used := self.used_bytes()) > config.max_bytes:
            with self._transaction() as db:
                rows = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
                # Pages also hold indexes and the other tables, so estimate per event and go round again.
                batch = max(16, (used - config.max_bytes) * rows // max(used, 1))
                removed = self._delete(db, f"seq IN (SELECT seq FROM events WHERE {_DELETABLE} ORDER BY seq LIMIT ?)",
                                       (batch,))
            if removed == 0:
                break
            deleted += removed
        return deleted

    @staticmethod
    def _delete(db: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> int:
        seqs = [(row[0],) for row in db.execute(f"SELECT seq FROM events WHERE {where}", args)]
        db.executemany("DELETE FROM outbox WHERE event_seq = ?", seqs)
        db.executemany("DELETE FROM events WHERE seq = ?", seqs)
        return len(seqs)

    def integrity_ok(self) -> bool:
        with self._lock:
            return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "AlertStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
