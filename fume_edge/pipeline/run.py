"""`fume-edge run`: builds the capture loop from the options and run.yaml, runs it, shuts it down cleanly.

The loop runs one or more stations (run.yaml `stations:`, or the one camera pair of `--co2/--ch4`); each gets its
own sources, capture threads, rings, pairing and alert policy, and they share one model and one set of sinks.

Order matters for a good first minute: everything a user can get wrong (config keys, sources, model, sink paths,
`--display`) is checked before anything starts, each as one error line; then the signal handlers go in, the sinks
start, the cameras start, and the loop runs in this (the main) thread. Whatever ends the run (frame or time limit,
sources ended, SIGINT/SIGTERM, an error), the cameras are stopped, open alerts are ended as `interrupted`, every
queued event is written and the run's counters are stored with it.

`build_run` checks and builds every part (hooks go into constructors), `run_parts` runs them. Without a
`model.path` the run follows the model store's `models/current` (`fume-edge bundle install` swaps a new model in
between two ticks); SIGHUP re-reads run.yaml (`reload.py`).
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console

from fume_edge import __version__
from fume_edge.alerts.event import ModelSha, model_sha_now
from fume_edge.alerts.secrets import redact_text
from fume_edge.extras import FEATURES
from fume_edge.alerts.service import AlertService
from fume_edge.alerts.subject import SubjectWatcher
from fume_edge.alerts.topics import check_topic_id
from fume_edge.pipeline.advice import alert_destinations, backend_warnings, batch_notes
from fume_edge.config import Override, given
from fume_edge.errors import FumeEdgeError
from fume_edge.hashing import sha256_file
from fume_edge.labels import GASES
from fume_edge.pipeline.capture import CameraStream, FrameHub
from fume_edge.pipeline.config import PipelineConfig, RunConfig, load_run_config
from fume_edge.pipeline.loop import Pipeline, ResultHook
from fume_edge.pipeline.published import LoopSnapshot
from fume_edge.pipeline.reload import Reloader
from fume_edge.pipeline.prepare import ModelInputs, camera_preprocessing
from fume_edge.pipeline.shutdown import StopSignals
from fume_edge.pipeline.sources import (
    FrameReader,
    SourceNotReady,
    check_distinct_sources,
    open_reader,
    source_identity,
)
from fume_edge.pipeline.station import Station
from fume_edge.pipeline.stations_config import StationConfig
from fume_edge.pipeline.status import StatusView
from fume_edge.pipeline.sync import Pair
from fume_edge.pipeline.view import DisplayWindow, Recorder, ViewWorker
from fume_edge.runtime.base import Backend, Prediction, batch_capacity, load_backend
from fume_edge.service.sd_notify import SystemdNotifier

if TYPE_CHECKING:
    from fume_edge.bundle.live import EventRelay
    from fume_edge.bundle.remote import RemoteInstaller
    from fume_edge.bundle.store import ModelStore
    from fume_edge.web.attach import WebRun

log = logging.getLogger("fume_edge.run")


@dataclass
class RunOptions:
    """The command line of `fume-edge run` (None or False: the run.yaml value)."""

    co2: str | None = None
    ch4: str | None = None
    station_id: str | None = None
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
    device: str | None = None
    threads: int | None = None
    pacing: str | None = None
    loop: bool | None = None
    http: str | None = None


@dataclass
class RunResult:
    reason: str  # completed | interrupted | stopped (display closed)
    stats: dict[str, Any]

    @property
    def lost(self) -> int:
        """Alert events that never reached the database (queue overflow, or a disk still failing at exit)."""
        return int(self.stats["sinks"]["dropped"] + self.stats["sinks"]["unstored"])


def config_overrides(options: RunOptions) -> list[Override]:
    """The run.yaml keys the command-line options set, each naming its option for errors."""

    def text(value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value

    return given(
        ("device_id", options.device_id, "--device-id"),
        ("station_id", options.station_id, "--station-id"),
        # the one-station shorthand replaces a run.yaml `stations:` list
        ("stations", [] if options.co2 or options.ch4 else None, "--co2/--ch4"),
        ("model.path", text(options.model), "--model"),
        ("model.device", options.device, "--device"),
        ("model.threads", options.threads, "--threads"),
        ("sinks.sqlite.path", text(options.alerts), "--alerts"),
        ("sinks.jsonl.path", text(options.jsonl), "--jsonl"),
        ("sinks.snapshots.dir", text(options.snapshots), "--snapshots"),
        ("sinks.mqtt.url", options.mqtt, "--mqtt"),
        ("sinks.mqtt.ca", text(options.mqtt_ca), "--mqtt-ca"),
        ("sinks.mqtt.cert", text(options.mqtt_cert), "--mqtt-cert"),
        ("sinks.mqtt.key", text(options.mqtt_key), "--mqtt-key"),
        ("sinks.mqtt.insecure", options.mqtt_insecure or None, "--mqtt-insecure"),
        ("sources.pacing", options.pacing, "--pacing"),
        ("sources.loop", options.loop, "--loop"),
        ("sources.co2.source", options.co2 or None, "--co2"),
        ("sources.ch4.source", options.ch4 or None, "--ch4"),
        ("http.listen", options.http, "--http"),
        ("pipeline.quiet", options.quiet or None, "--quiet"),
        ("pipeline.display", options.display or None, "--display"),
        ("pipeline.record", text(options.record), "--record"),
        ("pipeline.max_frames", options.max_frames, "--max-frames"),
        ("pipeline.duration_s", options.duration, "--duration"),
    )


def _check_outputs(config: RunConfig) -> None:
    """The JSONL file and the database in one file would corrupt each other."""
    jsonl, sqlite = config.sinks.jsonl.path, config.sinks.sqlite.path
    if jsonl is not None and Path(jsonl).resolve() == Path(sqlite).resolve():
        raise FumeEdgeError(
            f"--jsonl {jsonl}: the same file as the alert database (--alerts {sqlite}); give the "
            "JSONL file its own name, e.g. alerts.jsonl"
        )


def _check_sources(stations: list[StationConfig]) -> None:
    """Each gas of each station needs its own camera, file or folder."""
    for station in stations:
        check_distinct_sources(station.co2, station.ch4)
    specs = [(station.id, gas, getattr(station, gas)) for station in stations for gas in GASES]
    seen: dict[str, str] = {}
    for station_id, gas, spec in specs:
        if spec == "synthetic":
            continue
        identity = source_identity(spec)
        if identity in seen:
            raise FumeEdgeError(
                f"run.yaml stations: {station_id} {gas} {redact_text(spec)} is also {seen[identity]}; "
                "each camera belongs to one station"
            )
        seen[identity] = f"{station_id} {gas}"


def _open_readers(
    station: StationConfig, index: int, config: RunConfig, stack: ExitStack, console: Console
) -> dict[str, FrameReader | None]:
    """Open a station's two sources (`index`: its place in run.yaml); a live one that is not there yet is None (its
    capture thread keeps trying)."""
    readers: dict[str, FrameReader | None] = {}
    for gas in GASES:
        try:
            reader = readers[gas] = open_reader(getattr(station, gas), gas, config, variant=index)
        except SourceNotReady as exc:
            if config.sources.pacing == "fast":
                raise
            console.print(
                f"{exc}; not there yet: retrying every {config.sources.reconnect_min_s:g}-"
                f"{config.sources.reconnect_max_s:g} s while the run starts",
                style="yellow",
            )
            readers[gas] = None
            continue
        stack.callback(reader.close)
    if config.sources.pacing == "fast":
        live = [r.name for r in readers.values() if r is not None and r.live]
        if live:
            raise FumeEdgeError(
                f"{live[0]}: a live source cannot be played fast; use sources.pacing realtime "
                "(--pacing realtime) or recorded sources on both cameras"
            )
    return readers


def _stream(
    gas: str, spec: str, reader: FrameReader | None, hub: FrameHub, config: RunConfig, index: int
) -> CameraStream:
    """The capture thread of one camera; recorded sources are paced in real time unless the hub is lossless."""
    return CameraStream(
        gas,
        reader,
        reopen=functools.partial(open_reader, spec, gas, config, variant=index),
        hub=hub,
        paced=not hub.lossless and reader is not None and not reader.live,
        time_offset_s=config.sources.camera(gas).time_offset_s,
        reconnect_s=(config.sources.reconnect_min_s, config.sources.reconnect_max_s),
        name=f"--{gas} {redact_text(spec)}",
    )


def _station(
    station: StationConfig,
    index: int,
    readers: dict[str, FrameReader | None],
    backend: Backend,
    config: RunConfig,
    doorbell: threading.Event,
    on_result: ResultHook | None,
) -> Station:
    """One station's capture threads, ring, pairing and model inputs."""
    fps = {gas: _fps(reader, gas, config) for gas, reader in readers.items()}
    hub = FrameHub(GASES, config.sources.ring_size, lossless=config.sources.pacing == "fast", doorbell=doorbell)
    streams = {gas: _stream(gas, getattr(station, gas), readers[gas], hub, config, index) for gas in GASES}
    inputs = ModelInputs(
        GASES,
        {
            g: camera_preprocessing(backend.contract.preprocessing, config.sources.camera(g).value_range, g)
            for g in GASES
        },
    )
    return Station(
        station.id,
        streams,
        hub,
        inputs,
        tolerance_s=config.sync.tolerance(tuple(fps.values())),
        silent_after_s=config.sync.silent_after_s,
        on_result=on_result,
    )


