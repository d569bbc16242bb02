"""The typed `run.yaml`: the alert policy and sinks (owned by `fume_edge.alerts`) plus the capture loop's sections.

Like the other configs, the dataclasses carry no defaults: `fume_edge/configs/run.yaml` is the one place default
values live (with the reasons beside them), and a user's `--config` file overrides keys one by one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fume_edge.alerts.policy import AlertPolicyConfig
from fume_edge.alerts.worker import SinksConfig
from fume_edge.config import from_mapping, merge, packaged_defaults, read_yaml
from fume_edge.data.config import Outage, Segment
from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.stations_config import STATION_ID_PATTERN, StationConfig, check_unique


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise FumeEdgeError(f"{where}: {message}")


def _dig(data: Any, *keys: str) -> dict[str, Any]:
    """`data[k1][k2]...` when every level is a mapping, else {} (a malformed file fails later, with its key)."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


@dataclass
class CameraConfig:
    """`sources.co2` / `sources.ch4`: settings of one camera, whatever its source kind."""

    source: str | None  # what --co2/--ch4 name: /dev/fume-co2, csi://0, rtsp://..., a file, `synthetic`
    width: int | None
    height: int | None
    fps: float | None
    fourcc: str | None
    raw16: bool
    value_range: tuple[float, float] | None
    time_offset_s: float
    timestamps: str | None

    def validate(self, where: str) -> None:
        for name in ("width", "height", "fps"):
            value = getattr(self, name)
            _require(value is None or value > 0, f"{where}.{name}", f"must be > 0 or null, got {value}")
        _require(self.fourcc is None or len(self.fourcc) <= 4, f"{where}.fourcc",
                 f"a FourCC has at most 4 characters, got {self.fourcc!r}")
        _require(self.value_range is None or self.value_range[0] < self.value_range[1], f"{where}.value_range",
                 f"expected [low, high] with low < high, got {self.value_range}")
        _require(not self.raw16 or bool(self.width and self.height), f"{where}.raw16",
                 "needs width and height (the sensor's size): raw 16-bit frames arrive as bytes only they can shape")


@dataclass
class SyntheticSourceConfig:
    """`sources.synthetic`: the live synthetic cameras (`--co2 synthetic --ch4 synthetic`)."""

    fps: float
    seed: int
    segments: tuple[Segment, ...]
    outage: Outage | None
    alerts: dict[str, Any]

    def validate(self, where: str) -> None:
        _require(self.fps > 0, f"{where}.fps", "must be > 0")
        _require(len(self.segments) > 0, f"{where}.segments", "list at least one {ph, seconds} segment")


@dataclass
class SourcesConfig:
    pacing: Literal["realtime", "fast"]
    loop: bool
    ring_size: int
    reconnect_min_s: float
    reconnect_max_s: float
    co2: CameraConfig
    ch4: CameraConfig
    synthetic: SyntheticSourceConfig

    def validate(self, where: str) -> None:
        _require(self.ring_size >= 1, f"{where}.ring_size", "must be >= 1")
        _require(0 < self.reconnect_min_s <= self.reconnect_max_s, where,
                 "need 0 < reconnect_min_s <= reconnect_max_s")

    def camera(self, gas: str) -> CameraConfig:
        return self.co2 if gas == "co2" else self.ch4

    def spec(self, gas: str) -> str:
        """The source of camera `gas`, or one error saying where to give it."""
        source = self.camera(gas).source
        if not source:
            raise FumeEdgeError(f"--{gas}: no {gas.upper()} camera given; pass --{gas} SRC or set "
                                f"sources.{gas}.source in run.yaml")
        return source


@dataclass
class SyncConfig:
    tolerance_s: float | None
    default_fps: float
    silent_after_s: float

    def validate(self, where: str) -> None:
        _require(self.tolerance_s is None or self.tolerance_s >= 0, f"{where}.tolerance_s", "must be >= 0 or null")
        _require(self.default_fps > 0, f"{where}.default_fps", "must be > 0")
        _require(self.silent_after_s > 0, f"{where}.silent_after_s", "must be > 0")

    def tolerance(self, fps: tuple[float | None, ...]) -> float:
        """The pairing tolerance: as configured, else half the frame period of the slower camera."""
        if self.tolerance_s is not None:
            return self.tolerance_s
        return 0.5 / min(f or self.default_fps for f in fps)


