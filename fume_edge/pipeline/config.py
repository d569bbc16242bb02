"""The typed `run.yaml`: the alert policy and sinks (owned by `fume_edge.alerts`) plus the capture loop's sections.

Like the other configs, the models carry no defaults: `fume_edge/configs/run.yaml` is the one place default
values live (with the reasons beside them), and a user's `--config` file overrides keys one by one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from fume_edge.alerts.policy import AlertPolicyConfig
from fume_edge.alerts.worker import SinksConfig
from fume_edge.config import (
    MAX_FPS,
    Count,
    Fps,
    Override,
    Pixels,
    PositiveSeconds,
    Resolved,
    Seconds,
    Seed,
    TopConfig,
    ConfigModel,
    Layer,
    defaults_layer,
    file_layer,
    option_layer,
    merge,
    resolve_config,
    section,
    stack,
)
from fume_edge.data.config import Outage, Segment
from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.stations_config import StationConfig, StationId, check_unique

if TYPE_CHECKING:
    from fume_edge.bundle.store import ModelStore

Counts16 = Annotated[float, Field(ge=0, le=65535)]  # a 16-bit sensor value
# A name the page may be opened by: barn-1.example.org, or *.example.org for every name under it.
HostName = Annotated[str, StringConstraints(pattern=r"^(\*\.)?[A-Za-z0-9.-]+$", max_length=253)]
DEMO_ALERTS = ("sources", "synthetic", "alerts")


def _dig(data: Any, *keys: str) -> dict[str, Any]:
    """`data[k1][k2]...` when every level is a mapping, else {} (a malformed file fails later, with its key)."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


class CameraConfig(ConfigModel):
    """`sources.co2` / `sources.ch4`: settings of one camera, whatever its source kind."""

    source: str | None  # what --co2/--ch4 name: /dev/fume-co2, csi://0, rtsp://..., a file, `synthetic`
    width: Pixels | None
    height: Pixels | None
    fps: Fps | None
    fourcc: Annotated[str, Field(max_length=4)] | None
    raw16: bool
    value_range: tuple[Counts16, Counts16] | None
    time_offset_s: Annotated[float, Field(ge=-3600, le=3600)]
    timestamps: str | None

    @model_validator(mode="after")
    def _consistent(self) -> CameraConfig:
        if self.value_range is not None and not self.value_range[0] < self.value_range[1]:
            raise ValueError(f"value_range: expected [low, high] with low < high, got {list(self.value_range)}")
        if self.raw16 and not (self.width and self.height):
            raise ValueError(
                "raw16: needs width and height (the sensor's size): raw 16-bit frames arrive as bytes "
                "only they can shape"
            )
        return self


class SyntheticSourceConfig(ConfigModel):
    """`sources.synthetic`: the live synthetic cameras (`--co2 synthetic --ch4 synthetic`)."""

    fps: Fps
    seed: Seed
    segments: Annotated[tuple[Segment, ...], Field(min_length=1)]
    outage: Outage | None
    alerts: dict[str, Any]  # partial `alerts:` keys, checked when they are applied (see `load_run_config`)


class SourcesConfig(ConfigModel):
    pacing: Literal["realtime", "fast"]
    loop: bool
    ring_size: Annotated[int, Field(ge=1, le=1024)]
    reconnect_min_s: PositiveSeconds
    reconnect_max_s: PositiveSeconds
    co2: CameraConfig
    ch4: CameraConfig
    synthetic: SyntheticSourceConfig

    @model_validator(mode="after")
    def _ordered(self) -> SourcesConfig:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s: must be <= reconnect_max_s")
        return self

    def camera(self, gas: str) -> CameraConfig:
        return self.co2 if gas == "co2" else self.ch4

    def spec(self, gas: str) -> str:
        """The source of camera `gas`, or one error saying where to give it."""
        source = self.camera(gas).source
        if not source:
            raise FumeEdgeError(
                f"--{gas}: no {gas.upper()} camera given; pass --{gas} SRC or set sources.{gas}.source in run.yaml"
            )
        return source


class SyncConfig(ConfigModel):
    tolerance_s: Seconds | None
    default_fps: Fps
    silent_after_s: PositiveSeconds

    def tolerance(self, fps: tuple[float | None, ...]) -> float:
        """The pairing tolerance: as configured, else half the frame period of the slower camera."""
        if self.tolerance_s is not None:
            return self.tolerance_s
        return 0.5 / min(f or self.default_fps for f in fps)


class PipelineConfig(ConfigModel):
    tick_s: Annotated[float, Field(gt=0, le=60)]
    stats_interval_s: PositiveSeconds
    refresh_hz: Annotated[float, Field(gt=0, le=MAX_FPS)]
    quiet: bool
    display: bool
    record: str | None
    max_frames: Count | None
    duration_s: Seconds | None


