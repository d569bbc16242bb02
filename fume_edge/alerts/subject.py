"""The current subject (animal or sample id): set from the web page, MQTT or `fume-edge tag`, logged in SQLite.

Every way of setting it writes one row to the `subjects` table of the alert database (time, id or NULL for none,
where it came from, and the station it is for: NULL for every station), so the table is the log of changes and a
station's current subject is its latest row or the latest row for every station, whichever is newer. A running
`fume-edge run` follows the rows with `SubjectWatcher` (a cheap indexed read once a second, on its own thread),
so `fume-edge tag [--station ID]` from another shell needs no connection to the running process.
"""

from __future__ import annotations

import logging
import re
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

from fume_edge.alerts.event import iso_utc
from fume_edge.alerts.store import AlertStore
from fume_edge.errors import FumeEdgeError

log = logging.getLogger(__name__)

SOURCES = ("web", "mqtt", "cli")
_SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:/#-]{0,63}$")


@dataclass(frozen=True)
class SubjectChange:
    epoch: float
    subject: str | None
    source: str
    station: str | None = None  # None: every station


def check_subject(text: str | None, where: str = "subject") -> str | None:
    """A valid id (1-64 letters, digits, space . _ : / # -, starting with a letter or digit); empty means none."""
    if text is None or not text.strip():
        return None
    subject = text.strip()
    if not _SUBJECT.match(subject):
        raise FumeEdgeError(
            f"{where} {subject[:80]!r}: use 1-64 letters, digits, spaces or . _ : / # - "
            "(starting with a letter or digit), or an empty id to clear it"
        )
    return subject


def set_subject(
    store: AlertStore, subject: str | None, source: str, now: float | None = None, station: str | None = None
) -> SubjectChange:
    """Log a change of the current subject (None: no subject) of `station` (None: every station). `subject` must
    have passed `check_subject`."""
    if source not in SOURCES:
        raise ValueError(f"subject source {source!r} is not one of {SOURCES}")
    change = SubjectChange(time.time() if now is None else now, subject, source, station)
    store.execute(
        "INSERT INTO subjects (epoch, subject, source, station) VALUES (?,?,?,?)",
        (change.epoch, change.subject, change.source, change.station),
    )
    return change


def subject_history(store: AlertStore, limit: int = 20) -> list[SubjectChange]:
    """The newest changes first."""
    rows = store.query("SELECT epoch, subject, source, station FROM subjects ORDER BY id DESC LIMIT ?", (limit,))
    return [SubjectChange(row["epoch"], row["subject"], row["source"], row["station"]) for row in rows]


def current_subject(store: AlertStore, station: str | None = None) -> str | None:
    """The latest subject logged (any station), or (with `station`) the one that station has now: the latest set
    for it or for every station."""
    if station is None:
        rows = store.query("SELECT subject FROM subjects ORDER BY id DESC LIMIT 1")
    else:
        rows = store.query(
            "SELECT subject FROM subjects WHERE station IS NULL OR station = ? ORDER BY id DESC LIMIT 1", (station,)
        )
    return rows[0]["subject"] if rows else None


class SubjectWatcher:
    """Calls `on_change(subject, station)` (station None: every station) for the current subjects at start and for
    every change logged since in the alert database at `db` (read through its own read-only connection, closed on
    exit)."""

    def __init__(
        self, db: str | Path, on_change: Callable[[str | None, str | None], None], poll_s: float = 1.0
    ) -> None:
        self.store, self.on_change, self.poll_s = AlertStore(db, readonly=True), on_change, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fume-edge-subject", daemon=True)
        self._last_id: int | None = None

    def check(self) -> None:
        """Read the changes since the last check (also what the thread does every `poll_s`); the first check starts
        at the latest change for every station, since a change for every station overrides any before it."""
        if self._last_id is None:
            rows = self.store.query(
                "SELECT id, subject, station FROM subjects WHERE id >= COALESCE((SELECT MAX(id) "
                "FROM subjects WHERE station IS NULL), 0) ORDER BY id"
            )
            if not rows or rows[0]["station"] is not None:
                self.on_change(None, None)  # nothing set for every station: untagged, until a station's own row
        else:
            rows = self.store.query(
                "SELECT id, subject, station FROM subjects WHERE id > ? ORDER BY id", (self._last_id,)
            )
        self._last_id = rows[-1]["id"] if rows else (self._last_id or 0)
        for row in rows:
            self.on_change(row["subject"], row["station"])

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check()
            except Exception as exc:  # a locked or busy database: the next poll tries again
                log.warning("subject: cannot read the current subject (%s); retrying", exc)

    def __enter__(self) -> SubjectWatcher:
        self.check()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.store.close()


def tag_command(db: Path, text: str, station: str | None = None) -> None:
    """`fume-edge tag ID [--station S]`: log the change in `db`; a running `fume-edge run` picks it up within a
    second."""
    from fume_edge.console import console  # the command's output; the alert path itself needs no rich

    subject = check_subject(text, "tag")
    if not db.is_file():
        raise FumeEdgeError(f"{db}: no alert database here; pass --db with the file `fume-edge run` writes")
    with AlertStore(db) as store:
        change = set_subject(store, subject, "cli", station=station)
    hint = shlex.join(
        [
            "fume-edge",
            "alerts",
            "--db",
            str(db),
            *(["--station", station] if station else []),
            "--subject",
            subject or "ID",
        ]
    )  # pastes as is
    console.print(
        f"subject {'cleared' if subject is None else repr(subject)} at {iso_utc(change.epoch)}; "
        f"see its alerts with: {hint}",
        highlight=False,
        markup=False,
    )
