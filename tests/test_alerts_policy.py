"""The alert policy as a pure state machine: replayed timelines in, alert events out."""

from __future__ import annotations

import math

import numpy as np
import pytest
from alerts_support import policy_config, prediction

from fume_edge.alerts.event import (
    ACIDOSIS_RISK,
    CAMERA_DEGRADED,
    CAMERA_OFFLINE,
    GAS_ABSENT,
    TRANSITIONAL_RISK,
    AlertEvent,
    parse_iso,
)
from fume_edge.alerts.policy import AlertPolicy
from fume_edge.alerts.signals import Debounce, EmaSmoother, WindowSmoother
from fume_edge.errors import FumeEdgeError

WALL0 = 1_780_000_000.0  # an arbitrary epoch; wall = WALL0 + mono in these timelines
HEALTHY = (0.9, 0.05, 0.05)
ACIDOTIC = (0.05, 0.1, 0.85)
TRANSITIONAL = (0.2, 0.7, 0.1)


def fast_policy(**overrides: object) -> AlertPolicy:
    """Short durations so timelines stay small: start after 2 s (4 s on one gas), end after 3 s, update every 5 s."""
    rule = {"start_after_s": 2.0, "end_after_s": 3.0, "single_gas_start_after_s": 4.0}
    base = {
        "smoothing_s": 1.0,
        "acidosis_risk": rule,
        "transitional_risk": rule,
        "update_interval_s": 5.0,
        "gas_absent": {"after_s": 4.0, "clear_s": 2.0},
    }
    base.update(overrides)
    return AlertPolicy(policy_config(base), device_id="barn-1", model_sha="abc123")


def feed(
    policy: AlertPolicy, start: float, stop: float, probs: tuple[float, float, float], fps: float = 10.0, **kw: object
) -> list[AlertEvent]:
    events = []
    for i in range(int(round((stop - start) * fps))):
        t = start + i / fps
        events += policy.on_prediction(t, WALL0 + t, prediction(probs, **kw))  # type: ignore[arg-type]
    return events


def test_ema_is_time_based_so_the_frame_rate_does_not_matter() -> None:
    for fps in (5.0, 30.0):
        ema = EmaSmoother(tau_s=2.0)
        ema.update(0.0, np.array([0.0]))
        value = None
        for i in range(1, int(2.0 * fps) + 1):
            value = ema.update(i / fps, np.array([1.0]))
        assert value is not None and value[0] == pytest.approx(1 - math.exp(-1), abs=1e-9)


def test_window_averages_only_the_last_seconds() -> None:
    window = WindowSmoother(window_s=1.0)
    for t, x in ((0.0, 10.0), (0.5, 0.0), (1.2, 2.0)):
        value = window.update(t, np.array([x]))
    assert value[0] == pytest.approx(1.0)  # the sample at t=0 fell out of [0.2, 1.2]


def test_debounce_rejects_short_spikes_and_keeps_state_between_thresholds() -> None:
    gate = Debounce(min_on_s=2.0, min_off_s=3.0)
    assert [gate.update(t, True, False) for t in (0.0, 1.0)] == [None, None]
    assert gate.update(1.5, False, False) is None  # the spike ended before 2 s
    assert [gate.update(t, True, False) for t in (2.0, 3.0, 4.0)] == [None, None, True]
    assert [gate.update(t, False, False) for t in (5.0, 20.0)] == [None, None]  # between thresholds: stays on
    assert [gate.update(t, False, True) for t in (21.0, 23.0, 24.0)] == [None, None, False]


def test_acidosis_risk_lifecycle_start_update_end() -> None:
    policy = fast_policy()
    assert feed(policy, 0, 5, HEALTHY) == []
    events = feed(policy, 5, 20, ACIDOTIC)
    assert [(e.type, e.state) for e in events] == [
        (ACIDOSIS_RISK, "start"),
        (ACIDOSIS_RISK, "update"),
        (ACIDOSIS_RISK, "update"),
    ]
    start = events[0]
    # The smoothed P(Acidotic) crosses 0.6 about 1.2 s after the switch, then must hold 2 s.
    assert 8.0 < start.mono < 8.6
    assert start.start_mono == start.mono and start.end_time is None and start.reason is None
    assert start.probs is not None and start.probs["Acidotic"] >= 0.6
    assert start.device_id == "barn-1" and start.model_sha == "abc123" and start.camera_ids == ("co2", "ch4")
    assert start.gas_areas["co2"] == pytest.approx(0.05, abs=1e-3)
    assert start.time == start.start_time and parse_iso(start.time) == pytest.approx(WALL0 + start.mono, abs=1e-3)
    assert events[1].mono - start.mono == pytest.approx(5.0, abs=0.11)
    assert events[2].frames > events[1].frames > start.frames == 1

    ends = [e for e in feed(policy, 20, 30, HEALTHY) if e.state == "end"]
    assert [(e.type, e.reason) for e in ends] == [(ACIDOSIS_RISK, "cleared")]
    end = ends[0]
    assert {e.id for e in events + ends} == {start.id}
    assert len({e.event_id for e in events + ends}) == len(events + ends)
    assert end.start_time == start.start_time and end.end_mono == end.mono and end.end_time == end.time
    assert end.frames_triggering < end.frames  # frames after the fall stayed in the alert but did not trigger


