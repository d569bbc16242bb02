"""Helpers for the alert tests: configs from the packaged run.yaml defaults, and predictions with chosen values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fume_edge.alerts.event import AlertEvent, iso_utc, new_id
from fume_edge.alerts.policy import AlertPolicyConfig
from fume_edge.alerts.worker import SinksConfig
from fume_edge.config import merge, packaged_defaults, section
from fume_edge.labels import GAS_CLASS_ID
from fume_edge.runtime.base import Prediction

TUBE_CLASS_ID = 1


def policy_config(overrides: dict[str, Any] | None = None) -> AlertPolicyConfig:
    """The packaged `alerts:` defaults with `overrides` deep-merged."""
    return section(AlertPolicyConfig, merge(packaged_defaults("run")["alerts"], overrides or {}), "run.alerts")


def sinks_config(tmp_path: Path, overrides: dict[str, Any] | None = None) -> SinksConfig:
    """The packaged `sinks:` defaults with the database in `tmp_path` and `overrides` deep-merged."""
    data = merge(packaged_defaults("run")["sinks"], {"sqlite": {"path": str(tmp_path / "alerts.db")}})
    return section(SinksConfig, merge(data, overrides or {}), "run.sinks")


def seg_with_gas(fraction: float, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A mask with a tube band and `fraction` of its pixels labelled gas."""
    seg = np.zeros(shape, np.int32)
    seg[:, shape[1] // 3 : 2 * shape[1] // 3] = TUBE_CLASS_ID
    flat = seg.reshape(-1)
    flat[: int(round(fraction * flat.size))] = GAS_CLASS_ID
    return seg


def prediction(
    probs: tuple[float, float, float] = (0.9, 0.05, 0.05),
    co2_gas: float | None = 0.05,
    ch4_gas: float | None = 0.05,
    shape: tuple[int, int] = (48, 64),
) -> Prediction:
    return Prediction(
        ph_probs=np.asarray(probs, np.float32),
        seg={gas: seg_with_gas(area, shape) for gas, area in (("co2", co2_gas), ("ch4", ch4_gas)) if area is not None},
    )


def make_event(
    state: str = "start",
    alert_type: str = "acidosis_risk",
    wall: float = 1_780_000_000.0,
    alert_id: str | None = None,
    **fields: Any,
) -> AlertEvent:
    """A valid event as the policy would emit it (end events get the `cleared` reason)."""
    now = iso_utc(wall)
    values: dict[str, Any] = dict(
        id=alert_id or new_id(),
        event_id=new_id(),
        type=alert_type,
        state=state,
        device_id="barn-1",
        camera_ids=("co2", "ch4"),
        time=now,
        mono=wall - 1_779_990_000.0,
        start_time=now,
        start_mono=1.0,
        end_time=now if state == "end" else None,
        end_mono=1.0 if state == "end" else None,
        reason="cleared" if state == "end" else None,
        probs={"Healthy": 0.1, "Transitional": 0.2, "Acidotic": 0.7},
        gas_areas={"co2": 0.05, "ch4": None},
        frames=3,
        frames_triggering=2,
        model_sha="f00d",
    )
    values.update(fields)
    return AlertEvent(**values)
