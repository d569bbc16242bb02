"""The loop end to end in-process: real OpenCV decoding, ONNX Runtime inference, SQLite alerts, real threads."""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from pipeline_support import (
    ScriptedCamera,
    noise_frames,
    run_config,
    synthetic_videos,
    true_pairs,
    write_run_yaml,
)
from rich.console import Console

from fume_edge.alerts.event import CAMERA_DEGRADED, CAMERA_OFFLINE, CAMERAS_UNPAIRED, END, START
from fume_edge.alerts.service import AlertService
from fume_edge.alerts.store import AlertStore
from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.capture import CameraStream, FrameHub
from fume_edge.pipeline.loop import Pipeline
from fume_edge.pipeline.prepare import ModelInputs
from fume_edge.pipeline.run import RunOptions, run
from fume_edge.pipeline.station import Station
from fume_edge.pipeline.sync import Pair
from fume_edge.runtime.base import Prediction, load_backend

CAMS = ("co2", "ch4")


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_paired_videos_with_offset_jitter_and_drops_pair_as_the_ground_truth(tmp_path: Path, small_onnx: Path) -> None:
    """Two video files played as fast as possible, each frame at its recorded time, the CH4 clock offset
    corrected: the loop infers exactly the captures both cameras delivered, each once, never across the tolerance."""
    folder = tmp_path / "videos"
    paths = synthetic_videos(folder, fps=10.0, seconds=8.0, clock_offset_s=0.33, jitter_s=0.005, drop_rate=0.1)
    config = write_run_yaml(
        tmp_path / "run.yaml",
        f"""
sources:
  pacing: fast
  co2: {{timestamps: {folder / "co2.csv"}}}
  ch4: {{timestamps: {folder / "ch4.csv"}, time_offset_s: -0.33}}
sync: {{silent_after_s: 5.0}}
""",
    )
    seen: list[tuple[int, int]] = []
    gaps: list[float] = []

    def record(pair: Pair, prediction: Prediction) -> None:
        co2, ch4 = pair.frames
        assert co2 is not None and ch4 is not None and prediction.ph_probs is not None
        seen.append((co2.index, ch4.index))
        gaps.append(abs(co2.t - ch4.t))

    result = run(
        RunOptions(
            co2=str(paths["co2"]),
            ch4=str(paths["ch4"]),
            model=small_onnx,
            config=config,
            alerts=tmp_path / "alerts.db",
            quiet=True,
        ),
        quiet_console(),
        on_result=record,
    )
    assert result.reason == "completed"
    assert sorted(seen) == sorted(true_pairs(folder)) and len(seen) == len(set(seen))
    assert max(gaps) <= 0.05  # half the frame period
    stats = result.stats
    assert stats["inferences"] == stats["pairs"] == len(seen) and stats["stale"] == 0
    delivered = {gas: stats["cameras"][gas]["frames"] for gas in CAMS}
    assert {gas: delivered[gas] - len(seen) for gas in CAMS} == {
        gas: stats["cameras"][gas]["unmatched"] for gas in CAMS
    }


def _start_stop_events(db: Path) -> list[tuple[str, str, str | None, tuple[str, ...]]]:
    with AlertStore(db, readonly=True) as store:
        return [(e.type, e.state, e.reason, e.camera_ids) for e in store.events()]


class LoopRig:
    """A pipeline over two scripted live cameras, the small ONNX model and a real alert service."""

    def __init__(
        self,
        tmp_path: Path,
        model: Path,
        cameras: dict[str, tuple[ScriptedCamera, object]],
        offsets: dict[str, float] | None = None,
    ) -> None:
        self.config = run_config(tmp_path, {"sync": {"silent_after_s": 0.4}})
        self.db = tmp_path / "alerts.db"
        self.hub = FrameHub(CAMS, capacity=4, lossless=False)
        self.streams = {
            gas: CameraStream(
                gas,
                reader,
                reopen=reopen,
                hub=self.hub,
                paced=False,  # type: ignore
                time_offset_s=(offsets or {}).get(gas, 0.0),
                reconnect_s=(0.2, 0.2),
            )
            for gas, (reader, reopen) in cameras.items()
        }
        self.backend = load_backend(model, device="cpu")
        self.service = AlertService(self.config.alerts, self.config.sinks, device_id="test")
        self.times: list[float] = []
        self.degraded: list[float] = []
        self.station = Station(
            "default",
            self.streams,
            self.hub,
            ModelInputs(CAMS, dict.fromkeys(CAMS, self.backend.contract.preprocessing)),
            tolerance_s=0.025,
            silent_after_s=0.4,
        )
        self.pipeline = Pipeline(
            [self.station], self.backend, self.service, tick_s=0.05, stats_interval_s=60.0, on_result=self._seen
        )

    def _seen(self, pair: Pair, prediction: Prediction) -> None:
        self.times.append(pair.t)
        if None in pair.frames:
            self.degraded.append(pair.t)

    def run(self, seconds: float) -> dict[str, object]:
        self.service.start()
        try:
            reason = self.pipeline.run(lambda: False, duration_s=seconds)
        finally:
            self.service.close(self.pipeline.stats(), "completed")
            self.backend.close()
        assert reason == "completed"
        return self.pipeline.stats()