@dataclass
class PipelineConfig:
    tick_s: float
    stats_interval_s: float
    refresh_hz: float
    quiet: bool
    display: bool
    record: str | None
    max_frames: int | None
    duration_s: float | None

    def validate(self, where: str) -> None:
        _require(self.tick_s > 0 and self.stats_interval_s > 0 and self.refresh_hz > 0, where,
                 "tick_s, stats_interval_s and refresh_hz must be > 0")
        _require(self.max_frames is None or self.max_frames >= 1, f"{where}.max_frames", "must be >= 1 or null")
        _require(self.duration_s is None or self.duration_s >= 0, f"{where}.duration_s", "must be >= 0 or null")


@dataclass
class ModelConfig:
    """`model:` in run.yaml: which model runs and where (`--model`, `--device`, `--threads`)."""

    path: str | None  # None: the bundled model
    device: str
    threads: int | None

    def validate(self, where: str) -> None:
        _require(self.threads is None or self.threads >= 1, f"{where}.threads", "must be >= 1 or null")


@dataclass
class HttpConfig:
    """`http:`: the device's web page, JSON API and /metrics (`fume_edge/web`)."""

    listen: str | None
    token_file: str | None
    token_env: str
    public_read: bool
    frame_fps: float
    frame_width: int | None
    jpeg_quality: int
    stale_after_s: float

    def validate(self, where: str) -> None:
        _require(self.frame_fps > 0, f"{where}.frame_fps", f"must be > 0, got {self.frame_fps}")
        _require(self.frame_width is None or self.frame_width >= 16, f"{where}.frame_width",
                 f"must be >= 16 pixels or null, got {self.frame_width}")
        _require(1 <= self.jpeg_quality <= 100, f"{where}.jpeg_quality", f"must be 1..100, got {self.jpeg_quality}")
        _require(self.stale_after_s > 0, f"{where}.stale_after_s", f"must be > 0, got {self.stale_after_s}")


@dataclass
class RunConfig:
    """Everything `fume-edge run` reads from run.yaml: every command-line option has its key here, so a service
    is configured by one file."""

    device_id: str | None  # None: the host name
    station_id: str  # the id of the one station `sources.co2/ch4` describe (without `stations:`)
    stations: list[StationConfig]  # the camera pairs this device watches (empty: the one of `sources`)
    model: ModelConfig
    alerts: AlertPolicyConfig
    sinks: SinksConfig
    sources: SourcesConfig
    sync: SyncConfig
    pipeline: PipelineConfig
    http: HttpConfig

    def validate(self, where: str) -> None:
        _require(re.fullmatch(STATION_ID_PATTERN, self.station_id) is not None, f"{where}.station_id",
                 f"{self.station_id!r}: letters, digits, _ and -, at most 32 (it names MQTT topics and files)")
        check_unique(self.stations, f"{where}.stations")
        for index, station in enumerate(self.stations):
            self.policy_for(station, f"{where}.stations[{index}].alerts")

    def run_stations(self) -> list[StationConfig]:
        """The stations to run: `stations:`, else one named `station_id` from `sources.co2/ch4`."""
        if self.stations:
            return list(self.stations)
        return [StationConfig(id=self.station_id, co2=self.sources.spec("co2"), ch4=self.sources.spec("ch4"))]

    def policy_for(self, station: StationConfig, where: str = "alerts") -> AlertPolicyConfig:
        """The device's alert policy with the station's own `alerts:` keys over it."""
        if not station.alerts:
            return self.alerts
        return from_mapping(AlertPolicyConfig, merge(asdict(self.alerts), station.alerts), where)


def load_run_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                    synthetic: bool = False) -> tuple[RunConfig, dict[str, Any]]:
    """Packaged run.yaml, then the user's file at `path`, then `overrides` (from command-line options).

    With `synthetic` (or both cameras `synthetic` in the merged sources) the demo alert timings of
    `sources.synthetic.alerts` go under the user's file, so a demo shows alerts start and end within seconds and a
    user's `alerts:` keys still win.
    Returns the typed config and the merged mapping (recorded with the run).
    """
    data = packaged_defaults("run")
    where = "run.yaml"
    user = read_yaml(path) if path is not None else {}
    given = merge(merge(data, user), overrides or {})
    if synthetic or all(_dig(given, "sources", gas).get("source") == "synthetic" for gas in ("co2", "ch4")):
        data = merge(data, {"alerts": merge(_dig(data, "sources", "synthetic", "alerts"),
                                            _dig(user, "sources", "synthetic", "alerts"))})
    if path is not None:
        data, where = merge(data, user), str(path)
    data = merge(data, overrides or {})
    return from_mapping(RunConfig, data, where), data
