"""The alert policy: a pure state machine from predictions and camera health to alert events.

It owns no thread, clock, file or socket: the capture loop feeds it `(monotonic time, wall time, input)` and gets
back the `AlertEvent`s that input caused (often none), which it hands to the sink worker. That keeps every rule
(smoothing, hysteresis, minimum durations, lifecycles) testable by replaying a timeline, and keeps inference from
ever waiting on a disk or a broker.

Rules:
- pH risk (`acidosis_risk`, `transitional_risk`): the class probability, smoothed over time (EMA or window), starts
  an alert once it has stayed at or above `start_at` for `start_after_s` and ends it once it has stayed below
  `end_below` for `end_after_s`. While a camera is out the model reads one gas only: a risk alert then needs
  `single_gas_start_after_s` (longer; null: it cannot start until both cameras are back).
- a prediction with non-finite pH probabilities (NaN/inf) never reaches the smoothing: one bad value would
  otherwise poison the state for good. Every event says whether it was raised while a camera was out (`degraded`)
  and which cameras were delivering (`cameras_in_use`).
- `gas_absent`: no live camera sees gas (area fraction below `min_area`) for `after_s`; ends once gas is seen again
  for `clear_s`. With `gate_ph`, frames without gas do not feed the pH smoothing: the classifier reads the plume,
  and with no plume its output says nothing about the rumen.
- camera health: at most one health alert is open and it always describes the current state: one camera silent
  -> `camera_degraded` (naming it), all silent -> `camera_offline`. A change of state ends the open one
  (`superseded`, or `recovered` when all cameras are back) and starts the alert for the new state.
- `cameras_unpaired`: both cameras deliver but no frames pair (clocks apart, misreported FPS); carries the
  measured offset (`detail.offset_s`) and ends (`recovered`) once frames pair again.
- every open alert emits an `update` every `update_interval_s` of frame time; `close()` ends all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple
from collections.abc import Iterable, Mapping

import numpy as np
from pydantic import model_validator

from fume_edge.alerts.event import (
    ACIDOSIS_RISK,
    ModelSha,
    model_sha_now,
    CAMERA_DEGRADED,
    CAMERA_OFFLINE,
    CAMERAS_UNPAIRED,
    CLEARED,
    DEFAULT_STATION,
    END,
    GAS_ABSENT,
    INTERRUPTED,
    RECOVERED,
    START,
    SUPERSEDED,
    TRANSITIONAL_RISK,
    UPDATE,
    AlertEvent,
    iso_utc,
    new_id,
)
from fume_edge.alerts.signals import Debounce, make_smoother
from fume_edge.config import ConfigModel, Fraction, PositiveSeconds, Seconds
from fume_edge.labels import GASES, PH_CLASS_NAMES
from fume_edge.runtime.base import Prediction


class RiskRuleConfig(ConfigModel):
    """Hysteresis thresholds on one smoothed class probability, with minimum durations (seconds of frame time).
    (Not `on`/`off`: YAML 1.1 reads those keys as booleans.)"""

    start_at: Fraction
    end_below: Fraction
    start_after_s: Seconds
    end_after_s: Seconds
    single_gas_start_after_s: Seconds | None = None  # while a camera is out; None: no start until both are back

    @model_validator(mode="after")
    def _ordered(self) -> RiskRuleConfig:
        if not self.end_below < self.start_at:
            raise ValueError(f"end_below: must be below start_at ({self.start_at}), got {self.end_below}")
        if self.single_gas_start_after_s is not None and self.single_gas_start_after_s < self.start_after_s:
            raise ValueError("single_gas_start_after_s: must be null or >= start_after_s (one gas is weaker evidence)")
        return self


class GasAbsentConfig(ConfigModel):
    min_area: Fraction  # gas pixel fraction below which a camera sees no gas
    after_s: Seconds  # no gas for this long starts `gas_absent`
    clear_s: Seconds  # gas seen for this long ends it
    gate_ph: bool  # frames without gas do not feed the pH smoothing


class AlertPolicyConfig(ConfigModel):
    """The `alerts:` section of run.yaml (defaults and their reasons are documented there)."""

    smoothing: Literal["ema", "window"]
    smoothing_s: Seconds  # EMA time constant, or window length, in seconds
    acidosis_risk: RiskRuleConfig
    transitional_risk: RiskRuleConfig
    gas_absent: GasAbsentConfig
    update_interval_s: PositiveSeconds


class ActiveAlert(NamedTuple):
    """An open alert as the live status view shows it."""

    type: str
    id: str
    camera_ids: tuple[str, ...]
    start_time: str


@dataclass
class _OpenAlert:
    id: str
    type: str
    cameras: tuple[str, ...]
    start_time: str
    start_mono: float
    last_emit: float
    frames: int = 0
    frames_triggering: int = 0


@dataclass
class _Risk:
    type: str
    class_index: int
    rule: RiskRuleConfig
    debounce: Debounce = field(init=False)

    def __post_init__(self) -> None:
        self.debounce = Debounce(self.rule.start_after_s, self.rule.end_after_s)


class AlertPolicy:
    """Feed it predictions and camera health in time order; it returns the alert events each input caused.

    `cameras` maps each gas (the modality names the pipeline uses: "co2", "ch4") to the camera id written into
    events; by default the gas names themselves. One policy per station: its events carry `station`.
    """

    def __init__(
        self,
        config: AlertPolicyConfig,
        *,
        device_id: str,
        cameras: Mapping[str, str] | None = None,
        model_sha: ModelSha = None,
        station: str = DEFAULT_STATION,
    ) -> None:
        self.config = config
        self.device_id = device_id
        self.station = station
        self.model_sha = model_sha
        self.subject: str | None = None  # the current animal or sample id, carried by every event (set any time)
        self.cameras = dict(cameras) if cameras is not None else {gas: gas for gas in GASES}
        self._smoother = make_smoother(config.smoothing, config.smoothing_s)
        self._risks = [
            _Risk(ACIDOSIS_RISK, PH_CLASS_NAMES.index("Acidotic"), config.acidosis_risk),
            _Risk(TRANSITIONAL_RISK, PH_CLASS_NAMES.index("Transitional"), config.transitional_risk),
        ]
        self._gas = Debounce(config.gas_absent.after_s, config.gas_absent.clear_s)
        self._open: dict[str, _OpenAlert] = {}  # by alert type
        self._silent: frozenset[str] = frozenset()
        self._probs: np.ndarray | None = None
        self._areas: dict[str, float | None] = {gas: None for gas in self.cameras}

    def reconfigure(self, config: AlertPolicyConfig) -> None:
        """New thresholds and durations from the next input on (a reload), keeping open alerts and debounce
        timers; a changed smoothing kind or time constant restarts the smoothing."""
        if (config.smoothing, config.smoothing_s) != (self.config.smoothing, self.config.smoothing_s):
            self._smoother = make_smoother(config.smoothing, config.smoothing_s)
        for risk, rule in zip(self._risks, (config.acidosis_risk, config.transitional_risk), strict=True):
            risk.rule = rule
            risk.debounce.min_on_s, risk.debounce.min_off_s = rule.start_after_s, rule.end_after_s
        self._gas.min_on_s, self._gas.min_off_s = config.gas_absent.after_s, config.gas_absent.clear_s
        self.config = config

    @property
    def smoothed_probs(self) -> dict[str, float] | None:
        """The current smoothed pH probabilities by class name (None before the first usable prediction)."""
        return None if self._probs is None else {n: float(p) for n, p in zip(PH_CLASS_NAMES, self._probs, strict=True)}

    @property
    def silent_cameras(self) -> frozenset[str]:
        """The gases whose camera is silent now."""
        return self._silent

    @property
    def open_alerts(self) -> tuple[ActiveAlert, ...]:
        return tuple(ActiveAlert(a.type, a.id, a.cameras, a.start_time) for a in self._open.values())

    def on_prediction(self, mono: float, wall: float, prediction: Prediction) -> list[AlertEvent]:
        """One inference result at frame time `mono` (monotonic s) and `wall` (epoch s)."""
        live = [gas for gas in self.cameras if gas not in self._silent]
        self._areas = {gas: (prediction.gas_area.get(gas) if gas in live else None) for gas in self.cameras}
        seen = [area for gas, area in self._areas.items() if area is not None]
        gas_present = None if not seen else any(a >= self.config.gas_absent.min_area for a in seen)

        triggering: dict[str, bool] = {CAMERA_DEGRADED: True, CAMERA_OFFLINE: True}
        transitions: list[tuple[str, bool | None]] = []
        if gas_present is not None:
            triggering[GAS_ABSENT] = not gas_present
            transitions.append((GAS_ABSENT, self._gas.update(mono, not gas_present, gas_present)))
        gated = self.config.gas_absent.gate_ph and gas_present is False
        if prediction.ph_probs is not None and prediction.finite and not gated:
            self._probs = self._smoother.update(mono, prediction.ph_probs)
            for risk in self._risks:
                value = float(self._probs[risk.class_index])
                rising, falling = value >= risk.rule.start_at, value < risk.rule.end_below
                triggering[risk.type] = rising
                min_on = risk.rule.single_gas_start_after_s if self._silent else risk.rule.start_after_s
                transitions.append(
                    (risk.type, risk.debounce.update(mono, rising and min_on is not None, falling, min_on_s=min_on))
                )

        for alert in self._open.values():
            alert.frames += 1
            alert.frames_triggering += int(triggering.get(alert.type, False))
        events: list[AlertEvent] = []
        for alert_type, turned in transitions:
            if turned is True:
                opened = self._start(alert_type, tuple(self.cameras.values()), mono, wall)
                opened.frames = opened.frames_triggering = 1
                events.append(self._event(opened, START, mono, wall))
            elif turned is False:
                events.append(self._end(alert_type, mono, wall, CLEARED))
        for alert in self._open.values():
            if alert.last_emit != mono and mono - alert.last_emit >= self.config.update_interval_s:
                alert.last_emit = mono
                events.append(self._event(alert, UPDATE, mono, wall))
        return events

    def on_camera_health(self, mono: float, wall: float, silent: Iterable[str]) -> list[AlertEvent]:
        """The set of gases whose camera is currently silent (empty when all deliver); call it on every change."""
        silent_set = frozenset(silent)
        unknown = silent_set - set(self.cameras)
        if unknown:
            raise ValueError(f"unknown camera gas {sorted(unknown)}; expected some of {sorted(self.cameras)}")
        if silent_set == self._silent:
            return []
        self._silent = silent_set
        self._areas = {gas: (None if gas in silent_set else area) for gas, area in self._areas.items()}
        events = []
        current = next((t for t in (CAMERA_DEGRADED, CAMERA_OFFLINE) if t in self._open), None)
        if current is not None:
            events.append(self._end(current, mono, wall, SUPERSEDED if silent_set else RECOVERED))
        if silent_set:
            kind = CAMERA_OFFLINE if silent_set == set(self.cameras) else CAMERA_DEGRADED
            cams = tuple(cam for gas, cam in self.cameras.items() if gas in silent_set)
            events.append(self._event(self._start(kind, cams, mono, wall), START, mono, wall))
        return events

    def on_unpaired(self, mono: float, wall: float, offset_s: float | None) -> list[AlertEvent]:
        """Both cameras deliver but nothing pairs, `offset_s` apart (None: they pair again)."""
        if offset_s is None:
            return [self._end(CAMERAS_UNPAIRED, mono, wall, RECOVERED)] if CAMERAS_UNPAIRED in self._open else []
        if CAMERAS_UNPAIRED in self._open:
            return []
        alert = self._start(CAMERAS_UNPAIRED, tuple(self.cameras.values()), mono, wall)
        return [replace(self._event(alert, START, mono, wall), detail={"offset_s": round(offset_s, 4)})]

    def close(self, mono: float, wall: float, reason: str = INTERRUPTED) -> list[AlertEvent]:
        """End every open alert (at shutdown: `interrupted`)."""
        return [self._end(alert_type, mono, wall, reason) for alert_type in list(self._open)]

    def _start(self, alert_type: str, cameras: tuple[str, ...], mono: float, wall: float) -> _OpenAlert:
        alert = _OpenAlert(new_id(), alert_type, cameras, iso_utc(wall), mono, last_emit=mono)
        self._open[alert_type] = alert
        return alert

    def _end(self, alert_type: str, mono: float, wall: float, reason: str) -> AlertEvent:
        return self._event(self._open.pop(alert_type), END, mono, wall, reason)

    def _event(self, alert: _OpenAlert, state: str, mono: float, wall: float, reason: str | None = None) -> AlertEvent:
        now = iso_utc(wall)
        return AlertEvent(
            id=alert.id,
            event_id=new_id(),
            type=alert.type,
            state=state,
            device_id=self.device_id,
            camera_ids=alert.cameras,
            time=now,
            mono=mono,
            start_time=alert.start_time,
            start_mono=alert.start_mono,
            end_time=now if state == END else None,
            end_mono=mono if state == END else None,
            reason=reason,
            probs=self.smoothed_probs,
            gas_areas=dict(self._areas),
            frames=alert.frames,
            frames_triggering=alert.frames_triggering,
            model_sha=model_sha_now(self.model_sha),
            degraded=bool(self._silent),
            subject=self.subject,
            cameras_in_use=tuple(cam for gas, cam in self.cameras.items() if gas not in self._silent),
            station=self.station,
        )