def _fps(reader: FrameReader | None, gas: str, config: RunConfig) -> float | None:
    """A source's frame rate: what it reports, else the configured one (a source not open yet)."""
    return reader.fps if reader is not None else config.sources.camera(gas).fps


def _view_worker(config: PipelineConfig, backend: Backend, fps: float, stack: ExitStack) -> ViewWorker | None:
    """The thread that draws --display and writes --record (None when neither is asked for)."""
    if not config.display and config.record is None:
        return None
    with ExitStack() as opening:  # a recorder that cannot open closes the window again
        window = DisplayWindow() if config.display else None
        if window is not None:
            opening.callback(window.close)
        recorder = Recorder(Path(config.record), fps, backend.input_size) if config.record else None
        opening.pop_all()  # the worker closes both from here on
    worker = ViewWorker(window, recorder, backend.input_size, GASES)
    stack.callback(worker.close)
    return worker


def _web_run(config: RunConfig, stations: list[StationConfig], backend: Backend) -> WebRun | None:
    """The web side (`--http`), checked before anything starts; None without it."""
    if config.http.listen is None:
        return None
    from fume_edge.web.attach import WebRun  # needs the `web` extra

    return WebRun(
        config.http, [s.id for s in stations], GASES, backend.input_size, Path(config.sinks.sqlite.path).parent
    )


