"""Model updates in a running `fume-edge run`: a watcher thread follows `models/current`, loads the new model
off the loop thread, swaps it into the loop's `SwappableBackend` between two calls, then watches it for
`window_s`: an inference error, a non-finite output or a model call slower than `min_fps` rolls back to the
model that ran before (kept loaded until the window ends, so the rollback is a swap, not a load). A process that
dies inside the window (a crash, a kill) is counted by `model_to_run` when the run starts again: past
`max_restarts`, `current` goes back to the model before.

Every update step, this watcher's and those of a `bundle install` or `bundle rollback` from another process (the
CLI, the page, MQTT), is a line in `models/events.jsonl`; the watcher follows that file from the run's start and
hands each new record to `on_event` (the run passes `AlertService.model_event`, through an `EventRelay` when
the service is made after the watcher), so the steps reach the alert database and MQTT while a run is live."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fume_edge.bundle.store import EVENTS_NAME, ModelStore
from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.base import Backend, load_backend
from fume_edge.runtime.holder import ModelHealth, SwappableBackend


@dataclass(frozen=True)
class HealthSettings:
    window_s: float = 900.0  # how long a new model is watched after the swap
    min_fps: float = 5.0  # median model call, as the gate measures it
    min_calls: int = 10  # calls before the FPS is judged
    poll_s: float = 1.0  # how often models/current and the health are looked at
    max_restarts: int = 2  # unclean restarts of the run inside the window before the model is rolled back


WATCH_NAME = "watch.json"  # the model under watch, in the models folder: survives the process


def _write_watch(store: ModelStore, record: dict[str, Any] | None) -> None:
    path = store.root / WATCH_NAME
    if record is None:
        path.unlink(missing_ok=True)
        return
    temp = path.with_name(f".{WATCH_NAME}.tmp")
    temp.write_text(json.dumps(record), encoding="utf-8")
    temp.replace(path)


def _read_watch(store: ModelStore) -> dict[str, Any] | None:
    try:
        return json.loads((store.root / WATCH_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def model_to_run(store: ModelStore, settings: HealthSettings = HealthSettings()) -> Path | None:
    """The model file a starting run loads: models/current (None: nothing installed), unless the run keeps dying
    with it inside its health window; then current goes back to the model before it first."""
    current, watch = store.current(), _read_watch(store)
    if (
        current is not None
        and watch is not None
        and watch["version"] == current
        and time.time() - watch["since"] < settings.window_s
    ):
        restarts = watch["restarts"] + (1 if watch["running"] else 0)
        fallback = watch["fallback"]
        if restarts > settings.max_restarts and fallback is not None and store.installed(fallback) is not None:
            store.switch(fallback)
            _write_watch(store, None)
            store.event(
                "model_rolled_back",
                version=current,
                to=fallback,
                reason=f"{restarts} unclean restarts within the health window",
            )
        else:
            _write_watch(store, {**watch, "restarts": restarts, "running": True})
    return store.current_model()


EventSink = Callable[[dict[str, Any]], Any]
log = logging.getLogger("fume_edge.bundle")


class EventRelay:
    """`on_event` for a run whose alert service is made after the watcher (the service asks the watcher's holder
    for the model sha): records wait here until `connect(service.model_event)`, then pass straight through."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sink: EventSink | None = None
        self._waiting: list[dict[str, Any]] = []

    def connect(self, sink: EventSink) -> None:
        with self._lock:
            self._sink, waiting, self._waiting = sink, self._waiting, []
            for record in waiting:
                sink(record)

    def __call__(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self._sink is None:
                self._waiting.append(record)
                return
            self._sink(record)


class EventTail:
    """The records appended to `models/events.jsonl` since this object was made (whole lines only)."""

    def __init__(self, store: ModelStore) -> None:
        self.path = store.root / EVENTS_NAME
        try:
            self._offset = self.path.stat().st_size
        except FileNotFoundError:
            self._offset = 0

    def new(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        records = []
        for line in complete.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line torn by a power cut (the log keeps it; the alert sinks skip it)
        return records


@dataclass
class _Watch:
    version: str
    since: float
    fallback: Backend
    fallback_sha: str | None
    fallback_version: str | None


def failure(health: ModelHealth, settings: HealthSettings) -> str | None:
    """Why the model in use must go, or None while it is healthy."""
    if health.errors:
        return f"{health.errors} inference error(s)"
    if health.non_finite:
        return f"{health.non_finite} non-finite output(s) in {health.calls} calls"
    fps = health.fps
    if health.calls >= settings.min_calls and fps is not None and fps < settings.min_fps:
        return f"{fps:.1f} FPS < {settings.min_fps:g}"
    return None


class ModelUpdates:
    """The watcher thread; a context manager around the run (stops the thread, closes a kept fallback)."""

    def __init__(
        self,
        holder: SwappableBackend,
        store: ModelStore,
        settings: HealthSettings = HealthSettings(),
        loader: Callable[..., Backend] = load_backend,
        on_event: EventSink | None = None,
        **load_options: Any,
    ) -> None:
        self.holder, self.store, self.settings = holder, store, settings
        self._on_event = on_event
        self._events = EventTail(store)
        self._load = lambda path: loader(path, **load_options)
        self._stop = threading.Event()
        self._watch: _Watch | None = None
        self._refused: set[str] = set()  # versions rolled back with nothing installed to point current at
        self._thread = threading.Thread(target=self._run, name="model-updates", daemon=True)

    def __enter__(self) -> ModelUpdates:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._forward()
        if self._watch is not None:
            self._watch.fallback.close()
            watch = _read_watch(self.store)
            if watch is not None:  # a clean stop is not a crash
                _write_watch(self.store, {**watch, "running": False})

    def _run(self) -> None:
        while not self._stop.wait(self.settings.poll_s):
            self.step()

    def step(self) -> None:
        """One look: swap to a new current, else judge the model under watch."""
        target = self.store.current()
        if target is not None and target != self.holder.version and target not in self._refused:
            self._swap_to(target)
        elif self._watch is not None:
            self._judge(self._watch)
        self._forward()

    def _forward(self) -> None:
        """Hand the update steps written since the last look (by anyone) to `on_event`."""
        if self._on_event is None:
            return
        for record in self._events.new():
            try:
                self._on_event(record)
            except Exception:  # a sink's failure must not stop the model watch; the JSONL log has the record
                log.exception("model update event %s not handed to the alert sinks", record.get("event"))

    def _swap_to(self, version: str) -> None:
        installed = self.store.installed(version)
        try:
            if installed is None:
                raise FumeEdgeError(f"{self.store.root / version}: not a complete installed version")
            backend = self._load(self.store.root / version / installed.model)
        except FumeEdgeError as exc:
            self._refuse(version, str(exc))
            return
        try:
            old_sha, old_version = self.holder.model_sha(), self.holder.version
            old = self.holder.swap(backend, installed.model_sha256, version)
        except FumeEdgeError as exc:
            backend.close()
            self._refuse(version, str(exc))
            return
        if self._watch is not None:  # a newer model replaces one still under watch: keep the older fallback
            old.close()
            watch = self._watch
            self._watch = _Watch(version, time.monotonic(), watch.fallback, watch.fallback_sha, watch.fallback_version)
        else:
            self._watch = _Watch(version, time.monotonic(), old, old_sha, old_version)
        _write_watch(
            self.store,
            {
                "version": version,
                "fallback": self._watch.fallback_version,
                "since": time.time(),
                "restarts": 0,
                "running": True,
            },
        )
        self.store.event("model_swapped", version=version, model_sha=installed.model_sha256, previous=old_version)

    def _refuse(self, version: str, reason: str) -> None:
        """A model the run cannot use: keep the running one, and point `current` back at it so a restart runs it."""
        self._refused.add(version)
        self.store.event("model_swap_failed", version=version, reason=reason)
        running = self.holder.version
        if running is not None and self.store.installed(running) is not None:
            self.store.switch(running)
            self.store.event("model_rolled_back", version=version, to=running, reason=reason)

    def _judge(self, watch: _Watch) -> None:
        health = self.holder.health()
        reason = failure(health, self.settings)
        if reason is not None:
            self._roll_back(watch, reason, health)
        elif time.monotonic() - watch.since >= self.settings.window_s:
            watch.fallback.close()
            self._watch = None
            _write_watch(self.store, None)
            self.store.event("model_healthy", version=watch.version, calls=health.calls, fps=health.fps)

    def _roll_back(self, watch: _Watch, reason: str, health: ModelHealth) -> None:
        failed = self.holder.swap(watch.fallback, watch.fallback_sha, watch.fallback_version)
        failed.close()
        self._watch = None
        _write_watch(self.store, None)
        self._refused.add(watch.version)
        if watch.fallback_version is not None and self.store.installed(watch.fallback_version) is not None:
            self.store.switch(watch.fallback_version)
        elif watch.fallback_version is None:  # back on the model from outside the store: so is a restart
            self.store.unset_current()
        self.store.event(
            "model_rolled_back",
            version=watch.version,
            to=watch.fallback_version,
            reason=reason,
            calls=health.calls,
            non_finite=health.non_finite,
            errors=health.errors,
            fps=health.fps,
        )


@contextmanager
def follow_current(
    backend: Backend,
    store: ModelStore,
    settings: HealthSettings = HealthSettings(),
    on_event: EventSink | None = None,
    *,
    outside_sha: str | None = None,
    **load_options: Any,
) -> Iterator[SwappableBackend]:
    """The run's backend, loaded from `model_to_run(store)`, wrapped for swaps while the watcher runs: what
    `fume-edge run` hands the loop (as its backend) and the alert service (`holder.model_sha`). `on_event`
    receives every update step written while it runs (`AlertService.model_event`).

    `outside_sha`: `backend` is a model from outside the store (the sha of its file) because nothing is installed
    yet; the first install is swapped in like any other, and rolled back to this model if it fails its watch."""
    if outside_sha is not None:
        holder = SwappableBackend(backend, outside_sha, None)
    else:
        version = store.current()
        installed = None if version is None else store.installed(version)
        if installed is None:
            raise FumeEdgeError(f"{store.root}: no installed current model to follow; `fume-edge bundle install` one")
        holder = SwappableBackend(backend, installed.model_sha256, version)
    try:
        with ModelUpdates(holder, store, settings, on_event=on_event, **load_options):
            yield holder
    finally:
        if holder.backend is not backend:  # a model swapped in here is closed here; the caller closes its own
            holder.close()