def test_a_short_acidotic_burst_raises_nothing() -> None:
    policy = fast_policy()
    events = feed(policy, 0, 5, HEALTHY) + feed(policy, 5, 7, ACIDOTIC) + feed(policy, 7, 20, HEALTHY)
    assert events == []


def test_transitional_risk_is_its_own_alert() -> None:
    policy = fast_policy()
    events = feed(policy, 0, 6, TRANSITIONAL) + feed(policy, 6, 14, ACIDOTIC)
    kinds = [(e.type, e.state) for e in events]
    assert kinds[0] == (TRANSITIONAL_RISK, "start")
    assert (ACIDOSIS_RISK, "start") in kinds and (TRANSITIONAL_RISK, "end") in kinds


def test_window_smoothing_from_config() -> None:
    policy = fast_policy(smoothing="window", smoothing_s=2.0)
    events = feed(policy, 0, 2, HEALTHY) + feed(policy, 2, 8, ACIDOTIC)
    assert [(e.type, e.state) for e in events] == [(ACIDOSIS_RISK, "start")]


def test_gas_absent_starts_ends_and_gates_the_ph() -> None:
    policy = fast_policy(update_interval_s=60.0)
    # Acidotic-looking output with no gas in view: the pH is not trusted, gas_absent starts after 4 s.
    events = feed(policy, 0, 10, ACIDOTIC, co2_gas=0.0, ch4_gas=0.0)
    assert [(e.type, e.state) for e in events] == [(GAS_ABSENT, "start")]
    assert events[0].probs is None and events[0].mono == pytest.approx(4.0)
    events = feed(policy, 10, 13, HEALTHY, co2_gas=0.0, ch4_gas=0.02)
    assert [(e.type, e.state, e.reason) for e in events] == [(GAS_ABSENT, "end", "cleared")]


def test_gas_gating_can_be_turned_off() -> None:
    policy = fast_policy(gas_absent={"after_s": 4.0, "clear_s": 2.0, "gate_ph": False}, update_interval_s=60.0)
    kinds = {(e.type, e.state) for e in feed(policy, 0, 10, ACIDOTIC, co2_gas=0.0, ch4_gas=0.0)}
    assert kinds == {(GAS_ABSENT, "start"), (ACIDOSIS_RISK, "start")}


def test_camera_health_alert_always_describes_the_current_state() -> None:
    policy = AlertPolicy(policy_config(), device_id="d", cameras={"co2": "cam-a", "ch4": "cam-b"})
    assert policy.on_camera_health(1.0, WALL0, set()) == []
    policy.on_prediction(1.5, WALL0 + 1.5, prediction(HEALTHY))
    first = policy.on_camera_health(2.0, WALL0 + 2, {"co2"})
    assert [(e.type, e.state, e.camera_ids) for e in first] == [(CAMERA_DEGRADED, "start", ("cam-a",))]
    assert first[0].gas_areas["co2"] is None and first[0].gas_areas["ch4"] == pytest.approx(0.05, abs=1e-3)
    assert policy.on_camera_health(2.5, WALL0 + 2.5, {"co2"}) == []  # no change, no event

    # Degraded mode: inference goes on with CH4 only; the silent camera's gas area is unknown, not zero.
    (update,) = [e for t in (3.0, 302.0) for e in policy.on_prediction(t, WALL0 + t, prediction(HEALTHY))]
    assert update.type == CAMERA_DEGRADED and update.state == "update" and update.gas_areas["co2"] is None

    both = policy.on_camera_health(400.0, WALL0 + 400, {"co2", "ch4"})
    assert [(e.type, e.state, e.reason) for e in both] == [
        (CAMERA_DEGRADED, "end", "superseded"),
        (CAMERA_OFFLINE, "start", None),
    ]
    assert both[1].camera_ids == ("cam-a", "cam-b")
    back = policy.on_camera_health(410.0, WALL0 + 410, {"ch4"})
    assert [(e.type, e.state, e.camera_ids) for e in back] == [
        (CAMERA_OFFLINE, "end", ("cam-a", "cam-b")),
        (CAMERA_DEGRADED, "start", ("cam-b",)),
    ]
    done = policy.on_camera_health(420.0, WALL0 + 420, [])
    assert [(e.type, e.state, e.reason) for e in done] == [(CAMERA_DEGRADED, "end", "recovered")]
    with pytest.raises(ValueError, match="unknown camera"):
        policy.on_camera_health(421.0, WALL0 + 421, {"thermal"})


