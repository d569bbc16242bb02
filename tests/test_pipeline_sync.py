"""Pairing and camera health as a pure state machine: timestamps in, pairs and health changes out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pipeline_support import ground_truth, synthetic_videos, true_pairs

from fume_edge.data.config import Outage
from fume_edge.pipeline.sync import Frame, Health, Pair, Synchronizer

CAMS = ("co2", "ch4")


def frame(t: float, index: int = 0) -> Frame:
    return Frame(np.empty(0), t, index)


def mutual_nearest(a: list[float], b: list[float], tol: float) -> set[tuple[int, int]]:
    """Reference: (i, j) where b[j] is a[i]'s nearest, a[i] is b[j]'s nearest (earlier wins ties), within tol."""
    out = set()
    for i, ta in enumerate(a):
        if not b:
            break
        j = int(np.argmin([abs(tb - ta) for tb in b]))
        if abs(b[j] - ta) <= tol and int(np.argmin([abs(t - b[j]) for t in a])) == i:
            out.add((i, j))
    return out


def pairs_of(items: list[Pair | Health]) -> list[Pair]:
    return [item for item in items if isinstance(item, Pair)]


@pytest.mark.parametrize("order", ["clock", "arrival"])
def test_streaming_pairs_equal_mutual_nearest_reference(order: str) -> None:
    """Random timestamps, fed in time order with the clock advancing (live loop) or interleaved at random with
    only each camera's own frames as its promise (lossless loop without merge): exactly the reference pairs."""
    rng = np.random.default_rng(1)
    for _ in range(400):
        a = sorted(rng.uniform(0, 10, rng.integers(0, 14)).tolist())
        b = sorted(rng.uniform(0, 10, rng.integers(0, 14)).tolist())
        tol = float(rng.uniform(0.05, 2.0))
        sync = Synchronizer(CAMS, tol, silent_after_s=1e9, start_t=0.0)
        events = [(t, 0, i) for i, t in enumerate(a)] + [(t, 1, i) for i, t in enumerate(b)]
        if order == "clock":
            events.sort()
        else:
            rng.shuffle(events)
            events = sorted(events, key=lambda e: (e[1], e[0]))  # per camera in order ...
            first, second = [e for e in events if e[1] == 0], [e for e in events if e[1] == 1]
            events = []
            while first or second:  # ... interleaved at random
                take = first if first and (not second or rng.random() < 0.5) else second
                events.append(take.pop(0))
        out: list[Pair | Health] = []
        for t, cam, i in events:
            out += sync.push(CAMS[cam], frame(t, i))
            if order == "clock":
                out += sync.advance(t)
        out += sync.finish()
        got = {(p.frames[0].index, p.frames[1].index) for p in pairs_of(out)}  # type: ignore[union-attr]
        assert got == mutual_nearest(a, b, tol)
        assert all(abs(p.frames[0].t - p.frames[1].t) <= tol for p in pairs_of(out))  # type: ignore[union-attr]
        assert sync.pairs * 2 + sum(sync.unmatched.values()) == len(a) + len(b)
        assert sync.waiting == 0


def test_a_frame_waits_only_until_no_nearer_partner_can_come() -> None:
    sync = Synchronizer(CAMS, tolerance_s=0.05, silent_after_s=5.0, start_t=0.0)
    assert sync.push("co2", frame(1.00)) == []  # a CH4 frame up to 1.05 may still come
    assert sync.push("ch4", frame(1.02)) == []  # a CO2 frame before 1.04 could be nearer to it
    assert sync.advance(1.03) == []
    (pair,) = pairs_of(sync.advance(1.04))
    assert (pair.frames[0].t, pair.frames[1].t, pair.t) == (1.00, 1.02, 1.02)


def test_frames_beyond_the_tolerance_never_pair_and_are_counted() -> None:
    sync = Synchronizer(CAMS, tolerance_s=0.05, silent_after_s=5.0, start_t=0.0)
    out = sync.push("co2", frame(1.0)) + sync.push("ch4", frame(1.06)) + sync.finish()
    assert pairs_of(out) == [] and sync.unmatched == {"co2": 1, "ch4": 1}


def test_out_of_order_frame_is_counted_and_dropped() -> None:
    sync = Synchronizer(CAMS, tolerance_s=0.05, silent_after_s=5.0, start_t=0.0)
    sync.push("co2", frame(2.0))
    assert sync.push("co2", frame(1.0)) == []
    assert sync.out_of_order == {"co2": 1, "ch4": 0}


