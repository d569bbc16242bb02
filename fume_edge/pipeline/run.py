"""`fume-edge run`: builds the capture loop from the options and run.yaml, runs it, shuts it down cleanly.

Order matters for a good first minute: everything a user can get wrong (config keys, sources, model, sink paths,
`--display`) is checked before anything starts, each as one error line; then the signal handlers go in, the sinks
start, the cameras start, and the loop runs in this (the main) thread. Whatever ends the run (frame or time limit,
sources ended, SIGINT/SIGTERM, an error), the cameras are stopped, open alerts are ended as `interrupted`, every
queued event is written and the run's counters are stored with it.
"""

from __future__ import annotations

import functools
import logging
import socket
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from fume_edge.alerts.secrets import redact_text
from fume_edge.alerts.service import AlertService
from fume_edge.assets import default_model_path
from fume_edge.errors import FumeEdgeError
from fume_edge.hashing import sha256_file
from fume_edge.labels import GASES
from fume_edge.pipeline.capture import CameraStream, FrameHub
from fume_edge.pipeline.config import RunConfig, load_run_config
from fume_edge.pipeline.loop import Pipeline, ResultHook
from fume_edge.pipeline.prepare import ModelInputs, camera_preprocessing
from fume_edge.pipeline.shutdown import StopSignals
from fume_edge.pipeline.sources import FrameReader, SourceNotReady, check_distinct_sources, open_reader
from fume_edge.pipeline.status import StatusView
from fume_edge.pipeline.sync import Pair
from fume_edge.pipeline.view import DisplayWindow, Recorder, ViewWorker
from fume_edge.runtime.base import Backend, Prediction, load_backend


@dataclass
class RunOptions:
    """The command line of `fume-edge run` (None: the run.yaml value)."""

    co2: str
    ch4: str
    model: Path | None = None
    config: Path | None = None
    alerts: Path | None = None
    jsonl: Path | None = None
    mqtt: str | None = None
    mqtt_ca: Path | None = None
    mqtt_cert: Path | None = None
    mqtt_key: Path | None = None
    mqtt_insecure: bool = False
    snapshots: Path | None = None
    display: bool = False
    record: Path | None = None
    max_frames: int | None = None
    duration: float | None = None
    device_id: str | None = None
    quiet: bool = False
    device: str = "auto"
    threads: int | None = None
    pacing: str | None = None
    loop: bool | None = None


@dataclass
class RunResult:
    reason: str  # completed | interrupted | stopped (display closed)
    stats: dict[str, Any]

    @property
    def lost(self) -> int:
        """Alert events that never reached the database (queue overflow, or a disk still failing at exit)."""
        return int(self.stats["sinks"]["dropped"] + self.stats["sinks"]["unstored"])


def config_overrides(options: RunOptions) -> dict[str, Any]:
    """The run.yaml keys the command-line options set."""
    sinks: dict[str, Any] = {}
    if options.alerts is not None:
        sinks["sqlite"] = {"path": str(options.alerts)}
    if options.jsonl is not None:
        sinks["jsonl"] = {"path": str(options.jsonl)}
    if options.snapshots is not None:
        sinks["snapshots"] = {"dir": str(options.snapshots)}
    given = {"url": options.mqtt, "ca": options.mqtt_ca, "cert": options.mqtt_cert, "key": options.mqtt_key}
    mqtt: dict[str, Any] = {k: str(v) for k, v in given.items() if v is not None}
    if options.mqtt_insecure:
        mqtt["insecure"] = True
    if mqtt:
        sinks["mqtt"] = mqtt
    if options.pacing not in (None, "realtime", "fast"):
        raise FumeEdgeError(f"--pacing {options.pacing}: expected realtime or fast")
    sources = {k: v for k, v in (("pacing", options.pacing), ("loop", options.loop)) if v is not None}
    return {key: value for key, value in (("sinks", sinks), ("sources", sources)) if value}


def _check_outputs(config: RunConfig) -> None:
    """The JSONL file and the database in one file would corrupt each other."""
    jsonl, sqlite = config.sinks.jsonl.path, config.sinks.sqlite.path
    if jsonl is not None and Path(jsonl).resolve() == Path(sqlite).resolve():
        raise FumeEdgeError(f"--jsonl {jsonl}: the same file as the alert database (--alerts {sqlite}); give the "
                            "JSONL file its own name, e.g. alerts.jsonl")


def _open_readers(options: RunOptions, config: RunConfig, stack: ExitStack,
                  console: Console) -> dict[str, FrameReader | None]:
    """Open both sources; a live one that is not there yet is None (its capture thread keeps trying)."""
    readers: dict[str, FrameReader | None] = {}
    for gas, spec in (("co2", options.co2), ("ch4", options.ch4)):
        try:
            reader = readers[gas] = open_reader(spec, gas, config)
        except SourceNotReady as exc:
            if config.sources.pacing == "fast":
                raise
            console.print(f"{exc}; not there yet: retrying every {config.sources.reconnect_min_s:g}-"
                          f"{config.sources.reconnect_max_s:g} s while the run starts", style="yellow")
            readers[gas] = None
            continue
        stack.callback(reader.close)
    if config.sources.pacing == "fast":
        live = [r.name for r in readers.values() if r is not None and r.live]
        if live:
            raise FumeEdgeError(f"{live[0]}: a live source cannot be played fast; use sources.pacing realtime "
                                "(--pacing realtime) or recorded sources on both cameras")
    return readers


