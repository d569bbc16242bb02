"""The sink worker: one thread that takes alert events off a bounded queue and stores them, SQLite first.

The inference loop calls `submit()`, which never waits on a disk or a network: it puts the events (and, for
events that get a snapshot, references to the paired frames) on a queue and returns. The worker thread then, per
event and in order: renders the snapshot PNG in memory, writes it and commits the event to SQLite in one step
under the store's lock (the PNG is removed again if the commit fails, so no snapshot outlives a lost event; an
event whose snapshot could not be written says `snapshot: null`), then appends to JSONL and wakes the MQTT
publisher. JSONL and MQTT follow SQLite (the JSONL writer takes committed rows by sequence number, MQTT the outbox),
so nothing anywhere holds an event the database lacks.

A failed commit (a full disk) is retried with backoff, never skipped: the event waits at the head of the queue,
later ones wait behind it, and the status shows the step that is failing. When space returns every event is stored,
in order. The queue is bounded (`queue_size`): an overflow drops and counts events and raises `sink_degraded`
(stored with the number dropped once the sinks work again). At shutdown the worker keeps retrying for
`stop_timeout_s`; what is still not stored then is counted as `unstored` and `run` exits nonzero.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from typing import Annotated, Any
from collections.abc import Callable, Mapping, Sequence

from pydantic import Field, model_validator

from fume_edge.alerts.event import (
    DEFAULT_STATION,
    END,
    INTERRUPTED,
    SINK_DEGRADED,
    START,
    AlertEvent,
    ModelSha,
    iso_utc,
    model_sha_now,
    new_id,
)
from fume_edge.alerts.jsonl import JsonlConfig, JsonlWriter
from fume_edge.alerts.mqtt import MqttConfig, MqttPublisher
from fume_edge.alerts.snapshot import SnapshotConfig, SnapshotDir, SnapshotFrames, encode_png, render_snapshot
from fume_edge.alerts.store import EVENTS_PAGE, AlertStore, StoreConfig
from fume_edge.alerts.summary import SummaryRow, prune_summary, record_summary
from fume_edge.config import ConfigModel, PositiveSeconds, Seconds
from fume_edge.errors import FumeEdgeError

log = logging.getLogger(__name__)

STORAGE_ERRORS = (sqlite3.Error, OSError, FumeEdgeError)  # what a full, failing or vanished disk raises


class SinksConfig(ConfigModel):
    """The `sinks:` section of run.yaml (defaults and their reasons are documented there)."""

    queue_size: Annotated[int, Field(ge=1, le=1_000_000)]
    retention_interval_s: PositiveSeconds
    retry_min_s: PositiveSeconds
    retry_max_s: PositiveSeconds
    stop_timeout_s: Seconds
    sqlite: StoreConfig
    jsonl: JsonlConfig
    mqtt: MqttConfig
    snapshots: SnapshotConfig

    @model_validator(mode="after")
    def _ordered(self) -> SinksConfig:
        if self.retry_min_s > self.retry_max_s:
            raise ValueError("retry_min_s: must be <= retry_max_s")
        return self


@dataclass(frozen=True)
class SinkStats:
    """Counters for the live status view and the run summary."""

    queued: int  # events waiting for the worker (in memory; kept while a commit is retried)
    written: int  # events committed to SQLite
    dropped: int  # events lost to a full queue (each overflow also raises `sink_degraded`)
    unstored: int  # events still not committed when shutdown gave up waiting for the disk
    errors: int  # failed sink steps (each retried, or logged when it has no retry)
    failing: str | None  # the step being retried right now ("SQLite", "JSONL"), None when all is well
    snapshots: int  # snapshot files written
    snapshots_skipped: int  # snapshots skipped because too many queued events already held frames
    snapshots_failed: int  # snapshot writes that failed (the event then has `snapshot: null`)
    mqtt_connected: bool | None  # None: MQTT off
    mqtt_sent: int
    mqtt_unsent: int
    mqtt_connect_failures: int  # failed connection attempts (the outage itself is logged once)

    @property
    def lost(self) -> int:
        """Events that never reached the database."""
        return self.dropped + self.unstored


@dataclass(frozen=True)
class _Item:
    event: AlertEvent
    frames: SnapshotFrames | None


class SinkWorker:
    """Opens every configured sink (a bad path or URL fails here, in the caller's thread, as one line), then writes
    submitted events from its own thread between `start()` and `stop()`. Also a context manager."""

    def __init__(
        self,
        config: SinksConfig,
        *,
        device_id: str,
        model_sha: ModelSha = None,
        run_config: Mapping[str, Any] | None = None,
        stations: tuple[str, ...] = (DEFAULT_STATION,),
    ) -> None:
        self.config = config
        self.device_id = device_id
        self.model_sha = model_sha
        self.run_config = run_config
        self.store = AlertStore(config.sqlite.path, owner=True)
        self.jsonl = JsonlWriter(config.jsonl) if config.jsonl.path else None
        self.snapshots = SnapshotDir(config.snapshots) if config.snapshots.dir else None
        self.mqtt = (
            MqttPublisher(config.mqtt, self.store, device_id, model_sha=model_sha_now(model_sha), stations=stations)
            if config.mqtt.url
            else None
        )
        self.run_id: int | None = None
        self._queue: queue.Queue[_Item | SummaryRow] = queue.Queue(maxsize=config.queue_size)
        self._thread = threading.Thread(target=self._run, name="fume-edge-sinks", daemon=True)
        self._lock = threading.Lock()
        self._pending_frames = 0
        self._counts = dict(
            written=0, dropped=0, unstored=0, errors=0, snapshots=0, snapshots_skipped=0, snapshots_failed=0
        )
        self._overflow: tuple[float, float] | None = None  # (wall, monotonic) of the first drop not yet reported
        self._latest_stats: dict[str, Any] | None = None  # pipeline counters not yet stored
        self._final: tuple[dict[str, Any] | None, str] | None = None  # (stats, end reason), set by stop()
        self._jsonl_seq = 0  # the last committed sequence number the JSONL file has
        self._failing: str | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._deadline = float("inf")

    def start(self) -> None:
        """Record the run, end alerts a crashed run left open (`interrupted`), apply retention, start the threads.
        A database that cannot be written (a full disk) is one clear error here."""
        try:
            self.run_id = self.store.begin_run(self.device_id, model_sha_now(self.model_sha), self.run_config)
            self._jsonl_seq = self.store.last_seq()
            for last in self.store.open_alerts():
                now = iso_utc(time.time())  # the old run's monotonic clock is gone: keep its last frame time
                self.store.record(
                    replace(
                        last,
                        event_id=new_id(),
                        state=END,
                        reason=INTERRUPTED,
                        time=now,
                        end_time=now,
                        end_mono=last.mono,
                        snapshot=None,
                    ),
                    publish=self.mqtt is not None,
                    run_id=self.run_id,
                )
        except (sqlite3.Error, OSError) as exc:
            raise FumeEdgeError(
                f"{self.store.path}: cannot write to the alert database ({exc}); free space on "
                "its disk or pass --alerts with a writable path"
            ) from None
        self._follow_jsonl()
        self._retention()
        if self.mqtt is not None:
            self.mqtt.start()
        self._thread.start()

    def submit(self, events: Sequence[AlertEvent], frames: SnapshotFrames | None = None) -> None:
        """Hand events to the sinks without blocking. `frames` are the pair the events were raised on; they are
        kept (not copied) only when one of the events gets a snapshot."""
        for event in events:
            keep = frames is not None and self.snapshots is not None and self.snapshots.wants(event)
            with self._lock:
                if keep and self._pending_frames >= self.config.snapshots.max_pending:
                    keep = False
                    self._counts["snapshots_skipped"] += 1
                self._pending_frames += keep
            try:
                self._queue.put_nowait(_Item(event, frames if keep else None))
            except queue.Full:
                with self._lock:
                    self._counts["dropped"] += 1
                    self._pending_frames -= keep
                    first = self._overflow is None
                    if first:
                        self._overflow = (time.time(), time.monotonic())
                if first:
                    log.error(
                        "alert sink queue full (%d events waiting): dropping events until it drains; "
                        "sink_degraded is raised",
                        self.config.queue_size,
                    )

    def record_stats(self, stats: Mapping[str, Any]) -> None:
        """Store the pipeline's counters in this run's row (the worker writes the latest; never blocks)."""
        with self._lock:
            self._latest_stats = dict(stats)

    def submit_summary(self, row: SummaryRow) -> None:
        """Queue one per-minute summary row for the alert store (never blocks; a full queue drops it)."""
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            log.warning("alert sink queue full: dropped the summary of minute %s", iso_utc(row.minute))

    def stats(self) -> SinkStats:
        with self._lock:
            counts = dict(self._counts)
        return SinkStats(
            queued=self._queue.qsize(),
            **counts,
            failing=self._failing,
            mqtt_connected=None if self.mqtt is None else self.mqtt.connected,
            mqtt_sent=0 if self.mqtt is None else self.mqtt.sent,
            mqtt_unsent=0 if self.mqtt is None else self.mqtt.unsent,
            mqtt_connect_failures=0 if self.mqtt is None else self.mqtt.connect_failures,
        )

    def stop(self, stats: Mapping[str, Any] | None = None, reason: str = "completed") -> None:
        """Write everything queued (retrying a failing disk for up to `stop_timeout_s`), end the run record
        (`reason`, final `stats`), drain MQTT for up to its `drain_timeout_s`, and close every sink. Call once,
        after the last `submit()`."""
        self._final = (None if stats is None else dict(stats), reason)
        self._deadline = time.monotonic() + self.config.stop_timeout_s
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.jsonl is not None:
            self.jsonl.close()
        self.store.close()

    def __enter__(self) -> SinkWorker:
        self.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop(reason="completed" if exc_type is None else "error")

    def _run(self) -> None:
        next_retention = time.monotonic() + self.config.retention_interval_s
        jsonl_ok = True
        while True:
            wait = max(next_retention - time.monotonic(), 0.0) if jsonl_ok else self.config.retry_max_s
            try:
                item: _Item | SummaryRow | None = self._queue.get(
                    timeout=0.05 if self._stopping.is_set() else min(wait, 0.5)
                )
            except queue.Empty:
                item = None
            if isinstance(item, SummaryRow):
                self._attempt("summary", record_summary, self.store, item)
            elif item is not None:
                self._write(item)
            if self._queue.empty():
                self._report_overflow()
            jsonl_ok = self._follow_jsonl()
            if item is None and self._stopping.is_set() and self._queue.empty():
                break
            self._store_stats()
            if time.monotonic() >= next_retention:
                self._retention()
                next_retention = time.monotonic() + self.config.retention_interval_s
        while not self._follow_jsonl() and time.monotonic() < self._deadline:
            time.sleep(self.config.retry_min_s)  # JSONL still failing at shutdown: keep trying until the deadline
        stats, reason = self._final or (None, "completed")
        with self._lock:
            latest, self._latest_stats = self._latest_stats, None
        self._retry("run statistics", self.store.update_run, self.run_id, stats or latest, reason)

    def _write(self, item: _Item) -> None:
        event, png = item.event, None
        if (frames := item.frames) is not None and self.snapshots is not None:
            _, png = self._attempt("snapshot render", lambda: encode_png(render_snapshot(frames, event)))
            with self._lock:
                self._pending_frames -= 1
        if self._commit(event, png):
            self._count("written")
            self._check_database()
            if self.mqtt is not None:
                self.mqtt.notify()
        else:
            self._count("unstored")
            log.error(
                "alert %s %s event %s could not be stored before shutdown", event.type, event.state, event.event_id
            )

    def _commit(self, event: AlertEvent, png: bytes | None) -> bool:
        """Write the snapshot and commit the event as one step under the store's lock (retried until it
        succeeds, or shutdown's deadline passes). False: not stored."""
        snapshots = self.snapshots
        tries = 0

        def step() -> None:
            nonlocal tries
            tries += 1
            stored, written, path = event, None, None
            with self.store.lock:
                if png is not None and snapshots is not None:
                    path = snapshots.path_for(event)
                    try:
                        snapshots.write(path, png)
                        written = True
                    except OSError as exc:
                        written = False
                        if tries == 1:  # once per event, not once per retry of a full disk
                            log.error(
                                "alert sink: snapshot %s not written (%s); the event says it has none", path.name, exc
                            )
                    stored = replace(event, snapshot=str(path) if written else None)
                try:
                    self.store.record(stored, publish=self.mqtt is not None, run_id=self.run_id)
                except BaseException:
                    if written and path is not None:
                        path.unlink(missing_ok=True)  # never a snapshot of an event the database lacks
                    raise
            if written is not None:
                self._count("snapshots" if written else "snapshots_failed")
                self._count("errors", not written)

        stored, _ = self._retry("SQLite", step)
        return stored

    def _follow_jsonl(self) -> bool:
        """Append the committed events the JSONL file does not have yet. False while it fails (retried later)."""
        if self.jsonl is None:
            return True
        while True:
            try:
                rows = self.store.events_after(self._jsonl_seq)
                for seq, event in rows:
                    self.jsonl.write(event)
                    self._jsonl_seq = seq
            except STORAGE_ERRORS as exc:
                self._failed("JSONL", exc)
                return False
            self._recovered("JSONL")
            if len(rows) < EVENTS_PAGE:  # a short page: caught up
                return True

    def _report_overflow(self) -> None:
        """Store `sink_degraded` (start at the first drop, end now, `detail.dropped`) once the queue has drained."""
        with self._lock:
            overflow, self._overflow = self._overflow, None
            dropped = self._counts["dropped"]
        if overflow is None:
            return
        wall, mono = overflow
        first = AlertEvent(
            id=new_id(),
            event_id=new_id(),
            type=SINK_DEGRADED,
            state=START,
            device_id=self.device_id,
            camera_ids=(),
            time=iso_utc(wall),
            mono=mono,
            start_time=iso_utc(wall),
            start_mono=mono,
            model_sha=model_sha_now(self.model_sha),
            detail={"queue_size": self.config.queue_size},
        )
        now, now_mono = iso_utc(time.time()), time.monotonic()
        last = replace(
            first,
            event_id=new_id(),
            state=END,
            reason="recovered",
            time=now,
            mono=now_mono,
            end_time=now,
            end_mono=now_mono,
            detail={"queue_size": self.config.queue_size, "dropped": dropped},
        )
        for event in (first, last):
            self._write(_Item(event, None))

    def _store_stats(self) -> None:
        if self._failing is not None:
            return  # the disk is failing: counters wait (the newest are kept) until it works again
        with self._lock:
            latest, self._latest_stats = self._latest_stats, None
        if latest is not None:
            ok, _ = self._attempt("run statistics", self.store.update_run, self.run_id, latest)
            if not ok:
                with self._lock:  # keep them for the next try unless newer ones arrived
                    self._latest_stats = self._latest_stats or latest

    def _check_database(self) -> None:
        """After each commit and retention tick: a database deleted or replaced under the run is an error (the
        health turns unhealthy), logged once by the store, which moves to a new file with the events at risk."""
        _, problem = self._attempt("alert database check", self.store.check_file)
        self._count("errors", bool(problem))  # the store logged it

    def _retention(self) -> None:
        self._check_database()
        _, deleted = self._attempt("retention", self.store.enforce_retention, self.config.sqlite)
        if deleted:
            log.info("alert store retention removed %d old events", deleted)
        self._attempt("summary retention", prune_summary, self.store, self.config.sqlite, time.time())
        snapshots = self.snapshots
        if snapshots is not None:
            self._attempt("snapshot retention", lambda: snapshots.prune(self.store.unsent_snapshots()))

    def _count(self, name: str, happened: bool = True) -> None:
        with self._lock:
            self._counts[name] += int(happened)

    def _failed(self, what: str, exc: BaseException) -> None:
        """Count a failed step; log it once per outage (not once per retry)."""
        self._count("errors")
        if self._failing != what:
            self._failing = what
            log.error("alert sink: %s failed (%s); retrying with backoff, events wait in memory", what, exc)

    def _recovered(self, what: str) -> None:
        if self._failing == what:
            self._failing = None
            log.warning("alert sink: %s works again", what)

    def _retry(self, what: str, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """Run a storage step until it succeeds, waiting retry_min_s doubling to retry_max_s between tries; after
        `stop()` only until its deadline. Returns (succeeded, result)."""
        delay = self.config.retry_min_s
        while True:
            try:
                result = fn(*args)
            except STORAGE_ERRORS as exc:
                self._failed(what, exc)
                remaining = self._deadline - time.monotonic()
                if self._stopping.is_set() and remaining <= 0:
                    return False, None
                if self._wake.wait(min(delay, remaining)):
                    self._wake.clear()  # stop() set it: go round once more with the deadline in force
                delay = min(delay * 2, self.config.retry_max_s)
                continue
            except Exception as exc:  # not the disk (a bug, an unencodable event): retrying cannot help
                log.error("alert sink: %s failed (%s); not retried", what, exc)
                self._count("errors")
                return False, None
            self._recovered(what)
            return True, result

    def _attempt(self, what: str, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """Run one step that has no retry of its own (a snapshot, retention, counters): a failure is logged and
        counted, never stops the worker. Returns (succeeded, result)."""
        try:
            return True, fn(*args)
        except Exception as exc:
            log.error("alert sink step failed: %s (%s)", what, exc)
            self._count("errors")
            return False, None