def test_silent_camera_degrades_then_recovers_and_frames_go_on_alone() -> None:
    """CH4 stops after t=1.01 and returns at t=4.01 (silent after 1 s): health changes at 2.1 and 4.01, CO2 frames
    go on alone in between (from 2.0, still waiting for a partner when CH4 was declared silent) and pair again
    after. The CH4 frame at 4.01 is unmatched: its nearest CO2 frame (4.0) already went alone."""
    sync = Synchronizer(CAMS, tolerance_s=0.05, silent_after_s=1.0, start_t=0.0)
    out: list[Pair | Health] = []
    for k in range(1, 61):
        t = k / 10
        out += sync.push("co2", frame(t)) + sync.advance(t)
        if t <= 1.0 or t >= 4.0:
            out += sync.push("ch4", frame(t + 0.01)) + sync.advance(t + 0.01)
    out += sync.finish()
    health = [item for item in out if isinstance(item, Health)]
    assert [(round(h.t, 2), sorted(h.silent)) for h in health] == [(2.1, ["ch4"]), (4.01, [])]
    singles = [p for p in pairs_of(out) if p.frames[1] is None]
    assert [round(p.t, 1) for p in singles] == [round(0.1 * k, 1) for k in range(20, 41)]
    assert sync.singles == 21 and sync.pairs == 10 + 20
    assert sync.unmatched == {"co2": 9, "ch4": 1}  # CO2 1.1 .. 1.9: the timeout had not passed yet


def test_no_camera_ever_delivering_is_both_silent() -> None:
    sync = Synchronizer(CAMS, tolerance_s=0.05, silent_after_s=1.0, start_t=10.0)
    assert sync.advance(10.5) == []
    (change,) = sync.advance(11.5)
    assert isinstance(change, Health) and change.silent == frozenset(CAMS)


@pytest.fixture(scope="module")
def faulty_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 fps, CH4 clock 0.33 s ahead, ±5 ms jitter, 10% drops, a 1.5 s CO2 outage."""
    folder = tmp_path_factory.mktemp("videos") / "pair"
    synthetic_videos(
        folder,
        fps=10.0,
        seconds=12.0,
        clock_offset_s=0.33,
        jitter_s=0.005,
        drop_rate=0.1,
        outage=Outage(gas="co2", start_s=6.0, seconds=1.5),
    )
    return folder


def test_synthetic_video_timestamps_pair_as_the_ground_truth_says(faulty_videos: Path) -> None:
    """The videos' own timestamps, clock offset corrected: every capture both cameras delivered pairs, nothing
    else does, and no pair is further apart than the tolerance (half a frame period)."""
    rows = {gas: [r for r in ground_truth(faulty_videos / f"{gas}.csv") if r["dropped"] == "0"] for gas in CAMS}
    offset = {"co2": 0.0, "ch4": -0.33}
    sync = Synchronizer(CAMS, tolerance_s=0.05, silent_after_s=2.0, start_t=0.0)
    stream = sorted(
        (float(r["timestamp_s"]) + offset[gas], gas, int(r["video_frame"])) for gas in CAMS for r in rows[gas]
    )
    out: list[Pair | Health] = []
    for t, gas, index in stream:
        out += sync.push(gas, frame(t, index)) + sync.advance(t)
    out += sync.finish()
    pairs = [p for p in pairs_of(out) if None not in p.frames]
    assert {(p.frames[0].index, p.frames[1].index) for p in pairs} == true_pairs(faulty_videos)  # type: ignore
    assert all(abs(p.frames[0].t - p.frames[1].t) <= 0.05 for p in pairs)  # type: ignore[union-attr]
    assert sync.pairs == len(true_pairs(faulty_videos))
    assert 2 * sync.pairs + sum(sync.unmatched.values()) + sync.singles == sum(len(r) for r in rows.values())


def test_uncorrected_clock_offset_pairs_nothing_across_the_tolerance(faulty_videos: Path) -> None:
    """Without the offset correction CH4 frames sit 0.33 s late: 0.03 s off their neighbours' slots, so some
    pair with the wrong capture, but none further than the tolerance, and the count is what the times allow."""
    times = {
        gas: [float(r["timestamp_s"]) for r in ground_truth(faulty_videos / f"{gas}.csv") if r["dropped"] == "0"]
        for gas in CAMS
    }
    sync = Synchronizer(CAMS, tolerance_s=0.05, silent_after_s=2.0, start_t=0.0)
    out: list[Pair | Health] = []
    for t, gas in sorted((t, cam) for cam in CAMS for t in times[cam]):
        out += sync.push(gas, frame(t)) + sync.advance(t)
    out += sync.finish()
    pairs = [p for p in pairs_of(out) if None not in p.frames]
    assert all(abs(p.frames[0].t - p.frames[1].t) <= 0.05 for p in pairs)  # type: ignore[union-attr]
    assert len(pairs) == len(mutual_nearest(times["co2"], times["ch4"], 0.05))
