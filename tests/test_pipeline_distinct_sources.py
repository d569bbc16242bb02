"""One video, folder or camera for both gases is refused however it is spelled: path, symlink or hard link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.sources import check_distinct_sources


def test_a_hard_link_to_the_same_video_is_the_same_source(tmp_path: Path) -> None:
    video = tmp_path / "co2.mp4"
    video.write_bytes(b"\0" * 64)
    linked = tmp_path / "other" / "ch4.mp4"
    linked.parent.mkdir()
    os.link(video, linked)
    with pytest.raises(FumeEdgeError, match=f"--ch4 {linked}: the same source as --co2 {video}"):
        check_distinct_sources(str(video), str(linked))
    copy = tmp_path / "ch4.mp4"
    copy.write_bytes(video.read_bytes())  # equal bytes, another file: two sources
    check_distinct_sources(str(video), str(copy))
    os.symlink(tmp_path / "other", tmp_path / "via-link")
    with pytest.raises(FumeEdgeError, match="the same source"):
        check_distinct_sources(str(linked), str(tmp_path / "via-link" / "ch4.mp4"))
    check_distinct_sources("synthetic", "synthetic")
    check_distinct_sources("rtsp://cam-a/stream", "rtsp://cam-b/stream")
