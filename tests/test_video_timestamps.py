"""Recorded videos keep their capture times: `<video>.csv` beside a video is read automatically, and
`synth --videos --seconds N` makes videos as long as the alert timings need."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pipeline_support import run_config, synthetic_videos

from fume_edge.data.config import Outage, load_data_config
from fume_edge.data.synth_video import stretch_to, video_frame_count
from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.sources import open_reader


def test_an_outage_in_the_video_is_a_gap_in_its_frame_times(tmp_path: Path) -> None:
    paths = synthetic_videos(
        tmp_path / "v",
        fps=10.0,
        seconds=3.0,
        clock_offset_s=0.5,
        jitter_s=0.0,
        drop_rate=0.0,
        outage=Outage(gas="ch4", start_s=1.0, seconds=1.0),
    )
    reader = open_reader(str(paths["ch4"]), "ch4", run_config(tmp_path))
    times = []
    while (got := reader.read()) is not None:
        times.append(got[1])
    reader.close()
    assert len(times) == 20  # 30 captures, 10 lost to the outage
    assert times[0] == pytest.approx(0.5)  # the CH4 camera's own clock, not the frame count
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) == pytest.approx(1.1) and sorted(gaps)[-2] == pytest.approx(0.1)


def test_a_config_timestamps_file_wins_over_the_sidecar(tmp_path: Path) -> None:
    paths = synthetic_videos(tmp_path / "v", fps=10.0, seconds=0.5, clock_offset_s=0.0, jitter_s=0.0, drop_rate=0.0)
    other = tmp_path / "other.csv"
    other.write_text("video_frame,timestamp_s\n" + "".join(f"{k},{100 + k}\n" for k in range(5)), encoding="utf-8")
    reader = open_reader(
        str(paths["co2"]), "co2", run_config(tmp_path, {"sources": {"co2": {"timestamps": str(other)}}})
    )
    assert reader.read()[1] == 100.0  # type: ignore[index]
    reader.close()


def test_seconds_stretches_the_ph_story_to_the_length_asked() -> None:
    video = load_data_config().synthetic.video
    long = stretch_to(video, 90.0)
    assert [s.ph for s in long.segments] == [s.ph for s in video.segments]
    assert sum(s.seconds for s in long.segments) == pytest.approx(90.0)
    assert video_frame_count(long) == 900
    with pytest.raises(FumeEdgeError, match="--seconds"):
        stretch_to(video, 0)
