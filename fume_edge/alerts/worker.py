"""The sink worker: one thread that takes alert events off a bounded queue and writes them to every sink.

The inference loop calls `submit()`, which never waits on a disk or a network: it puts the events (and, for
events that get a snapshot, references to the paired frames) on a queue and returns. The worker thread then, per
event and in this order: renders the snapshot PNG in memory, commits the event to SQLite (with its outbox row when
MQTT is on), appends it to the JSONL file, writes the snapshot file, and wakes the MQTT publisher, which sends from
the outbox on its own thread. SQLite first: it is the source of truth, so nothing is visible anywhere that a
crash could lose from the database.

Back-pressure: the queue holds `queue_size` items; a full queue drops the event and counts it (the disk has been
stalled for a very long time by then). Frames are large, so at most `snapshots.max_pending` queued events hold
them; beyond that an event goes without its snapshot (counted).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

from fume_edge.alerts.event import END, INTERRUPTED, AlertEvent, iso_utc, new_id
from fume_edge.alerts.jsonl import JsonlConfig, JsonlWriter
from fume_edge.alerts.mqtt import MqttConfig, MqttPublisher
from fume_edge.alerts.snapshot import SnapshotConfig, SnapshotDir, SnapshotFrames, encode_png, render_snapshot
from fume_edge.alerts.store import AlertStore, StoreConfig
from fume_edge.alerts.summary import SummaryRow, prune_summary, record_summary
from fume_edge.errors import FumeEdgeError

log = logging.getLogger(__name__)


@dataclass
class SinksConfig:
    """The `sinks:` section of run.yaml (defaults and their reasons are documented there)."""

    queue_size: int
    retention_interval_s: float
    sqlite: StoreConfig
    jsonl: JsonlConfig
    mqtt: MqttConfig
    snapshots: SnapshotConfig

    def validate(self, where: str) -> None:
        if self.queue_size <= 0 or self.retention_interval_s <= 0:
            raise FumeEdgeError(f"{where}: need queue_size > 0 and retention_interval_s > 0")


@dataclass(frozen=True)
class SinkStats:
    """Counters for the live status view and the run summary."""

    queued: int  # items waiting for the worker
    written: int  # events committed to SQLite
    dropped: int  # events lost to a full queue
    errors: int  # sink write failures (SQLite, JSONL, snapshot), each logged
    snapshots: int  # snapshot files written
    snapshots_skipped: int  # snapshots skipped because too many queued events already held frames
    mqtt_connected: bool | None  # None: MQTT off
    mqtt_sent: int
    mqtt_unsent: int


@dataclass(frozen=True)
class _Item:
    event: AlertEvent
    frames: SnapshotFrames | None


@dataclass(frozen=True)
class _Stats:
    stats: dict[str, Any] | None
    end_reason: str | None


_STOP = object()


class SinkWorker:
    """Opens every configured sink (a bad path or URL fails here, in the caller's thread, as one line), then writes
    submitted events from its own thread between `start()` and `stop()`. Also a context manager."""

    def __init__(self, config: SinksConfig, *, device_id: str, model_sha: str | None = None,
                 run_config: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.device_id = device_id
        self.model_sha = model_sha
        self.run_config = run_config
        self.store = AlertStore(config.sqlite.path)
        self.jsonl = JsonlWriter(config.jsonl) if config.jsonl.path else None
        self.snapshots = SnapshotDir(config.snapshots) if config.snapshots.dir else None
        self.mqtt = MqttPublisher(config.mqtt, self.store, device_id) if config.mqtt.url else None
        self.run_id: int | None = None
        self._queue: queue.Queue[object] = queue.Queue(maxsize=config.queue_size)
        self._thread = threading.Thread(target=self._run, name="fume-edge-sinks", daemon=True)
        self._lock = threading.Lock()
        self._pending_frames = 0
        self._counts = dict(written=0, dropped=0, errors=0, snapshots=0, snapshots_skipped=0)

    def start(self) -> None:
        """Record the run, end alerts a crashed run left open (`interrupted`), apply retention, start the threads."""
        self.run_id = self.store.begin_run(self.device_id, self.model_sha, self.run_config)
        for last in self.store.open_alerts():
            now = iso_utc(time.time())  # the old run's monotonic clock is gone: keep its last known frame time
            self._write(replace(last, event_id=new_id(), state=END, reason=INTERRUPTED, time=now, end_time=now,
                                end_mono=last.mono, snapshot=None), None)
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
                log.error("alert sink queue full: dropped %s %s event %s", event.type, event.state, event.event_id)

    def record_stats(self, stats: Mapping[str, Any]) -> None:
        """Store the pipeline's counters in this run's row (written by the worker; never blocks)."""
        try:
            self._queue.put_nowait(_Stats(dict(stats), None))
        except queue.Full:
            pass  # counters are refreshed again later; alert events have the queue's room

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
            queued=self._queue.qsize(), **counts,
            mqtt_connected=None if self.mqtt is None else self.mqtt.connected,
            mqtt_sent=0 if self.mqtt is None else self.mqtt.sent,
            mqtt_unsent=0 if self.mqtt is None else self.mqtt.unsent,
        )

    def stop(self, stats: Mapping[str, Any] | None = None, reason: str = "completed") -> None:
        """Write everything queued, end the run record (`reason`, final `stats`), drain MQTT for up to its
        `drain_timeout_s`, and close every sink. Call once, after the last `submit()`."""
        if self._thread.is_alive():
            self._queue.put(_Stats(None if stats is None else dict(stats), reason))
            self._queue.put(_STOP)  # blocking is fine here: the worker is draining
            self._thread.join()
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.jsonl is not None:
            self.jsonl.close()
        self.store.close()

    def __enter__(self) -> "SinkWorker":
        self.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop(reason="completed" if exc_type is None else "error")

    def _run(self) -> None:
        next_retention = time.monotonic() + self.config.retention_interval_s
        while True:
            try:
                item = self._queue.get(timeout=max(next_retention - time.monotonic(), 0.0))
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            if isinstance(item, _Item):
                self._write(item.event, item.frames)
            elif isinstance(item, SummaryRow):
                self._attempt("summary", record_summary, self.store, item)
            elif isinstance(item, _Stats):
                self._attempt("run statistics", self.store.update_run, self.run_id, item.stats, item.end_reason)
            if time.monotonic() >= next_retention:
                self._retention()
                next_retention = time.monotonic() + self.config.retention_interval_s

    def _write(self, event: AlertEvent, frames: SnapshotFrames | None) -> None:
        png: bytes | None = None
        if frames is not None and self.snapshots is not None:
            ok, png = self._attempt("snapshot render", lambda: encode_png(render_snapshot(frames, event)))
            with self._lock:
                self._pending_frames -= 1
            path = self.snapshots.path_for(event)
            if ok:
                event = replace(event, snapshot=str(path))
        committed, _ = self._attempt("SQLite", self.store.record, event, publish=self.mqtt is not None,
                                     run_id=self.run_id)
        self._count("written", committed)
        if self.jsonl is not None:
            self._attempt("JSONL", self.jsonl.write, event)
        if png is not None and self.snapshots is not None:
            written, _ = self._attempt("snapshot write", self.snapshots.write, path, png)
            self._count("snapshots", written)
        if committed and self.mqtt is not None:
            self.mqtt.notify()

    def _retention(self) -> None:
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

    def _attempt(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, Any]:
        """Run one sink step; a failure is logged and counted, so one broken sink (say, a full disk for snapshots)
        never stops the others or the worker. Returns (succeeded, result)."""
        try:
            return True, fn(*args, **kwargs)
        except Exception:
            log.exception("alert sink step failed: %s", what)
            self._count("errors")
            return False, None
