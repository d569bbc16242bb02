"""The SQLite alert store: the source of truth every other sink follows.

An event is committed (WAL, `synchronous=FULL`) before it is written or published anywhere else, together with its
outbox row when a publisher (MQTT) will send it, in one transaction: a crash leaves either both or neither. The
publisher reads unsent outbox rows and marks them sent only after the broker acknowledged them, so an outage or a
restart loses nothing. Retention keeps a device that runs for months within its limits (event count, bytes, age;
oldest first, over every table that grows) and never deletes an event that is still waiting to be sent.

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
media, where WAL's `-shm` cannot be made) is opened in SQLite's immutable mode, which cannot see a `-wal`, so a
non-empty one there is an error that says so. A writer merges its `-wal` into the file when it closes, so the file
alone holds every event. The run's own connection (`owner`) sets a damaged file aside at start and survives the
file being deleted or replaced under it (`check_file`). Nothing secret is stored: the run's config goes through
`secrets.redact`.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fume_edge.alerts.event import END, AlertEvent
from fume_edge.alerts.secrets import redact
from fume_edge.config import Bytes, ConfigModel, Count, Days
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
EVENTS_PAGE = 100  # events per `events_after` read; a follower that gets fewer has caught up
SQLITE_HEADER_BYTES = 100  # the SQLite file header: magic string, then fields such as the application id
KILLED = "killed"  # end_reason of a run found without one by the next run (SIGKILL, power loss)

# An event may be deleted by retention only when nothing still has to publish it.
_DELETABLE = "NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_seq = events.seq AND o.sent_at IS NULL)"

log = logging.getLogger(__name__)

# The file identity (st_dev, st_ino) each owner in this process writes, by resolved path (None: a new file being
# made there): other connections wait for the owner to move on before following a new file at that path. While
# SQLite holds a file open its inode cannot be reused, so a different identity at the path means the file was
# deleted or replaced.
_OWNED: dict[str, tuple[int, int] | None] = {}


def _key(path: Path) -> str:
    return os.path.realpath(path)


def file_id(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file at `path`, or None when there is none."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def damage(path: Path) -> str | None:
    """What `PRAGMA quick_check` finds wrong with the fume-edge database at `path` (None: fine, absent, or not a
    SQLite file of ours, which the open then refuses by name without touching it)."""
    try:
        with open(path, "rb") as file:
            header = file.read(SQLITE_HEADER_BYTES)
    except FileNotFoundError:
        return None
    if len(header) < SQLITE_HEADER_BYTES or not header.startswith(b"SQLite format 3\0"):
        return None
    if int.from_bytes(header[68:72], "big") not in (0, APPLICATION_ID):
        return None
    db = sqlite3.connect(path)
    try:
        rows = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        db.close()
    return None if rows == ["ok"] else "; ".join(rows)


@dataclass(frozen=True)
class _Table:
    """A table retention bounds: its key, its time column, and which rows it may delete."""

    name: str
    key: str
    time: str
    deletable: str

    def delete(self, db: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> int:
        keys = [
            (row[0],)
            for row in db.execute(f"SELECT {self.key} FROM {self.name} WHERE {where} AND {self.deletable}", args)
        ]
        if self.name == "events":
            db.executemany("DELETE FROM outbox WHERE event_seq = ?", keys)
        db.executemany(f"DELETE FROM {self.name} WHERE {self.key} = ?", keys)
        return len(keys)

    def delete_oldest(self, db: sqlite3.Connection, count: int) -> int:
        return self.delete(
            db,
            f"{self.key} IN (SELECT {self.key} FROM {self.name} WHERE {self.deletable} ORDER BY {self.key} LIMIT ?)",
            (count,),
        )


_EVENTS = _Table("events", "seq", "epoch", _DELETABLE)
_SUBJECTS = _Table("subjects", "id", "epoch", "id < (SELECT MAX(id) FROM subjects)")  # the latest: current subject
_RUNS = _Table("runs", "id", "started_at", "id < (SELECT MAX(id) FROM runs)")  # the newest: this run
_GROWING = (_EVENTS, _SUBJECTS, _RUNS, _Table("summary", "id", "minute", "1"))


class StoreConfig(ConfigModel):
    """`sinks.sqlite` in run.yaml."""

    path: str
    max_events: Count
    max_bytes: Bytes
    max_age_days: Days
    max_runs: Count


class AlertStore:
    """The alert database at `path`. `readonly=True` opens an existing file for queries and never creates one.

    `owner=True` is the run's own writer (the sink worker): it sets a damaged file aside at open and, through
    `check_file()`, notices the file at `path` being deleted or replaced and moves to a fresh one. Every other
    connection follows the file at `path` once the owner has moved on (`fume-edge tag` then reaches it)."""

    def __init__(self, path: str | Path, *, readonly: bool = False, owner: bool = False) -> None:
        self.path = Path(path)
        self.readonly, self.owner = readonly, owner
        self._lock = threading.RLock()
        if readonly and not self.path.is_file():
            raise FumeEdgeError(f"{self.path}: no alert database here; pass --db with the file `fume-edge run` wrote")
        self._open()
        self._identity = file_id(self.path)
        self._checked_seq = 0  # events up to this sequence number are known to be in the file at `path`
        self._carry: dict[str, list[sqlite3.Row]] | None = None  # rows on their way to a new file (`check_file`)
        if owner:
            _OWNED[_key(self.path)] = self._identity
            self._checked_seq = self.last_seq()

    def _open(self) -> None:
        try:
            if self.readonly:
                self._db = sqlite3.connect(
                    self._readonly_uri(), uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self.owner:
                    self._set_aside_if_damaged()
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA busy_timeout = 5000")
            self._migrate(self.readonly)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise FumeEdgeError(
                f"{self.path}: cannot open as an alert database ({exc}); free space on its disk "
                "or pass a writable path to a fume-edge alert database"
            ) from None

    def _readonly_uri(self) -> str:
        """A folder we cannot write (read-only media) has no writer either, and WAL's -shm cannot be created there:
        immutable mode reads the file as it is, and so cannot see events still in a `-wal` beside it."""
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        if os.access(self.path.resolve().parent, os.W_OK):
            return uri
        wal = Path(f"{self.path}-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            raise FumeEdgeError(
                f"{self.path}: {wal.name} beside it holds events not yet merged into the file, and "
                f"this read-only folder cannot merge them; copy {self.path.name} and {wal.name} to "
                "a writable folder and read them there (fume-edge alerts --db COPY)"
            )
        return uri + "&immutable=1"

    def _set_aside_if_damaged(self) -> None:
        """PRAGMA quick_check before the run writes: a damaged database (and its -wal) is renamed
        `<name>.corrupt-<time>` with one log line, and a new one is started, so the device keeps alerting."""
        problem = damage(self.path)
        if problem is None:
            return
        aside = self.path.with_name(f"{self.path.name}.corrupt-{_stamp()}")
        for suffix in ("", "-wal"):
            if Path(f"{self.path}{suffix}").exists():
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        Path(f"{self.path}-shm").unlink(missing_ok=True)
        log.error(
            "%s: the alert database is damaged (%s); moved aside to %s and started a new one",
            self.path,
            problem,
            aside.name,
        )

    def _migrate(self, readonly: bool) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise FumeEdgeError(
                f"{self.path}: alert database schema v{version} is newer than this fume-edge "
                f"understands (v{len(MIGRATIONS)}); upgrade fume-edge"
            )
        self._refuse_foreign(version)  # before anything (even the journal mode) changes the file
        if not readonly:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
        if version < len(MIGRATIONS) and readonly:
            raise FumeEdgeError(
                f"{self.path}: alert database schema v{version} is older than v{len(MIGRATIONS)}; "
                "open it once with `fume-edge run` to upgrade it"
            )
        for number in range(version + 1, len(MIGRATIONS) + 1):
            # executescript commits first; the BEGIN..COMMIT makes each migration and its version bump atomic.
            self._db.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[number - 1]} PRAGMA user_version = {number}; COMMIT;")
        if version == 0 and not readonly:
            self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    def _refuse_foreign(self, version: int) -> None:
        """A database another program made (its own tables, or another application id) is not ours to change."""
        app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        tables = {
            row[0]
            for row in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        foreign = app_id not in (0, APPLICATION_ID) or (version == 0 and tables) or (version > 0 and TABLES - tables)
        if foreign:
            shown = ", ".join(sorted(tables)[:5]) or "none"
            raise FumeEdgeError(
                f"{self.path}: not a fume-edge alert database (tables: {shown}); it belongs to "
                "another program and is left untouched; pass --alerts/--db with another file"
            )

    @property
    def schema_version(self) -> int:
        with self._use() as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    @property
    def lock(self) -> threading.RLock:
        """Held around a group of calls that other threads must not see half done (the publisher waits on it)."""
        return self._lock

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._use() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full) may leave the transaction open: end it, so the next try starts clean.
                if db.in_transaction:
                    db.execute("ROLLBACK")
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
                (
                    event.event_id,
                    event.id,
                    event.type,
                    event.state,
                    event.epoch,
                    run_id,
                    event.to_json(),
                    event.subject,
                    event.station,
                ),
            ).lastrowid
            if publish:
                db.execute("INSERT INTO outbox (event_seq, queued_at) VALUES (?, ?)", (seq, time.time()))
            return int(seq)  # type: ignore[arg-type]

    def last_seq(self) -> int:
        with self._use() as db:
            return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def events_after(self, seq: int, limit: int = EVENTS_PAGE) -> list[tuple[int, AlertEvent]]:
        """Committed events after sequence number `seq`, oldest first (what a follower sink has not written yet)."""
        with self._use() as db:
            rows = db.execute(
                "SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            ).fetchall()
        return [(int(row["seq"]), AlertEvent.from_row(row)) for row in rows]

    def unsent(self, limit: int, exclude: frozenset[int] = frozenset()) -> list[tuple[int, AlertEvent]]:
        """The oldest outbox events not yet acknowledged, skipping sequence numbers in `exclude` (in flight)."""
        marks = ",".join("?" * len(exclude))
        with self._use() as db:
            rows = db.execute(
                "SELECT e.seq, e.payload FROM outbox o JOIN events e ON e.seq = o.event_seq "
                f"WHERE o.sent_at IS NULL AND o.event_seq NOT IN ({marks}) ORDER BY o.event_seq LIMIT ?",
                (*sorted(exclude), limit),
            ).fetchall()
        return [(int(row["seq"]), AlertEvent.from_row(row)) for row in rows]

    def unsent_count(self) -> int:
        with self._use() as db:
            return int(db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])

    def mark_sent(self, seqs: list[int]) -> None:
        """Mark outbox rows acknowledged by the broker."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE outbox SET sent_at = ? WHERE event_seq = ? AND sent_at IS NULL",
                [(time.time(), seq) for seq in seqs],
            )

    def unsent_snapshots(self) -> set[str]:
        """Snapshot paths of events still waiting in the outbox: snapshot retention must keep them."""
        with self._use() as db:
            rows = db.execute(
                "SELECT json_extract(e.payload, '$.snapshot') FROM outbox o JOIN events e ON e.seq = o.event_seq "
                "WHERE o.sent_at IS NULL AND json_extract(e.payload, '$.snapshot') IS NOT NULL"
            ).fetchall()
        return {row[0] for row in rows}

    def events(
        self,
        *,
        since: float | None = None,
        alert_type: str | None = None,
        limit: int | None = None,
        subject: str | None = None,
        until: float | None = None,
        offset: int = 0,
        station: str | None = None,
    ) -> list[AlertEvent]:
        """Events in time order, optionally from epoch `since` on (before `until`), of one type, of one subject
        and of one station; `limit` keeps the newest, after skipping the `offset` newest (pages of history)."""
        where, args = ["1"], list[Any]()
        for clause, value in (
            ("epoch >= ?", since),
            ("epoch < ?", until),
            ("type = ?", alert_type),
            ("subject = ?", subject),
            ("station = ?", station),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        query = f"SELECT seq, payload FROM events WHERE {' AND '.join(where)} ORDER BY seq DESC"
        if limit is not None or offset:
            query += f" LIMIT {-1 if limit is None else int(limit)} OFFSET {int(offset)}"
        with self._use() as db:
            rows = db.execute(query, args).fetchall()
        return [AlertEvent.from_row(row) for row in reversed(rows)]

    def open_alerts(self) -> list[AlertEvent]:
        """The latest event of every alert that has no end event (left open by a crash or power loss)."""
        with self._use() as db:
            rows = db.execute(
                "SELECT seq, payload FROM events WHERE seq IN (SELECT MAX(seq) FROM events GROUP BY alert_id) "
                "AND alert_id NOT IN (SELECT alert_id FROM events WHERE state = ?) ORDER BY seq",
                (END,),
            ).fetchall()
        return [AlertEvent.from_row(row) for row in rows]

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows of one read query (for tables other alert modules own: `subjects`, `summary`)."""
        with self._use() as db:
            return db.execute(sql, args).fetchall()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """One write statement in its own committed transaction; returns the rows it changed."""
        with self._transaction() as db:
            return int(db.execute(sql, args).rowcount)

    def begin_run(self, device_id: str, model_sha: str | None, config: Mapping[str, Any] | None = None) -> int:
        """Record a new run (its config redacted); earlier runs that never recorded an end were killed."""
        stored = json.dumps(redact(json.loads(json.dumps(config, default=str))))
        with self._transaction() as db:
            db.execute("UPDATE runs SET end_reason = ? WHERE end_reason IS NULL", (KILLED,))
            cursor = db.execute(
                "INSERT INTO runs (started_at, device_id, model_sha, config) VALUES (?,?,?,?)",
                (time.time(), device_id, model_sha, stored),
            )
            return int(cursor.lastrowid)  # type: ignore[arg-type]

    def update_run(self, run_id: int, stats: Mapping[str, Any] | None, end_reason: str | None = None) -> None:
        """Store the run's latest counters (None keeps the previous ones); with `end_reason` also its end time."""
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET stats = COALESCE(?, stats), end_reason = COALESCE(?, end_reason), "
                "ended_at = CASE WHEN ? IS NULL THEN ended_at ELSE ? END WHERE id = ?",
                (
                    None if stats is None else json.dumps(stats, default=str),
                    end_reason,
                    end_reason,
                    time.time(),
                    run_id,
                ),
            )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._use() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [
            {**dict(row), "config": json.loads(row["config"] or "null"), "stats": json.loads(row["stats"] or "null")}
            for row in rows
        ]

    def used_bytes(self) -> int:
        """Bytes of the database in use (freed pages are reused, so this is what retention bounds)."""
        with self._use() as db:
            pages = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
            return int(pages * db.execute("PRAGMA page_size").fetchone()[0])

    def enforce_retention(self, config: StoreConfig, now: float | None = None) -> int:
        """Keep every growing table within the limits: rows older than `max_age_days` go, events and subject
        changes beyond `max_events` and runs beyond `max_runs` go (oldest first), then, while the pages in use
        exceed `max_bytes`, the oldest subject changes and then the oldest rows of the largest table. Never
        deleted: an event still waiting to be sent, the latest subject change (the current subject) and the
        newest run (this one). Returns how many events were deleted."""
        now = time.time() if now is None else now
        deleted = 0
        with self._transaction() as db:
            for table in _GROWING:
                removed = table.delete(db, f"{table.time} < ?", (now - config.max_age_days * 86400,))
                deleted += removed if table.name == "events" else 0
            for table, limit in (
                (_EVENTS, config.max_events),
                (_SUBJECTS, config.max_events),
                (_RUNS, config.max_runs),
            ):
                excess = db.execute(f"SELECT COUNT(*) FROM {table.name}").fetchone()[0] - limit
                removed = table.delete_oldest(db, excess) if excess > 0 else 0
                deleted += removed if table is _EVENTS else 0
        while (used := self.used_bytes()) > config.max_bytes:
            with self._transaction() as db:
                sizes = dict(
                    db.execute(
                        "SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat s JOIN sqlite_master m "
                        "ON m.name = s.name GROUP BY m.tbl_name"
                    ).fetchall()
                )
                removed = 0
                # Subject changes give way first (each event keeps its own subject), then the largest table.
                for table in sorted(_GROWING, key=lambda t: (t is not _SUBJECTS, -sizes.get(t.name, 0))):
                    rows = db.execute(f"SELECT COUNT(*) FROM {table.name}").fetchone()[0]
                    # Estimate the rows to delete from the table's share of the excess; go round again if short.
                    batch = max(16, (used - config.max_bytes) * rows // max(sizes.get(table.name, 0), 1))
                    removed = table.delete_oldest(db, batch)
                    if removed:
                        deleted += removed if table is _EVENTS else 0
                        break
            if removed == 0:
                break
        return deleted

    def integrity_ok(self) -> bool:
        with self._use() as db:
            return bool(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    @contextmanager
    def _use(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; a non-owner first follows the file at `path` if it changed."""
        with self._lock:
            if self._carry is not None:
                self._settle()
            elif not self.owner:
                self._follow_path()
            yield self._db

    def _follow_path(self) -> None:
        """Reopen when another file is at `path` now (a run recreated a deleted database), unless this process's
        owner still writes the old one: its -wal would be read onto the new file. A missing file keeps the old."""
        now = file_id(self.path)
        if now is None or now == self._identity or _OWNED.get(_key(self.path), now) != now:
            return
        self._identity, old = now, self._db
        try:
            self._open()
        except FumeEdgeError:  # someone else's file: keep reading the old one; said once, on this call
            if self._db is not old:
                self._db.close()
            self._db = old
            raise
        old.close()

    def check_file(self) -> str | None:
        """The owner's check, after each commit and at each retention tick: is the file at `path` still the one
        being written? When it was deleted, a new database is started at `path`; when another file took its place,
        that file is left untouched and a new database is started beside it. Either way the events not yet known
        to be in the file at `path`, and those still waiting to be sent, move along. Logs and returns what
        happened (once per incident), or None when all is well."""
        with self._lock:
            now = file_id(self.path)
            if now == self._identity or self._carry is not None:
                self._checked_seq = self.last_seq()  # (a move still pending completes here first)
                return None
            old = self.path
            target = old if now is None else old.with_name(f"{old.stem}-{_stamp()}{old.suffix}")
            what = "was deleted" if now is None else "was replaced by another file (left untouched)"
            message = (
                f"{old}: the alert database {what} while running; the events not yet stored there or not "
                f"yet sent go on in a new database at {target}, earlier ones are only in the JSONL file "
                "if one is written"
            )
            log.error("%s", message)
            self._leave(target)
            self._settle()
            return message

    def _leave(self, target: Path) -> None:
        """Take this run's row, the current subject, and the events after the last good check or still unsent
        out of the old file, merge its -wal into it (so nothing of it is ever read onto a file at the same path)
        and close it; `_settle` then writes them into the new database at `target`."""
        db = self._db
        carry = {
            "events": db.execute(
                "SELECT * FROM events WHERE seq > ? OR seq IN "
                "(SELECT event_seq FROM outbox WHERE sent_at IS NULL) ORDER BY seq",
                (self._checked_seq,),
            ).fetchall(),
            "outbox": db.execute(
                "SELECT * FROM outbox WHERE event_seq > ? OR sent_at IS NULL", (self._checked_seq,)
            ).fetchall(),
            "runs": db.execute(
                "SELECT * FROM runs WHERE end_reason IS NULL OR id IN (SELECT run_id FROM events WHERE seq > ?)",
                (self._checked_seq,),
            ).fetchall(),
            "subjects": db.execute("SELECT * FROM subjects ORDER BY id DESC LIMIT 1").fetchall(),
            "sqlite_sequence": db.execute("SELECT name, seq FROM sqlite_sequence").fetchall(),
        }
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # closing (the last connection to it) tries again
            log.warning("%s: the old file's -wal was not merged (%s)", self.path, exc)
        db.close()
        _OWNED.pop(_key(self.path), None)
        _OWNED[_key(target)] = None  # being made: other connections wait until `_settle` has filled it
        self.path, self._carry = target, carry

    def _settle(self) -> None:
        """Create the new database and store what `_leave` carried, keeping sequence numbers, so JSONL and MQTT
        follow on unchanged. A failure (a full disk) raises and is tried again by the next use of the store."""
        carry = self._carry
        assert carry is not None
        self._db.close()  # the old file's, or a failed try's
        self._open()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for table, rows in carry.items():
                if table == "sqlite_sequence":  # numbering goes on where the old file left off
                    for name, seq in rows:
                        db.execute(
                            "INSERT INTO sqlite_sequence (name, seq) SELECT ?, 0 WHERE NOT EXISTS "
                            "(SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                            (name, name),
                        )
                        db.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", (seq, name))
                    continue
                for row in rows:
                    names = ",".join(row.keys())
                    db.execute(
                        f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({','.join('?' * len(row))})", tuple(row)
                    )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._carry = None
        self._checked_seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
        self._identity = file_id(self.path)
        _OWNED[_key(self.path)] = self._identity

    def close(self) -> None:
        """A writer merges its -wal into the file before closing (`wal_checkpoint(TRUNCATE)`), so the database
        file alone holds every event: a copy of it, or the file on read-only media, misses nothing."""
        with self._lock:
            if self._carry is not None:  # the new file could not be made before shutdown's deadline
                log.error(
                    "%s: %d events of the deleted or replaced alert database could not be stored in a new "
                    "one; they are only in the JSONL file, if one is written",
                    self.path,
                    len(self._carry["events"]),
                )
            elif not self.readonly:
                try:
                    busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                    if busy:
                        log.warning(
                            "%s: a reader kept the -wal from being merged at close; the next open merges it", self.path
                        )
                except sqlite3.Error as exc:
                    log.warning("%s: the -wal was not merged at close (%s); the next open merges it", self.path, exc)
            if self.owner and _OWNED.get(_key(self.path), False) in (self._identity, None):
                del _OWNED[_key(self.path)]
            self._db.close()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
