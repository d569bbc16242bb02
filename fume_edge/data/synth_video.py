"""Paired CO2/CH4 video files with per-frame ground truth (`fume-edge synth OUT_DIR --videos`).

They stand in for two real cameras in the capture, pairing and alert tests, faults included: the CH4 camera's clock
runs `clock_offset_s` ahead of the CO2 camera's, every timestamp jitters, frames drop at random, and one camera can
go silent for a while (an outage). The pH follows `segments` (one sample after another), so alerts have something
to react to.

OUT_DIR holds, per gas, `{gas}.avi` (Motion-JPEG, 8-bit grayscale; readable by every OpenCV build) and
`{gas}.csv`, one row per scheduled capture:
`frame_index` (capture number, shared by both cameras), `video_frame` (position in the video; empty when the
frame was not delivered), `timestamp_s` (that camera's clock), `true_time_s` (the common reference clock),
`ph`, `ph_class`, `gas_area` (fraction of pixels that are gas), `dropped` (1: not in the video, for any reason)
and `outage` (1: lost to the outage).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from fume_edge.config import replace
from fume_edge.data.config import PhClasses, SyntheticConfig, VideoConfig
from fume_edge.data.csvio import staged_directory, write_tables
from fume_edge.data.synthetic import SyntheticScene
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import GAS_CLASS_ID, GASES, PH_CLASS_NAMES

VIDEO_COLUMNS: tuple[str, ...] = (
    "frame_index",
    "video_frame",
    "timestamp_s",
    "true_time_s",
    "ph",
    "ph_class",
    "gas_area",
    "dropped",
    "outage",
)
FOURCC = "MJPG"


def video_frame_count(video: VideoConfig) -> int:
    """Captures scheduled per camera."""
    return int(round(sum(s.seconds for s in video.segments) * video.fps))


def stretch_to(video: VideoConfig, seconds: float) -> VideoConfig:
    """The same pH story lasting `seconds`: every segment scaled by one factor (`synth --videos --seconds N`).

    The run's alert timings are minutes of sustained probability on a barn; a video long enough to show them
    keeps each segment's share of the story.
    """
    if seconds <= 0:
        raise FumeEdgeError(f"--seconds {seconds:g}: expected a positive number of seconds")
    factor = seconds / sum(s.seconds for s in video.segments)
    return replace(video, segments=tuple(replace(s, seconds=s.seconds * factor) for s in video.segments))


def ph_at(video: VideoConfig, t: float) -> float:
    """The pH shown at time `t` (the last segment continues past the end)."""
    for segment in video.segments:
        if t < segment.seconds:
            return segment.ph
        t -= segment.seconds
    return video.segments[-1].ph


def _open_writer(path: Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*FOURCC), fps, (width, height), isColor=False)
    if not writer.isOpened():
        raise FumeEdgeError(f"{path}: OpenCV cannot write {FOURCC} video here; check the OpenCV build and disk")
    return writer


def write_paired_videos(
    out_dir: str | Path,
    config: SyntheticConfig,
    classes: PhClasses,
    seed: int,
    overwrite: bool = False,
    on_frames: Callable[[int], None] = lambda n: None,
) -> dict[str, Path]:
    """Render the `config.video` schedule for both cameras into `out_dir`; returns each gas's video path.

    `on_frames(n)` is called after each capture with the number of frames handled (for a progress bar).
    """
    video = config.video
    rng = np.random.default_rng(seed)
    scene = SyntheticScene(seed, config.width, config.height, config.response)
    n = video_frame_count(video)
    outage = video.outage
    out_dir = Path(out_dir)
    with staged_directory(out_dir, overwrite) as folder:
        paths = {gas: folder / f"{gas}.avi" for gas in GASES}
        writers = {gas: _open_writer(paths[gas], video.fps, config.width, config.height) for gas in GASES}
        rows: dict[str, list[list[object]]] = {gas: [] for gas in GASES}
        written = dict.fromkeys(GASES, 0)
        try:
            for k in range(n):
                for gas in GASES:
                    true_time = k / video.fps + rng.uniform(-video.jitter_s, video.jitter_s)
                    stamp = true_time + (video.clock_offset_s if gas == "ch4" else 0.0)
                    ph = ph_at(video, k / video.fps)
                    lost = (
                        outage is not None
                        and gas == outage.gas
                        and (outage.start_s <= k / video.fps < outage.start_s + outage.seconds)
                    )
                    dropped = lost or rng.random() < video.drop_rate
                    frame, mask = scene.render(gas, scene.amounts(ph)[GASES.index(gas)], true_time)
                    if not dropped:
                        writers[gas].write(frame)
                        written[gas] += 1
                    rows[gas].append(
                        [
                            k,
                            "" if dropped else written[gas] - 1,
                            f"{stamp:.6f}",
                            f"{true_time:.6f}",
                            f"{ph:g}",
                            PH_CLASS_NAMES[classes.classify(ph)],
                            f"{float(np.mean(mask == GAS_CLASS_ID)):.5f}",
                            int(dropped),
                            int(lost),
                        ]
                    )
                on_frames(2)
        finally:
            for writer in writers.values():
                writer.release()
        write_tables({folder / f"{gas}.csv": (VIDEO_COLUMNS, rows[gas]) for gas in GASES})
    return {gas: out_dir / f"{gas}.avi" for gas in GASES}