def _subject(service: AlertService, console: Console, subject: str | None, station: str | None) -> None:
    """A change of a station's subject (None: every station's; from the page, MQTT or `fume-edge tag`): tag what
    follows, say so. A station this run does not have is reported and ignored."""
    if station is not None and station not in service.policies:
        console.print(
            f"subject for station {station!r} ignored: this run has {', '.join(service.policies)}",
            style="yellow",
            highlight=False,
        )
        return
    where = "" if station is None or len(service.policies) == 1 else f" ({station})"
    current = [p.subject for name, p in service.policies.items() if station in (None, name)]
    if subject is not None or any(current):
        console.print(
            f"{time.strftime('%H:%M:%S')} subject{where}: {subject or '(none)'}", style="cyan", highlight=False
        )
    service.set_subject(subject, station)


def _stopping(console: Console, notifier: SystemdNotifier, signal_name: str) -> None:
    notifier.stopping(f"{signal_name}: stopping")
    console.print(f"{signal_name}: stopping (again to force)", style="yellow")


@dataclass
class RunParts:
    """Everything `fume-edge run` built and checked, ready to run (the run's ExitStack closes it)."""

    config: RunConfig
    console: Console
    notifier: SystemdNotifier
    signals: StopSignals
    stations: list[Station]
    pipeline: Pipeline
    service: AlertService
    view: StatusView
    views: ViewWorker | None
    title: str
    ready: str  # what systemd is told once the loop runs


@dataclass(frozen=True)
class RunModel:
    """The model the run loads: run.yaml's `model.path`, else the model store's current bundle, else the bundled
    model; `model_sha` is asked at each event (it changes when a bundle install swaps the model in)."""

    path: Path
    backend: Backend
    model_sha: ModelSha
    store: ModelStore | None = None  # the model store followed (None: a fixed model file)
    events: EventRelay | None = None  # its update steps, for the alert service once it exists


def _load_model(config: RunConfig, stack: ExitStack) -> RunModel:
    """Load the model; with no `model.path`, follow `models/current` so `fume-edge bundle install` swaps it in
    (while nothing is installed, the run starts on `model.default_path`, else the bundled model, and still follows)."""
    from fume_edge.bundle.live import EventRelay, HealthSettings, follow_current, model_to_run

    device, threads = config.model.device, config.model.threads
    if config.model.path:
        path = Path(config.model.path)
        backend: Backend = stack.enter_context(load_backend(path, device=device, threads=threads))
        return RunModel(path, backend, sha256_file(path))
    settings = HealthSettings(window_s=config.model.health_window_s)
    store = config.model.store()
    installed = model_to_run(store, settings)
    path = installed or config.model.until_installed()
    backend = stack.enter_context(load_backend(path, device=device, threads=threads))
    events = EventRelay()
    outside_sha = None if installed else sha256_file(path)
    holder = stack.enter_context(
        follow_current(
            backend, store, settings, on_event=events, outside_sha=outside_sha, device=device, threads=threads
        )
    )
    return RunModel(path, holder, holder.model_sha, store, events)


