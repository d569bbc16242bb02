"""`LiveFeed`: the loop's latest result, published for the web server without slowing the loop.

The loop thread calls `on_result` once per inference; it stores references (one tuple assignment, no copy, no
encoding), the result's time for the FPS figure, and the stage times for the /metrics histograms. Camera images
are rendered and JPEG-encoded only when a client asks for one, at most `frame_fps` times a second per camera
however many clients watch; between encodes every client gets the cached bytes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple
from collections.abc import Callable

import cv2
import numpy as np

from fume_edge.alerts.snapshot import overlay_panel
from fume_edge.pipeline.sync import Pair
from fume_edge.runtime.base import Prediction

FPS_WINDOW_S = 5.0


class Latest(NamedTuple):
    seq: int  # results published so far
    images: tuple[np.ndarray | None, ...]  # per camera, None when it was silent
    prediction: Prediction
    at: float  # monotonic time of publication


@dataclass(frozen=True)
class _Jpeg:
    seq: int
    at: float
    data: bytes


class LiveFeed:
    """Published by the loop (`on_result`), read by the web threads (`latest`, `fps`, `jpeg`)."""

    def __init__(
        self,
        cameras: tuple[str, ...],
        size: tuple[int, int],
        *,
        frame_fps: float,
        jpeg_quality: int,
        on_each: Callable[[], None] | None = None,
    ) -> None:
        """`size`: (width, height) of the camera images served."""
        self.cameras, self.size = cameras, size
        self.frame_interval_s, self.jpeg_quality = 1.0 / frame_fps, jpeg_quality
        self.on_each = on_each  # e.g. the stage histograms' update, run in the loop thread
        self.latest: Latest | None = None
        self.encoded = 0  # JPEGs encoded (to show that nothing is encoded while nobody watches)
        self._times: deque[float] = deque(maxlen=1024)
        self._jpegs: dict[str, _Jpeg] = {}
        self._encode_lock = threading.Lock()

    def on_result(self, pair: Pair, prediction: Prediction) -> None:
        """The loop's per-result hook: publish references to this result."""
        now = time.monotonic()
        images = tuple(None if frame is None else frame.image for frame in pair.frames)
        self.latest = Latest(0 if self.latest is None else self.latest.seq + 1, images, prediction, now)
        self._times.append(now)
        if self.on_each is not None:
            self.on_each()

    def fps(self) -> float:
        """Results per second over the last few seconds (0 when none came)."""
        try:
            times = tuple(self._times)
        except RuntimeError:  # appended to while copied: take it again
            times = tuple(self._times)
        now = time.monotonic()
        recent = [t for t in times if now - t <= FPS_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    def jpeg(self, camera: str) -> bytes | None:
        """The newest result's panel of `camera` (frame with gas/tube overlay) as JPEG; None before any result."""
        index = self.cameras.index(camera)
        with self._encode_lock:
            latest, cached, now = self.latest, self._jpegs.get(camera), time.monotonic()
            if latest is None:
                return None
            if cached is not None and (cached.seq == latest.seq or now - cached.at < self.frame_interval_s):
                return cached.data
            panel = overlay_panel(latest.images[index], latest.prediction.seg.get(camera), self.size)
            ok, buffer = cv2.imencode(".jpg", panel, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                return None if cached is None else cached.data
            self._jpegs[camera] = _Jpeg(latest.seq, now, buffer.tobytes())
            self.encoded += 1
            return self._jpegs[camera].data
