"""Sources, capture threads and input preparation: real OpenCV files and folders, real threads, one-line errors."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pipeline_support import FRAME_SIZE, ScriptedCamera, noise_frames, run_config, synthetic_videos

from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.capture import ENDED, CameraStream, FrameHub, frame_problem
from fume_edge.pipeline.config import CameraConfig
from fume_edge.pipeline.prepare import ModelInputs
from fume_edge.pipeline.sources import as_raw16, open_reader
from fume_edge.pipeline.sync import Frame
from fume_edge.pipeline.synthetic_source import scenario_ph
from fume_edge.runtime.pre import InvalidFrame, Preprocessing
from waiting import eventually

W, H = FRAME_SIZE


@pytest.mark.parametrize(
    "spec, message",
    [
        ("/dev/video99", "--co2 /dev/video99: no such camera device /dev/video99"),
        ("99", "--co2 99: no such camera device /dev/video99"),
        ("missing.mp4", "--co2 missing.mp4: no such file, folder or camera"),
        ("rtsp://127.0.0.1:9/stream", "--co2 rtsp://127.0.0.1:9/stream: cannot open this stream"),
    ],
)
def test_a_source_that_is_not_there_is_one_clear_line(spec: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(FumeEdgeError) as err:
        open_reader(spec, "co2", run_config(tmp_path))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_unreadable_video_and_empty_folder_are_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "empty").mkdir()
    config = run_config(tmp_path)
    with pytest.raises(FumeEdgeError, match=r"^--ch4 .*broken.mp4: cannot open this file"):
        open_reader(str(tmp_path / "broken.mp4"), "ch4", config)
    with pytest.raises(FumeEdgeError, match=r"^--ch4 .*empty: no images"):
        open_reader(str(tmp_path / "empty"), "ch4", config)


def test_video_file_gives_media_time_from_fps_or_timestamps_and_loops(tmp_path: Path) -> None:
    paths = synthetic_videos(tmp_path / "v", fps=10.0, seconds=0.5, clock_offset_s=0.2, jitter_s=0.004, drop_rate=0.0)
    alone = Path(shutil.copy(paths["ch4"], tmp_path / "alone.avi"))  # no alone.csv beside it: times from its fps
    by_fps = open_reader(str(alone), "ch4", run_config(tmp_path, {"sources": {"loop": True}}))
    times = [by_fps.read()[1] for _ in range(12)]  # type: ignore[index]
    assert by_fps.fps == pytest.approx(10.0) and not by_fps.live
    assert times == pytest.approx([k / 10 for k in range(12)])  # 5 frames, looped: time goes on
    timestamps = str(paths["ch4"].with_suffix(".csv"))
    by_csv = open_reader(
        str(paths["ch4"]), "ch4", run_config(tmp_path, {"sources": {"ch4": {"timestamps": timestamps}}})
    )
    got = [by_csv.read() for _ in range(6)]
    assert got[-1] is None
    stamps = [t for _, t in got[:-1]]  # type: ignore[misc]
    assert all(abs(t - (0.2 + k / 10)) <= 0.004 + 1e-6 for k, t in enumerate(stamps))


def test_folder_keeps_16_bit_frames_and_garbage_is_counted_not_fatal(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(4):
        cv2.imwrite(str(folder / f"{k}_good.png"), rng.integers(0, 65535, (H, W), dtype=np.uint16))
    (folder / "4_corrupt.png").write_bytes(b"\x89PNG garbage")
    cv2.imwrite(str(folder / "5_small.png"), np.zeros((H // 2, W // 2), np.uint16))
    cv2.imwrite(str(folder / "6_good.png"), np.zeros((H, W), np.uint16))
    reader = open_reader(str(folder), "co2", run_config(tmp_path))
    hub = FrameHub(("co2",), capacity=16, lossless=True)
    stream = CameraStream(
        "co2", reader, reopen=lambda: reader, hub=hub, paced=False, time_offset_s=0.0, reconnect_s=(0.1, 0.2)
    )
    with stream:
        stream.start(100.0)
        frames = [hub.next_in_order(5.0) for _ in range(6)]
    assert frames[-1] is ENDED and stream.state == "ended"
    got = [f for _, f in frames[:-1]]  # type: ignore[misc]
    assert [f.image.dtype for f in got] == [np.uint16] * 5
    assert [f.t for f in got] == pytest.approx([100 + k / 30 for k in (0, 1, 2, 3, 6)])  # sync.default_fps
    assert stream.garbage == 2 and stream.frames == 5
    assert "shape (60, 80)" in (stream.last_problem or "")


@pytest.mark.parametrize(
    "image, problem",
    [
        (np.zeros((0, 0), np.uint8), "empty"),
        (None, "empty"),
        (np.zeros((H, W), np.float64), "dtype float64"),
        (np.zeros((H, W, 2), np.uint8), "shape"),
        (np.zeros((2, H, W, 3), np.uint8), "shape"),
        (np.zeros((H + 1, W), np.uint8), f"this camera delivers {(H, W)}"),
        (np.where(np.eye(H, W) > 0, np.nan, 0.5).astype(np.float32), "non-finite"),
        (np.full((H, W), np.inf, np.float32), "non-finite"),
    ],
)
def test_frame_problem_names_what_is_wrong(image: object, problem: str) -> None:
    assert problem in (frame_problem(image, (H, W)) or "")


def test_frame_problem_accepts_camera_formats() -> None:
    for image in (
        np.zeros((H, W), np.uint8),
        np.zeros((H, W, 3), np.uint8),
        np.zeros((H, W, 1), np.uint16),
        np.zeros((H, W), np.float32),
        np.zeros((H, W, 4), np.uint8),
    ):
        assert frame_problem(image, None) is None


def test_live_camera_that_dies_is_reconnected_with_backoff_and_garbage_skipped() -> None:
    def script() -> object:
        frames = noise_frames()
        while True:
            yield next(frames)
            yield np.zeros((3, 3, 2), np.uint8)  # garbage from a confused driver

    opened = []

    def reopen() -> ScriptedCamera:
        opened.append(time.monotonic())
        if len(opened) == 1:
            raise FumeEdgeError("still unplugged")
        return ScriptedCamera("cam", script(), fps=200.0)  # type: ignore[arg-type]

    hub = FrameHub(("co2",), capacity=4, lossless=False)
    dying = ScriptedCamera("cam", script(), fps=200.0, die_after=10)  # type: ignore[arg-type]
    stream = CameraStream("co2", dying, reopen=reopen, hub=hub, paced=False, time_offset_s=0.0, reconnect_s=(0.05, 0.2))
    with stream:
        stream.start(time.monotonic())
        deadline = time.monotonic() + 10
        while stream.frames < 20 and time.monotonic() < deadline:
            hub.drain(0.05)
    assert stream.reconnects == 1 and len(opened) == 2
    assert opened[1] - opened[0] >= 0.1 - 1e-3  # the delay doubled after the failed try
    assert stream.frames >= 20 and stream.garbage >= 10 and stream.state == "stopped"


def test_live_ring_keeps_the_newest_and_counts_overwrites() -> None:
    hub = FrameHub(("co2", "ch4"), capacity=2, lossless=False)
    for k in range(5):
        hub.put("co2", Frame(np.zeros(1), float(k), k))
    hub.put("ch4", Frame(np.zeros(1), 2.5, 0))
    items = hub.drain(0.0)
    assert [(cam, f.t) for cam, f in items] == [("ch4", 2.5), ("co2", 3.0), ("co2", 4.0)]  # oldest first
    assert hub.overwritten == {"co2": 3, "ch4": 0}


def test_lossless_hub_merges_cameras_in_time_order_and_waits_for_both() -> None:
    hub = FrameHub(("co2", "ch4"), capacity=2, lossless=True)
    hub.put("co2", Frame(np.zeros(1), 0.0, 0))
    hub.put("co2", Frame(np.zeros(1), 0.1, 1))
    assert hub.next_in_order(0.05) is None  # CH4 may still deliver something earlier
    hub.put("ch4", Frame(np.zeros(1), 0.05, 0))
    assert [hub.next_in_order(0.1)[1].t for _ in range(2)] == [0.0, 0.05]  # type: ignore[index]
    hub.end("ch4")
    assert hub.next_in_order(0.1)[1].t == 0.1  # type: ignore[index]
    hub.end("co2")
    assert hub.next_in_order(0.1) is ENDED


def test_model_inputs_reuse_one_buffer_per_camera_and_zero_a_silent_one() -> None:
    rng = np.random.default_rng(0)
    pre = Preprocessing((64, 48), uint16_range=(20000.0, 40000.0))
    inputs = ModelInputs(("co2", "ch4"), {"co2": pre, "ch4": pre})
    for image in (
        rng.integers(0, 256, (96, 128), dtype=np.uint8),
        rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
        rng.integers(15000, 45000, (30, 40), dtype=np.uint16),
        rng.random((48, 64), dtype=np.float32),
    ):
        co2, ch4, mask = inputs.prepare((image, None))
        assert co2 is inputs.buffers["co2"] and not ch4.any()
        np.testing.assert_array_equal(co2, pre.to_input(image))
        np.testing.assert_array_equal(mask, [[1.0, 0.0]])


def test_raw16_bytes_are_reinterpreted_at_the_configured_size() -> None:
    camera = CameraConfig(
        source=None,
        width=4,
        height=2,
        fps=None,
        fourcc="Y16",
        raw16=True,
        value_range=None,
        time_offset_s=0.0,
        timestamps=None,
    )
    values = np.arange(8, dtype="<u2").reshape(2, 4) * 1000
    raw = values.view(np.uint8).reshape(2, 8)  # what some drivers hand over
    np.testing.assert_array_equal(as_raw16(raw, camera, "--co2 /dev/video0"), values)
    assert as_raw16(values, camera, "--co2 /dev/video0") is values
    with pytest.raises(InvalidFrame, match=r"--co2 /dev/video0: a raw16 frame of uint8 \(2, 6\) does not fit 4x2"):
        as_raw16(raw[:, :6], camera, "--co2 /dev/video0")  # bytes of another size are refused, never scaled by 1/255


def test_raw16_without_the_sensor_size_is_refused_in_the_config(tmp_path: Path) -> None:
    with pytest.raises(FumeEdgeError, match=r"sources.co2.raw16: needs width and height"):
        run_config(tmp_path, {"sources": {"co2": {"raw16": True, "fourcc": "Y16", "width": None}}})


def test_synthetic_source_follows_the_scenario_and_skips_its_outage(tmp_path: Path) -> None:
    config = run_config(
        tmp_path,
        {
            "sources": {
                "synthetic": {
                    "fps": 10.0,
                    "segments": [{"ph": 6.4, "seconds": 1.0}, {"ph": 5.2, "seconds": 1.0}],
                    "outage": {"gas": "ch4", "start_s": 0.5, "seconds": 0.3},
                }
            }
        },
    )
    segments = config.sources.synthetic.segments
    assert [scenario_ph(segments, t) for t in (0.0, 0.99, 1.0, 2.5)] == [6.4, 6.4, 5.2, 6.4]
    ch4, co2 = open_reader("synthetic", "ch4", config), open_reader("synthetic", "co2", config)
    ch4_times = [ch4.read()[1] for _ in range(20)]  # type: ignore[index]
    assert not any(0.5 <= t % 2.0 < 0.8 for t in ch4_times) and max(ch4_times) > 2.0  # skipped every cycle
    image, t = co2.read()  # type: ignore[misc]
    assert image.shape == (H, W) and image.dtype == np.uint8 and t == 0.0


def test_synthetic_stations_each_render_their_own_scene_at_their_own_point_of_the_scenario(tmp_path: Path) -> None:
    """Station k: seed + k and k x 0.618 of a cycle in (the first station is the one-station demo, unchanged); both
    cameras of a station stay one scene at one pH, so they pair and fuse as before."""
    segments = [{"ph": 6.4, "seconds": 1.0}, {"ph": 5.2, "seconds": 1.0}]
    config = run_config(tmp_path, {"sources": {"synthetic": {"fps": 10.0, "segments": segments, "outage": None}}})
    first = open_reader("synthetic", "co2", config)
    assert np.array_equal(first.read()[0], open_reader("synthetic", "co2", config, variant=0).read()[0])  # type: ignore[index]
    images = [open_reader("synthetic", "co2", config, variant=k).read()[0] for k in range(3)]  # type: ignore[index]
    assert all(not np.array_equal(images[a], images[b]) for a, b in ((0, 1), (0, 2), (1, 2)))
    # where each starts: station 1 at 0.618 of the 2 s cycle (pH 5.2), station 2 at 0.236 (pH 6.4)
    pairs = [[open_reader("synthetic", g, config, variant=k) for g in ("co2", "ch4")] for k in (1, 2)]
    for (co2, ch4), ph in zip(pairs, (5.2, 6.4), strict=True):
        assert co2._phase_s == ch4._phase_s and scenario_ph(config.sources.synthetic.segments, co2._phase_s) == ph  # type: ignore[attr-defined]


def test_a_recording_that_fails_mid_way_ends_its_camera_instead_of_hanging(tmp_path: Path) -> None:
    """A timestamps file shorter than its video: the capture thread logs it and ends that camera cleanly."""
    paths = synthetic_videos(tmp_path / "v", fps=10.0, seconds=0.6, clock_offset_s=0.0, jitter_s=0.0, drop_rate=0.0)
    short = tmp_path / "short.csv"
    short.write_text("video_frame,timestamp_s\n0,0.0\n1,0.1\n2,0.2\n")
    reader = open_reader(
        str(paths["co2"]), "co2", run_config(tmp_path, {"sources": {"co2": {"timestamps": str(short)}}})
    )
    hub = FrameHub(("co2",), capacity=8, lossless=True)
    with CameraStream(
        "co2", reader, reopen=lambda: reader, hub=hub, paced=False, time_offset_s=0.0, reconnect_s=(0.1, 0.2)
    ) as stream:
        stream.start(0.0)
        got = [hub.next_in_order(5.0) for _ in range(4)]
    assert [f.t for _, f in got[:3]] == [0.0, 0.1, 0.2] and got[3] is ENDED  # type: ignore[misc]
    assert stream.state == "ended"


def _stream(reader: object, reopen: object, hub: FrameHub, camera: str = "co2", **kw: object) -> CameraStream:
    return CameraStream(
        camera,
        reader,
        reopen=reopen,
        hub=hub,
        paced=False,
        time_offset_s=0.0,  # type: ignore
        reconnect_s=(0.05, 0.1),
        **kw,
    )  # type: ignore[arg-type]


def test_a_live_source_not_there_at_start_is_opened_when_it_appears() -> None:
    """A camera still booting: the stream starts without a reader and opens it with the reconnect backoff."""
    tries = []

    def reopen() -> ScriptedCamera:
        tries.append(time.monotonic())
        if len(tries) < 3:
            raise FumeEdgeError("cannot open this stream")
        return ScriptedCamera("cam", noise_frames(), fps=100.0)

    hub = FrameHub(("co2",), capacity=4, lossless=False)
    with _stream(None, reopen, hub, name="--co2 rtsp://cam") as stream:
        stream.start(time.monotonic())
        eventually(lambda: stream.frames >= 5, "stream.frames >= 5", timeout_s=10.0)
        assert (stream.state, stream.reconnects, len(tries)) == ("live", 0, 3)


def test_a_reopen_that_fails_in_an_unexpected_way_is_retried_not_fatal() -> None:
    tries = []

    def reopen() -> ScriptedCamera:
        tries.append(1)
        if len(tries) < 3:
            raise RuntimeError("VIDIOC_STREAMON: Input/output error")  # not one of the usual error types
        return ScriptedCamera("cam", noise_frames(), fps=100.0)

    hub = FrameHub(("co2",), capacity=4, lossless=False)
    dying = ScriptedCamera("cam", noise_frames(), fps=100.0, die_after=3)
    with _stream(dying, reopen, hub) as stream:
        stream.start(time.monotonic())
        eventually(
            lambda: stream.reconnects == 1 and stream.frames >= 8,
            "stream.reconnects == 1 and stream.frames >= 8",
            timeout_s=10.0,
        )
        assert stream.state == "live" and len(tries) == 3


def test_stopping_one_camera_leaves_the_shared_hub_to_the_other() -> None:
    hub = FrameHub(("co2", "ch4"), capacity=4, lossless=False)
    co2 = _stream(ScriptedCamera("a", noise_frames(), fps=100.0), None, hub, "co2")
    co2.start(time.monotonic())
    co2.stop()
    assert co2.state == "stopped"
    assert hub.put("ch4", Frame(np.zeros(1), 1.0, 0)) and not hub.put("co2", Frame(np.zeros(1), 1.0, 0))


class StuckCamera:
    """A live reader whose read never returns (a driver call hanging), and which records being closed."""

    live, fps, name = True, 30.0, "stuck"

    def __init__(self) -> None:
        self.closed = False
        self._never = threading.Event()

    def read(self) -> None:
        self._never.wait()

    def close(self) -> None:
        self.closed = True


def test_stop_gives_up_on_a_hung_read_and_does_not_pull_the_reader_away() -> None:
    reader = StuckCamera()
    stream = _stream(reader, None, FrameHub(("co2",), capacity=4, lossless=False), stop_timeout_s=0.2)
    stream.start(time.monotonic())
    stream.stop()  # returns (a join without a timeout would hang here for ever)
    assert stream.state == "stopped" and not reader.closed


def test_a_live_frame_that_misses_a_drain_is_stamped_after_it() -> None:
    """Live frames are stamped under the hub's lock: one put after a drain can never be older than that drain,
    so it cannot land behind the pairing watermark the loop sets from `drained_at`."""
    hub = FrameHub(("co2",), capacity=4, lossless=False)
    assert hub.put("co2", Frame(np.zeros(1), 0.0, 0), stamp=True)
    first = hub.drain(0.0)
    late = Frame(np.zeros(1), -0.5, 1)  # a camera configured 0.5 s early: t holds its offset until stamped
    hub.put("co2", late, stamp=True)
    assert first[0][1].t <= hub.drained_at <= late.t + 0.5
