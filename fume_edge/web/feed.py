"""`LiveFeeds`: each station's latest result, published for the web server without slowing the loop.

Every station has its own `LiveFeed`, whose `on_result` is that station's result hook: the loop thread calls it
once per inference of the station; it stores references (one tuple assignment, no copy, no encoding) and runs the
shared `on_each` (the /metrics stage histograms). Camera images are rendered and JPEG-encoded only when a client
asks for one, at most `frame_fps` times a second per camera of each station however many clients watch; between
encodes every client gets the cached bytes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from fume_edge.alerts.snapshot import overlay_panel
from fume_edge.pipeline.sync import Pair
from fume_edge.runtime.base import Prediction


class Latest(NamedTuple):
    seq: int  # results of the station published so far
    images: tuple[np.ndarray | None, ...]  # per camera, None when it was silent
    prediction: Prediction
    at: float  # monotonic time of publication


@dataclass(frozen=True)
class _Jpeg:
    seq: int
    at: float
    data: bytes


class LiveFeed:
    """One station's images: published by the loop (`on_result`), read by the web threads (`latest`, `jpeg`);
    the settings and `on_each` are its group's."""

    def __init__(self, group: LiveFeeds) -> None:
        self.group = group
        self.latest: Latest | None = None
        self.encoded = 0  # JPEGs encoded (to show that nothing is encoded while nobody watches)
        self._jpegs: dict[str, _Jpeg] = {}
        self._encode_lock = threading.Lock()

    def on_result(self, pair: Pair, prediction: Prediction) -> None:
        """The station's per-result hook: publish references to this result."""
        images = tuple(None if frame is None else frame.image for frame in pair.frames)
        self.latest = Latest(0 if self.latest is None else self.latest.seq + 1, images, prediction, time.monotonic())
        each = self.group.on_each
        if each is not None:
            each()

    def jpeg(self, camera: str) -> bytes | None:
        """The newest result's panel of `camera` (frame with gas/tube overlay) as JPEG; None before any result."""
        group = self.group
        index = group.cameras.index(camera)
        with self._encode_lock:
            latest, cached, now = self.latest, self._jpegs.get(camera), time.monotonic()
            if latest is None:
                return None
            if cached is not None and (cached.seq == latest.seq or now - cached.at < group.frame_interval_s):
                return cached.data
            panel = overlay_panel(latest.images[index], latest.prediction.seg.get(camera), group.size)
            ok, buffer = cv2.imencode(".jpg", panel, [cv2.IMWRITE_JPEG_QUALITY, group.jpeg_quality])
            if not ok:
                return None if cached is None else cached.data
            self._jpegs[camera] = _Jpeg(latest.seq, now, buffer.tobytes())
            self.encoded += 1
            return self._jpegs[camera].data


class LiveFeeds(Mapping[str, LiveFeed]):
    """Every station's `LiveFeed` by station id, in run order, with the settings they share."""

    def __init__(
        self,
        stations: Sequence[str],
        cameras: tuple[str, ...],
        size: tuple[int, int],
        *,
        frame_fps: float,
        jpeg_quality: int,
    ) -> None:
        """`size`: (width, height) of the camera images served."""
        self.cameras, self.size = cameras, size
        self.frame_interval_s, self.jpeg_quality = 1.0 / frame_fps, jpeg_quality
        self.on_each: Callable[[], None] | None = None  # after every result of any station, in the loop thread
        self._feeds = {station: LiveFeed(self) for station in stations}

    def __getitem__(self, station: str) -> LiveFeed:
        return self._feeds[station]

    def __iter__(self) -> Iterator[str]:
        return iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)

    @property
    def first(self) -> LiveFeed:
        """The first station's (`/api/frame/{camera}.jpg`, as before stations)."""
        return next(iter(self._feeds.values()))

    @property
    def encoded(self) -> int:
        """JPEGs encoded for every station."""
        return sum(feed.encoded for feed in self._feeds.values())

    def newest_at(self) -> float | None:
        """When any station last published a result (monotonic; None before the first)."""
        return max((feed.latest.at for feed in self._feeds.values() if feed.latest is not None), default=None)