def _comes_back(after_tries: int, script: Iterator[np.ndarray]) -> object:
    """A reopen factory that fails `after_tries` times (camera still unplugged), then returns a working camera."""
    tries = itertools.count()

    def reopen() -> ScriptedCamera:
        if next(tries) < after_tries:
            raise FumeEdgeError("no such camera device")
        return ScriptedCamera("ch4", script, fps=20.0)

    return reopen


def test_camera_that_dies_and_comes_back_degrades_then_recovers_while_inference_goes_on(
    tmp_path: Path, small_onnx: Path
) -> None:
    def with_garbage(seed: int) -> Iterator[np.ndarray]:
        for k, image in enumerate(noise_frames(seed=seed)):
            yield np.empty((0, 0), np.uint8) if k % 7 == 3 else image

    rig = LoopRig(
        tmp_path,
        small_onnx,
        {
            "co2": (ScriptedCamera("co2", with_garbage(1), fps=20.0), None),
            "ch4": (
                ScriptedCamera("ch4", noise_frames(seed=2), fps=20.0, die_after=15),
                _comes_back(4, noise_frames(seed=3)),
            ),  # dead from ~0.75 s, back ~0.8 s later
        },
    )
    stats = rig.run(3.0)
    events = _start_stop_events(rig.db)
    assert events == [(CAMERA_DEGRADED, START, None, ("ch4",)), (CAMERA_DEGRADED, END, "recovered", ("ch4",))]
    assert stats["cameras"]["ch4"]["reconnects"] == 1  # type: ignore[index]
    assert stats["cameras"]["co2"]["garbage"] > 0 and stats["degraded"] == len(rig.degraded) > 0  # type: ignore
    # inference went on alone while CH4 was out, and paired again after it came back
    assert rig.times[-1] > rig.degraded[-1]


def test_both_cameras_silent_is_camera_offline_until_they_return(tmp_path: Path, small_onnx: Path) -> None:
    rig = LoopRig(
        tmp_path,
        small_onnx,
        {
            gas: (ScriptedCamera(gas, noise_frames(seed=k), fps=20.0, die_after=12), _comes_back(3, noise_frames()))
            for k, gas in enumerate(CAMS)
        },
    )
    rig.run(2.5)
    kinds = [(kind, state) for kind, state, _, _ in _start_stop_events(rig.db)]
    assert (CAMERA_OFFLINE, START) in kinds and (CAMERA_OFFLINE, END) in kinds
    assert kinds[-1] == (CAMERA_OFFLINE, END) or kinds[-1][0] == CAMERA_DEGRADED


@pytest.mark.parametrize("pacing", ["realtime", "fast"])
def test_synthetic_outage_shows_degraded_mode_in_both_pacings(pacing: str, tmp_path: Path, small_onnx: Path) -> None:
    """The synthetic cameras' CH4 outage: `camera_degraded` starts and ends, single-gas inferences fill the gap."""
    config = write_run_yaml(
        tmp_path / "run.yaml",
        """
sources:
  synthetic:
    fps: 20.0
    segments: [{ph: 6.4, seconds: 1.0}, {ph: 5.2, seconds: 2.0}]
    outage: {gas: ch4, start_s: 0.8, seconds: 1.2}
sync: {silent_after_s: 0.42}
""",
    )
    singles: list[float] = []
    terminal = io.StringIO()
    result = run(
        RunOptions(
            co2="synthetic",
            ch4="synthetic",
            model=small_onnx,
            config=config,
            pacing=pacing,
            alerts=tmp_path / "alerts.db",
            jsonl=tmp_path / "alerts.jsonl",
            snapshots=tmp_path / "snapshots",
            record=tmp_path / "view.avi",
            max_frames=None if pacing == "realtime" else 55,
            duration=2.8 if pacing == "realtime" else None,
        ),
        Console(file=terminal, force_terminal=True, width=200),
        on_result=lambda pair, _: singles.append(pair.t) if None in pair.frames else None,
    )
    events = _start_stop_events(tmp_path / "alerts.db")
    degraded = [(state, reason) for kind, state, reason, _ in events if kind == CAMERA_DEGRADED]
    assert degraded == [(START, None), (END, "recovered")]
    assert singles and result.stats["singles"] >= len(singles)
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == len(events)
    assert len(list((tmp_path / "snapshots").glob("*camera_degraded_start*.png"))) == 1
    recorded = cv2.VideoCapture(str(tmp_path / "view.avi"))
    views = result.stats["views"]  # drawn in their own thread: behind, they are dropped and counted
    assert int(recorded.get(cv2.CAP_PROP_FRAME_COUNT)) == views["shown"] > 0
    assert views["shown"] + views["dropped"] == result.stats["inferences"]
    shown = terminal.getvalue()  # the live panel, the event lines and the summary
    for text in (
        "pairing ±25 ms",
        "inference",
        "capture-to-result",
        "camera_degraded",
        "recovered",
        "fume-edge run: completed",
    ):
        assert text in shown
    if pacing == "fast":  # media time, so exact: CH4 last seen at 0.75, silent from 1.2 to its return at 2.0
        assert [round(t - singles[0], 2) for t in singles] == [round(k / 20, 2) for k in range(16)]