def _remote_installer(service: AlertService, store: ModelStore) -> RemoteInstaller | None:
    """Installs asked over MQTT (`cmd/model`) and from the page, where the `bundle` extra (signature checks) is
    installed. Without it the run still follows what `fume-edge bundle install` puts in the store; a remote request
    is answered with the extra to install (the page's 404, the MQTT sink's log line), so start-up stays quiet."""
    bundle = next(feature for feature in FEATURES if feature.extra == "bundle")
    if bundle.missing():
        log.debug("model installs over MQTT and from the page need the bundle extra: %s", bundle.hint)
        return None
    from fume_edge.bundle.install import InstallOptions
    from fume_edge.bundle.remote import serve_model_commands

    return serve_model_commands(service, InstallOptions(models=store.root))


class _LiveInfo(Mapping[str, str]):
    """The page's and /metrics' `info`, with the model sha read at each request (a bundle swap changes it)."""

    def __init__(self, fixed: dict[str, str], model_sha: ModelSha) -> None:
        self._fixed, self._model_sha = fixed, model_sha

    def __getitem__(self, key: str) -> str:
        if key == "model_sha256":
            return model_sha_now(self._model_sha) or ""
        return self._fixed[key]

    def __iter__(self) -> Iterator[str]:
        return iter((*self._fixed, "model_sha256"))

    def __len__(self) -> int:
        return len(self._fixed) + 1


def build_run(options: RunOptions, console: Console, stack: ExitStack, on_result: ResultHook | None = None) -> RunParts:
    """Check and build every part of the run, each user error as one line before anything starts; the parts'
    closing goes onto `stack`. `on_result` also sees every (pair, prediction) (tests, tools)."""
    config, merged = load_run_config(options.config, config_overrides(options))
    station_configs = config.run_stations()
    _check_sources(station_configs)
    _check_outputs(config)
    device_id = check_topic_id(config.device_id or socket.gethostname(), "--device-id (device_id)")
    notifier = stack.enter_context(SystemdNotifier())
    # First, so that a signal while the model loads still stops the run cleanly (it stops before starting).
    signals = stack.enter_context(StopSignals(on_first=functools.partial(_stopping, console, notifier)))
    readers = {
        station.id: _open_readers(station, index, config, stack, console)
        for index, station in enumerate(station_configs)
    }
    model = _load_model(config, stack)
    backend = model.backend
    for warning in backend_warnings(backend, model.path):
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    for note in batch_notes(batch_capacity(backend), backend.contract.dynamic_batch, len(station_configs), model.path):
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    first_fps = {gas: _fps(reader, gas, config) for gas, reader in readers[station_configs[0].id].items()}
    views = _view_worker(config.pipeline, backend, min(f or config.sync.default_fps for f in first_fps.values()), stack)
    web = _web_run(config, station_configs, backend)

    def shown(feed: ResultHook | None, pair: Pair, prediction: Prediction) -> None:
        assert views is not None
        views.submit(tuple(None if f is None else f.image for f in pair.frames), prediction)
        if feed is not None:
            feed(pair, prediction)

    def station_hook(index: int, station_id: str) -> ResultHook | None:
        """The page's live images of every station (its own feed); --display and --record show the first."""
        feed = None if web is None else web.feeds[station_id].on_result
        return functools.partial(shown, feed) if index == 0 and views is not None else feed

    doorbell = threading.Event()
    stations = [
        _station(station, index, readers[station.id], backend, config, doorbell, station_hook(index, station.id))
        for index, station in enumerate(station_configs)
    ]
    service = AlertService(
        config.alerts,
        config.sinks,
        device_id=device_id,
        model_sha=model.model_sha,
        run_config={"options": {k: str(v) for k, v in vars(options).items()}, **merged},
        stations={station.id: config.policy_for(station) for station in station_configs},
    )
    installer = None
    if model.store is not None and model.events is not None:  # following bundles: steps become alert events,
        model.events.connect(service.model_event)  # and MQTT `cmd/model` / the page may install
        installer = _remote_installer(service, model.store)
    reloader = stack.enter_context(Reloader(functools.partial(_reread, options), config))
    view = StatusView(console, quiet=config.pipeline.quiet, refresh_hz=config.pipeline.refresh_hz)
    pipeline = Pipeline(
        stations,
        backend,
        service,
        tick_s=config.pipeline.tick_s,
        stats_interval_s=config.pipeline.stats_interval_s,
        doorbell=doorbell,
        on_result=on_result,
        on_events=view.events,
        on_tick=functools.partial(_between_ticks, notifier, reloader),
    )
    stack.enter_context(SubjectWatcher(config.sinks.sqlite.path, functools.partial(_subject, service, console)))
    if web is not None:
        info = _LiveInfo(
            {"device_id": device_id, "model": model.path.name, "backend": backend.name, "version": __version__},
            model.model_sha,
        )
        server = web.serve(
            pipeline,
            service,
            db=config.sinks.sqlite.path,
            info=info,
            stack=stack,
            snapshot_dir=config.sinks.snapshots.dir,
            installer=installer,
        )
        console.print(
            f"web page: {web.page_url(server)}  (API /api/status, metrics /metrics)", highlight=False, soft_wrap=True
        )
    first = stations[0]
    title = f"fume-edge run · {device_id} · {model.path.name} ({backend.name}) · " + (
        f"CO2 {redact_text(station_configs[0].co2)} · CH4 {redact_text(station_configs[0].ch4)} · "
        f"pairing ±{1000 * first.tolerance_s:.0f} ms"
        if len(stations) == 1
        else f"{len(stations)} stations ({', '.join(s.id for s in stations)}) · batch {pipeline.batch}"
    )
    return RunParts(
        config,
        console,
        notifier,
        signals,
        stations,
        pipeline,
        service,
        view,
        views,
        title,
        f"running {model.path.name} ({backend.name})",
    )


