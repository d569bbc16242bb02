"""Capture threads and the bounded rings between them and the inference loop.

One `CameraStream` thread per camera reads its source, places each frame on the run's monotonic clock, paces
recorded sources in real time when asked, skips and counts garbage frames, and reconnects a dead live source with
exponential backoff. Frames go into the `FrameHub`: one bounded ring per camera. Live rings keep only the newest
frames (the oldest is overwritten and counted), so a slow consumer never builds latency; lossless rings (recorded
sources played as fast as possible) make the reader wait instead, so every frame is processed exactly once.

Live frames are stamped by the hub, under its lock, as they go in (`put(..., stamp=True)`), and `drain` notes the
time it took them under the same lock (`drained_at`): a frame that misses a drain is stamped after it, so it can
never land behind the pairing watermark the loop derives from that time. A live source that is not there yet (a
camera still booting, a stream not up) and one that dies are retried with the same backoff, whatever the error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from fume_edge.pipeline.sources import FrameReader, SourceLost
from fume_edge.pipeline.sync import Frame

log = logging.getLogger(__name__)

FRAME_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
ENDED = object()  # FrameHub.next_in_order: every camera has ended and every frame was taken


def frame_problem(image: object, expected_shape: tuple[int, ...] | None) -> str | None:
    """Why `image` cannot be a frame of this camera (None when it can): empty, not an image, an unsupported dtype
    or channel count, a size other than the camera's (`expected_shape`, from its first good frame), or NaN/inf."""
    if not isinstance(image, np.ndarray) or image.size == 0:
        return "empty frame"
    if image.dtype not in FRAME_DTYPES:
        return f"dtype {image.dtype} (expected uint8, uint16 or float32)"
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        return f"shape {image.shape} (expected HxW, HxWx1, HxWx3 or HxWx4)"
    if expected_shape is not None and image.shape != expected_shape:
        return f"shape {image.shape} (this camera delivers {expected_shape})"
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        return "non-finite values (NaN or inf)"  # one such pixel would turn every output of the model into NaN
    return None


class FrameHub:
    """One station's bounded rings, one per camera, under one condition variable. `doorbell`, shared by every
    station's hub, is set whenever a frame arrives or a camera ends, so the loop can wait for any station without
    holding any station's lock (a station whose cameras block never stalls another's)."""

    def __init__(
        self, cameras: Sequence[str], capacity: int, lossless: bool, doorbell: threading.Event | None = None
    ) -> None:
        self.capacity, self.lossless = capacity, lossless
        self.doorbell = doorbell
        self.overwritten = dict.fromkeys(cameras, 0)  # frames a live ring dropped because the loop was behind
        self._rings: dict[str, deque[Frame]] = {cam: deque() for cam in cameras}
        self._ended: set[str] = set()
        self._released: set[str] = set()
        self._closed = False
        self._cond = threading.Condition()
        self.drained_at = float("-inf")  # monotonic time of the last `drain`, taken under the lock

    def put(self, camera: str, frame: Frame, stamp: bool = False) -> bool:
        """Add a frame (a lossless ring waits for room); with `stamp`, its time becomes now (plus the frame's own
        `t`, a camera's time offset) under the lock. False once the hub or this camera is released: stop."""
        with self._cond:
            ring = self._rings[camera]
            while self.lossless and len(ring) >= self.capacity and not self._refused(camera):
                self._cond.wait()
            if self._refused(camera):
                return False
            if stamp:
                frame.t += time.monotonic()
            if len(ring) >= self.capacity:
                ring.popleft()
                self.overwritten[camera] += 1
            ring.append(frame)
            self._cond.notify_all()
        if self.doorbell is not None:
            self.doorbell.set()
        return True

    def end(self, camera: str) -> None:
        """`camera` will deliver no more frames (end of a recording)."""
        with self._cond:
            self._ended.add(camera)
            self._cond.notify_all()
        if self.doorbell is not None:
            self.doorbell.set()

    def _refused(self, camera: str) -> bool:
        return self._closed or camera in self._released

    def release(self, camera: str) -> None:
        """Stop accepting frames of `camera` (its capture thread is stopping) and wake its producer if it waits."""
        with self._cond:
            self._released.add(camera)
            self._cond.notify_all()

    def close(self) -> None:
        """Stop accepting frames and wake every waiting producer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def all_ended(self) -> bool:
        with self._cond:
            return len(self._ended) == len(self._rings) and not any(self._rings.values())

    def drain(self, timeout: float) -> list[tuple[str, Frame]]:
        """Wait up to `timeout` for any frame, then take every queued frame, oldest first."""
        with self._cond:
            if not any(self._rings.values()):
                self._cond.wait(timeout)
            items = [(cam, frame) for cam, ring in self._rings.items() for frame in ring]
            for ring in self._rings.values():
                ring.clear()
            self.drained_at = time.monotonic()
            self._cond.notify_all()
        items.sort(key=lambda item: item[1].t)
        return items

    def next_in_order(self, timeout: float) -> tuple[str, Frame] | object | None:
        """The earliest frame once every camera that has not ended has one queued (so frames come out in time
        order across cameras); `ENDED` when all cameras ended and are empty; None after `timeout` without one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                ready = all(ring or cam in self._ended for cam, ring in self._rings.items())
                if ready:
                    heads = [(ring[0].t, cam) for cam, ring in self._rings.items() if ring]
                    if not heads:
                        return ENDED
                    camera = min(heads)[1]
                    frame = self._rings[camera].popleft()
                    self._cond.notify_all()
                    return camera, frame
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._cond.wait(remaining):
                    return None