def test_live_loop_under_overload_infers_the_newest_pair_and_counts_every_skip(
    tmp_path: Path, small_onnx: Path
) -> None:
    """Cameras far faster than inference: rings overwrite, older ready pairs are skipped as stale, results stay
    current, and every pair the synchronizer made is either inferred or counted."""
    rig = LoopRig(
        tmp_path,
        small_onnx,
        {gas: (ScriptedCamera(gas, noise_frames(seed=k), fps=800.0), None) for k, gas in enumerate(CAMS)},
    )
    rig.station.tolerance_s = 0.0006
    stats = rig.run(1.5)
    cameras = stats["cameras"]
    assert all(c["overwritten"] > 0 for c in cameras.values())  # type: ignore[attr-defined]  (the loop was behind)
    assert stats["pairs"] + stats["singles"] == stats["inferences"] + stats["stale"]  # type: ignore[operator]
    # nothing queued up: every frame a camera delivered was overwritten, paired, left unmatched or still pending
    for c in cameras.values():  # type: ignore[attr-defined]
        accounted = c["overwritten"] + c["unmatched"] + c["out_of_order"] + stats["pairs"] + stats["singles"]
        assert c["frames"] - accounted <= 4 + 2  # at most a ring and the frames awaiting a pairing decision


def test_nan_frames_are_garbage_and_alerting_stays_on(tmp_path: Path, small_onnx: Path) -> None:
    """Float frames with one NaN or inf pixel now and then: each is skipped and counted, the policy never holds
    NaN, and a later camera alert is still stored (a NaN in the smoothing used to make every event unencodable)."""

    def with_bad_pixels() -> Iterator[np.ndarray]:
        for k, image in enumerate(noise_frames(seed=1)):
            frame = image.astype(np.float32) / 255.0
            if k % 4 == 1:
                frame[7, 9] = np.nan if k % 8 == 1 else np.inf
            yield frame

    rig = LoopRig(
        tmp_path,
        small_onnx,
        {
            "co2": (ScriptedCamera("co2", with_bad_pixels(), fps=20.0), None),
            "ch4": (ScriptedCamera("ch4", noise_frames(seed=2), fps=20.0, die_after=20), None),
        },
    )  # then gone for good
    stats = rig.run(2.5)
    co2 = stats["cameras"]["co2"]  # type: ignore[index]
    assert co2["garbage"] >= 5 and co2["last_garbage"] == "non-finite values (NaN or inf)"
    smoothed = rig.service.policy.smoothed_probs
    assert smoothed is not None and all(np.isfinite(list(smoothed.values())))
    assert (CAMERA_DEGRADED, START, None, ("ch4",)) in _start_stop_events(rig.db)


def test_cameras_that_never_pair_raise_cameras_unpaired_with_the_measured_offset(
    tmp_path: Path, small_onnx: Path
) -> None:
    """Both cameras deliver, but the CH4 clock runs 0.3 s ahead (far beyond the 25 ms tolerance): nothing pairs, which
    is an alert of its own carrying the offset, not only a counter."""
    rig = LoopRig(
        tmp_path,
        small_onnx,
        {gas: (ScriptedCamera(gas, noise_frames(seed=k), fps=20.0), None) for k, gas in enumerate(CAMS)},
        offsets={"ch4": 0.3},
    )
    stats = rig.run(1.5)
    assert stats["pairs"] == 0 and stats["unpaired_offset_s"] is not None
    with AlertStore(rig.db, readonly=True) as store:
        started = [e for e in store.events() if e.type == CAMERAS_UNPAIRED and e.state == START]
    assert len(started) == 1 and started[0].detail is not None
    assert started[0].detail["offset_s"] == pytest.approx(0.3, abs=0.06)


def test_the_view_worker_drops_views_it_cannot_keep_up_with_and_records_the_rest(tmp_path: Path) -> None:
    """`--record` in its own thread: a burst far faster than encoding is dropped and counted, never queued up
    behind inference; what was kept is exactly what the video holds."""
    from alerts_support import prediction

    from fume_edge.pipeline.view import Recorder, ViewWorker

    size = (128, 96)
    worker = ViewWorker(None, Recorder(tmp_path / "view.avi", 10.0, size), size, CAMS)
    frames = noise_frames((96, 128))
    for _ in range(200):
        image = next(frames)
        worker.submit((image, image), prediction(shape=(96, 128)))
    worker.close()
    assert worker.dropped > 0 and worker.shown + worker.dropped == 200
    assert int(cv2.VideoCapture(str(tmp_path / "view.avi")).get(cv2.CAP_PROP_FRAME_COUNT)) == worker.shown