class ModelConfig(ConfigModel):
    """`model:` in run.yaml: which model runs and where (`--model`, `--device`, `--threads`)."""

    path: str | None  # a fixed model file; None: the model store's current bundle (`fume-edge bundle install`)
    default_path: str | None  # with no `path`, what runs while no bundle is installed (None: the bundled model)
    models_dir: str | None  # the model store (None: $FUME_EDGE_MODELS, else ./models)
    health_window_s: Annotated[float, Field(ge=0, le=7 * 24 * 3600)]  # a swapped-in model is watched this long
    device: str
    threads: Annotated[int, Field(ge=1, le=1024)] | None

    def store(self) -> ModelStore:
        """The model store a run without `path` follows."""
        from fume_edge.bundle.store import ModelStore, models_dir

        return ModelStore(models_dir(Path(self.models_dir) if self.models_dir else None))

    def until_installed(self) -> Path:
        """What a run without `path` runs while the store has no current model: `default_path`, else the bundled
        model."""
        from fume_edge.assets import default_model_path

        return Path(self.default_path) if self.default_path else default_model_path()


class HttpConfig(ConfigModel):
    """`http:`: the device's web page, JSON API and /metrics (`fume_edge/web`)."""

    listen: str | None
    token_file: str | None
    token_env: str
    public_read: bool
    hostnames: tuple[HostName, ...]  # names the page is opened by besides localhost and this machine's (DNS rebinding)
    frame_fps: Fps
    frame_width: Annotated[int, Field(ge=16, le=4096)] | None  # wider is cut to the model input at start
    jpeg_quality: Annotated[int, Field(ge=1, le=100)]
    stale_after_s: PositiveSeconds


class RunConfig(TopConfig):
    """Everything `fume-edge run` reads from run.yaml: every command-line option has its key here, so a service
    is configured by one file."""

    defaults_name = "run"

    device_id: str | None  # None: the host name
    station_id: StationId  # the id of the one station `sources.co2/ch4` describe (without `stations:`)
    model: ModelConfig
    alerts: AlertPolicyConfig
    stations: list[StationConfig]  # the camera pairs this device watches (empty: the one of `sources`)
    sinks: SinksConfig
    sources: SourcesConfig
    sync: SyncConfig
    pipeline: PipelineConfig
    http: HttpConfig

    @field_validator("stations")
    @classmethod
    def _stations_usable(cls, stations: list[StationConfig], info: ValidationInfo) -> list[StationConfig]:
        """Station ids once each, and every station's `alerts:` overrides valid as a policy."""
        try:
            check_unique(stations)
            alerts = info.data.get("alerts")  # absent when `alerts:` itself failed: reported there
            for index, station in enumerate(stations):
                if alerts is not None and station.alerts:
                    station_policy(alerts, station, f"[{index}].alerts")
        except FumeEdgeError as exc:
            raise ValueError(str(exc)) from None
        return stations

    def run_stations(self) -> list[StationConfig]:
        """The stations to run: `stations:`, else one named `station_id` from `sources.co2/ch4`."""
        if self.stations:
            return list(self.stations)
        return [StationConfig(id=self.station_id, co2=self.sources.spec("co2"), ch4=self.sources.spec("ch4"))]

    def policy_for(self, station: StationConfig) -> AlertPolicyConfig:
        """The device's alert policy with the station's own `alerts:` keys over it."""
        return station_policy(self.alerts, station, f"stations.{station.id}.alerts")


def station_policy(device: AlertPolicyConfig, station: StationConfig, where: str) -> AlertPolicyConfig:
    """`device`'s policy with `station`'s own `alerts:` keys over it, checked like the policy itself."""
    if not station.alerts:
        return device
    return section(AlertPolicyConfig, merge(device.model_dump(), station.alerts), where)


def resolve_run_config(
    path: str | Path | None = None, overrides: Iterable[Override] = (), synthetic: bool = False
) -> Resolved[RunConfig]:
    """Packaged run.yaml, then the user's file at `path`, then `overrides` (from command-line options).

    With `synthetic` (or both cameras `synthetic` in the merged sources) the demo alert timings of
    `sources.synthetic.alerts` go under the user's file, so a demo shows alerts start and end within seconds and a
    user's `alerts:` keys still win.
    """
    overrides = list(overrides)
    defaults, user = defaults_layer("run"), file_layer(path) if path is not None else Layer({}, {})
    given = stack([defaults, user, option_layer(overrides)]).data
    demo = synthetic or all(_dig(given, "sources", gas).get("source") == "synthetic" for gas in ("co2", "ch4"))
    under = [stack(layer.section(DEMO_ALERTS, ("alerts",)) for layer in (defaults, user))] if demo else []
    return resolve_config(RunConfig, path, overrides, under=under)


def load_run_config(
    path: str | Path | None = None, overrides: Iterable[Override] = (), synthetic: bool = False
) -> tuple[RunConfig, dict[str, Any]]:
    """The typed run configuration and the merged mapping it came from (recorded with the run)."""
    resolved = resolve_run_config(path, overrides, synthetic)
    return resolved.config, resolved.data