def _stream(gas: str, spec: str, reader: FrameReader | None, hub: FrameHub, config: RunConfig) -> CameraStream:
    """The capture thread of one camera; recorded sources are paced in real time unless the hub is lossless."""
    return CameraStream(gas, reader, reopen=functools.partial(open_reader, spec, gas, config), hub=hub,
                        paced=not hub.lossless and reader is not None and not reader.live,
                        time_offset_s=config.sources.camera(gas).time_offset_s,
                        reconnect_s=(config.sources.reconnect_min_s, config.sources.reconnect_max_s),
                        name=f"--{gas} {redact_text(spec)}")


def _fps(reader: FrameReader | None, gas: str, config: RunConfig) -> float | None:
    """A source's frame rate: what it reports, else the configured one (a source not open yet)."""
    return reader.fps if reader is not None else config.sources.camera(gas).fps


def _view_worker(options: RunOptions, backend: Backend, fps: float, stack: ExitStack) -> ViewWorker | None:
    """The thread that draws --display and writes --record (None when neither is asked for)."""
    if not options.display and options.record is None:
        return None
    with ExitStack() as opening:  # a recorder that cannot open closes the window again
        window = DisplayWindow() if options.display else None
        if window is not None:
            opening.callback(window.close)
        recorder = Recorder(options.record, fps, backend.input_size) if options.record else None
        opening.pop_all()  # the worker closes both from here on
    worker = ViewWorker(window, recorder, backend.input_size, GASES)
    stack.callback(worker.close)
    return worker


def _stopping(console: Console, signal_name: str) -> None:
    console.print(f"{signal_name}: stopping (again to force)", style="yellow")


def run(options: RunOptions, console: Console, on_result: ResultHook | None = None) -> RunResult:
    """Run the capture loop as the options say; `on_result` also sees every (pair, prediction) (tests, tools)."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    synthetic = options.co2 == "synthetic" and options.ch4 == "synthetic"
    config, merged = load_run_config(options.config, config_overrides(options), synthetic=synthetic)
    check_distinct_sources(options.co2, options.ch4)
    _check_outputs(config)
    with ExitStack() as stack:
        # First, so that a signal while the model loads still stops the run cleanly (it stops before starting).
        signals = stack.enter_context(StopSignals(on_first=lambda name: _stopping(console, name)))
        readers = _open_readers(options, config, stack, console)
        model_path = options.model or default_model_path()
        backend = stack.enter_context(load_backend(model_path, device=options.device, threads=options.threads))
        fps = {gas: _fps(reader, gas, config) for gas, reader in readers.items()}
        tolerance = config.sync.tolerance(tuple(fps.values()))
        views = _view_worker(options, backend, min(f or config.sync.default_fps for f in fps.values()), stack)
        hub = FrameHub(GASES, config.sources.ring_size, lossless=config.sources.pacing == "fast")
        streams = {gas: _stream(gas, spec, readers[gas], hub, config)
                   for gas, spec in (("co2", options.co2), ("ch4", options.ch4))}
        inputs = ModelInputs(GASES, {g: camera_preprocessing(backend.contract.preprocessing,
                                                             config.sources.camera(g).value_range, g) for g in GASES})
        device_id = options.device_id or socket.gethostname()
        service = AlertService(config.alerts, config.sinks, device_id=device_id, model_sha=sha256_file(model_path),
                               run_config={"options": {k: str(v) for k, v in vars(options).items()}, **merged})

        def on_each(pair: Pair, prediction: Prediction) -> None:
            if views is not None:
                views.submit(tuple(None if f is None else f.image for f in pair.frames), prediction)
            if on_result is not None:
                on_result(pair, prediction)

        def window_closed() -> bool:
            return views is not None and views.closed

        pipeline = Pipeline(streams, hub, backend, service, inputs, tolerance_s=tolerance,
                            silent_after_s=config.sync.silent_after_s, tick_s=config.pipeline.tick_s,
                            stats_interval_s=config.pipeline.stats_interval_s,
                            on_result=on_each if views or on_result else None)
        title = (f"fume-edge run · {device_id} · {model_path.name} ({backend.name}) · "
                 f"CO2 {redact_text(options.co2)} · CH4 {redact_text(options.ch4)} · pairing ±{1000 * tolerance:.0f} ms")
        view = StatusView(pipeline, title, console, quiet=options.quiet, refresh_hz=config.pipeline.refresh_hz)
        pipeline.on_events = view.events
        service.start()
        reason = "error"
        try:
            with view:
                reason = pipeline.run(lambda: signals.is_set() or window_closed(), options.max_frames,
                                      options.duration)
            if window_closed() and reason == "interrupted" and not signals.is_set():
                reason = "stopped"
        finally:
            view.events(service.close(pipeline.stats(), reason, mono=pipeline.sync.now))
        stats = pipeline.stats()
        if views is not None:
            views.close()
            stats["views"] = {"shown": views.shown, "dropped": views.dropped}
        view.summary(stats, reason)
        return RunResult(reason, stats)