class CameraStream:
    """Owns one camera's reader and capture thread (not the hub, which it shares). `reopen` makes a fresh reader
    for a reconnect. `reader` None: a live source that was not there at start; the thread keeps trying to open it."""

    def __init__(
        self,
        camera: str,
        reader: FrameReader | None,
        reopen: Callable[[], FrameReader],
        hub: FrameHub,
        *,
        paced: bool,
        time_offset_s: float,
        reconnect_s: tuple[float, float],
        name: str | None = None,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self.camera, self.reader, self.hub = camera, reader, hub
        self.name = name or (reader.name if reader is not None else camera)
        self.stop_timeout_s = stop_timeout_s
        self._reopen = reopen
        self.paced, self.time_offset_s, self.reconnect_s = paced, time_offset_s, reconnect_s
        self.state = "starting"  # live | reconnecting | ended | stopped
        self.frames = 0  # frames delivered to the hub
        self.garbage = 0  # frames skipped by `frame_problem`
        self.reconnects = 0
        self.last_problem: str | None = None
        self._expected: tuple[int, ...] | None = None
        self._start_t = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"fume-edge-capture-{camera}", daemon=True)

    def start(self, start_t: float) -> None:
        """Start capturing; recorded sources' media time 0 is `start_t` on the monotonic clock."""
        self._start_t = start_t
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (waiting up to `stop_timeout_s` for a read in progress) and close the reader."""
        self._stop.set()
        self.hub.release(self.camera)
        if self._thread.is_alive():
            self._thread.join(self.stop_timeout_s)
        if self._thread.is_alive():  # stuck in a driver call: leave the reader to it rather than pull it away
            log.warning(
                "%s: capture thread still reading after %.0f s; left to exit on its own", self.name, self.stop_timeout_s
            )
        elif self.reader is not None:
            self.reader.close()
        if self.state != "ended":
            self.state = "stopped"

    def __enter__(self) -> CameraStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        if self.reader is None:
            log.warning("%s: not there yet; retrying with backoff", self.name)
            if not self._reconnect("not there at start"):
                return
        self.state = "live"
        try:
            while True:
                if self._stop.is_set():
                    return
                assert self.reader is not None
                try:
                    got = self.reader.read()
                except (SourceLost, cv2.error, OSError) as exc:
                    if not self.reader.live:
                        raise
                    if not self._reconnect(str(exc)):
                        return
                    continue
                if got is None:
                    break
                if not self._deliver(*got):
                    return
        except Exception as exc:  # a bad recording (or a bug): this camera ends, the run goes on without it
            log.error("%s: %s; this camera stops delivering", self.name, exc)
        self.state = "ended"
        self.hub.end(self.camera)

    def _deliver(self, image: np.ndarray, t: float) -> bool:
        live = self.reader is not None and self.reader.live
        t = self.time_offset_s + (0.0 if live else t + self._start_t)  # live: the hub adds the time at put
        if self.paced and self._stop.wait(t - time.monotonic()):
            return False
        problem = frame_problem(image, self._expected)
        if problem is not None:
            self.garbage += 1
            self.last_problem = problem
            return True
        if self._expected is None:
            self._expected = image.shape
        delivered = self.hub.put(self.camera, Frame(image, t, self.frames), stamp=live)
        self.frames += delivered
        return delivered

    def _reconnect(self, why: str) -> bool:
        """(Re)open a live source, waiting min..max seconds (doubling) between attempts, whatever the error (each
        reported). False when stopped."""
        self.state = "reconnecting"
        if self.reader is not None:
            log.warning("%s: lost (%s); reconnecting", self.name, why)
            self.reader.close()
            self.reader = None
        delay, longest = self.reconnect_s
        while not self._stop.wait(delay):
            try:
                self.reader = self._reopen()
            except Exception as exc:  # noqa: BLE001 - a camera still booting fails in driver-specific ways
                log.warning("%s: open failed (%s); next try in %.1f s", self.name, exc, min(delay * 2, longest))
                delay = min(delay * 2, longest)
                continue
            self.reconnects += why != "not there at start"
            self._expected = None  # a reconnected camera may come back at another size
            self.state = "live"
            log.warning("%s: %s", self.name, "opened" if why == "not there at start" else "reconnected")
            return True
        return False