def run_parts(parts: RunParts) -> RunResult:
    """Start the sinks, run the loop until it ends, then end open alerts, write every queued event, summarise."""
    config, pipeline, service, view, views = parts.config, parts.pipeline, parts.service, parts.view, parts.views

    def window_closed() -> bool:
        return views is not None and views.closed

    service.start()
    parts.notifier.ready(parts.ready)
    reason = "error"
    try:
        with view.watching(pipeline, parts.title):
            reason = pipeline.run(
                lambda: parts.signals.is_set() or window_closed(),
                config.pipeline.max_frames,
                config.pipeline.duration_s,
            )
        if window_closed() and reason == "interrupted" and not parts.signals.is_set():
            reason = "stopped"
    finally:
        parts.notifier.stopping(f"stopping: {reason}")
        view.events(service.close(pipeline.stats(), reason, mono=max(s.sync.now for s in parts.stations)))
    stats = pipeline.stats()
    if views is not None:
        views.close()
        stats["views"] = {"shown": views.shown, "dropped": views.dropped}
    view.summary(stats, reason)
    parts.console.print(f"alerts went to: {'; '.join(alert_destinations(config.sinks))}", soft_wrap=True)
    return RunResult(reason, stats)


def run(options: RunOptions, console: Console, on_result: ResultHook | None = None) -> RunResult:
    """Run the capture loop as the options say; `on_result` also sees every (pair, prediction) (tests, tools)."""
    with ExitStack() as stack:
        return run_parts(build_run(options, console, stack, on_result))


def _reread(options: RunOptions) -> RunConfig:
    """run.yaml as a reload reads it: the same file and the same command-line options over it."""
    return load_run_config(options.config, config_overrides(options))[0]


def _between_ticks(notifier: SystemdNotifier, reloader: Reloader, pipeline: Pipeline) -> None:
    """Every loop pass (loop thread): ping the systemd watchdog, apply a reloaded run.yaml if one is ready."""
    notifier.tick(functools.partial(_service_status, pipeline.snapshot))
    reload = reloader.take()
    if reload is None:
        return
    pipeline.alerts.reconfigure(reload.policies, reload.state_interval_s)
    pipeline.tick_s = reload.config.pipeline.tick_s
    pipeline.stats_interval_s = reload.config.pipeline.stats_interval_s
    log.info("run.yaml reloaded: alert policies of %s applied", ", ".join(reload.policies) or "no station")


def _service_status(snapshot: LoopSnapshot) -> str:
    """The one-line status systemd shows (`systemctl status fume-edge`), from the published snapshot."""
    stats = snapshot.stats
    silent = f", silent: {', '.join(stats['silent'])}" if stats.get("silent") else ""
    return f"{stats.get('inferences', 0)} inferences, {stats.get('degraded', 0)} degraded{silent}"