def test_gas_absence_counts_only_live_cameras() -> None:
    policy = fast_policy()
    policy.on_camera_health(0.0, WALL0, {"co2"})
    # The silent CO2 camera's (stale) mask shows gas; the live CH4 camera sees none.
    events = feed(policy, 0, 6, HEALTHY, co2_gas=0.3, ch4_gas=0.0)
    assert (GAS_ABSENT, "start") in [(e.type, e.state) for e in events]


def test_close_ends_every_open_alert_as_interrupted() -> None:
    policy = fast_policy()
    policy.on_camera_health(0.0, WALL0, {"ch4"})
    feed(policy, 0, 6, ACIDOTIC)
    assert {a.type for a in policy.open_alerts} == {CAMERA_DEGRADED, ACIDOSIS_RISK}
    ends = policy.close(7.0, WALL0 + 7)
    assert {(e.type, e.state, e.reason) for e in ends} == {
        (CAMERA_DEGRADED, "end", "interrupted"),
        (ACIDOSIS_RISK, "end", "interrupted"),
    }
    assert policy.open_alerts == () and policy.close(8.0, WALL0 + 8) == []


def test_a_risk_on_one_gas_needs_the_longer_duration_and_says_it_is_degraded() -> None:
    policy = fast_policy()
    policy.on_camera_health(0.0, WALL0, {"ch4"})
    events = feed(policy, 0, 6, ACIDOTIC)
    start = next(e for e in events if e.type == ACIDOSIS_RISK)
    assert 4.0 <= start.mono < 4.5  # not at 2 s, as with both gases
    assert (start.degraded, start.cameras_in_use, start.camera_ids) == (True, ("co2",), ("co2", "ch4"))
    both = fast_policy()
    start = next(e for e in feed(both, 0, 6, ACIDOTIC) if e.type == ACIDOSIS_RISK)
    assert 2.0 <= start.mono < 2.5 and (start.degraded, start.cameras_in_use) == (False, ("co2", "ch4"))


def test_one_gas_cannot_start_a_risk_alert_when_the_config_says_so() -> None:
    rule = {"start_after_s": 2.0, "end_after_s": 3.0, "single_gas_start_after_s": None}
    policy = fast_policy(acidosis_risk=rule, transitional_risk=rule)
    policy.on_camera_health(0.0, WALL0, {"ch4"})
    assert not [e for e in feed(policy, 0, 20, ACIDOTIC) if e.type == ACIDOSIS_RISK]
    policy.on_camera_health(20.0, WALL0 + 20, set())  # both back: the usual 2 s
    start = next(e for e in feed(policy, 20, 23, ACIDOTIC) if e.type == ACIDOSIS_RISK)
    assert 22.0 <= start.mono < 22.5 and not start.degraded


def test_a_non_finite_prediction_never_reaches_the_smoothing() -> None:
    policy = fast_policy()
    feed(policy, 0, 3, ACIDOTIC)
    before = policy.smoothed_probs
    for k, bad in enumerate(((math.nan, 0.1, 0.9), (0.0, math.inf, 0.0))):
        policy.on_prediction(3 + k / 10, WALL0 + 3, prediction(bad))  # type: ignore[arg-type]
    assert policy.smoothed_probs == before  # unchanged, and finite
    events = feed(policy, 3.2, 12, HEALTHY)
    assert (ACIDOSIS_RISK, "end") in [(e.type, e.state) for e in events]  # alerting still works
    assert all(e.to_json() for e in events)  # and every event still encodes (allow_nan=False)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"acidosis_risk": {"start_at": 0.3, "end_below": 0.4}}, "run.alerts.acidosis_risk"),
        ({"transitional_risk": {"start_after_s": -1}}, "run.alerts.transitional_risk"),
        ({"smoothing": "median"}, "run.alerts.smoothing"),
        ({"update_interval_s": 0}, "run.alerts.update_interval_s"),
        ({"gas_absent": {"min_area": 2.0}}, "run.alerts.gas_absent"),
    ],
)
def test_bad_policy_values_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(FumeEdgeError, match=field.replace(".", r"\.")):
        policy_config(overrides)
