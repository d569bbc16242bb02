"""`--display` and `--record FILE`: the paired frames side by side with the model's masks, as a window or a video.

Both show the same composed view: each camera's frame at the model's resolution, tube and gas pixels tinted in
the colours of the alert snapshots, and a banner with the frame's pH probabilities. A machine without a GUI
(opencv-python-headless, or no display server) makes `--display` one clear error at start, never a crash.
Drawing and encoding run in `ViewWorker`'s own thread behind a small queue: when it falls behind, views are
dropped and counted, and inference never waits for them.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import sys
import threading
from pathlib import Path

import cv2
import numpy as np

from fume_edge.alerts.snapshot import overlay_panel
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import PH_CLASS_NAMES
from fume_edge.runtime.base import Prediction

log = logging.getLogger(__name__)

WINDOW = "fume-edge"
BANNER_H = 28


def compose_view(
    images: tuple[np.ndarray | None, ...], prediction: Prediction, size: tuple[int, int], names: tuple[str, ...]
) -> np.ndarray:
    """The BGR uint8 view of one inference: a banner over the cameras side by side (NO SIGNAL for a silent one)."""
    panels = []
    for image, name in zip(images, names, strict=True):  # the cameras' names are the gases they film
        panel = overlay_panel(image, prediction.seg.get(name), size)
        cv2.putText(panel, name.upper(), (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
        panels.append(panel)
    body = np.hstack(panels)
    banner = np.zeros((BANNER_H, body.shape[1], 3), np.uint8)
    if prediction.ph_probs is not None:
        text = "  ".join(f"{n} {p:.2f}" for n, p in zip(PH_CLASS_NAMES, prediction.ph_probs, strict=True))
        cv2.putText(banner, f"pH: {text}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([banner, body])


def check_display() -> None:
    """Fail with one line when `--display` cannot open a window here (checked before anything starts)."""
    gui = re.search(r"GUI:\s*(\S+)", cv2.getBuildInformation())
    if gui is not None and gui.group(1).upper() == "NONE":
        raise FumeEdgeError(
            "--display: this OpenCV has no GUI (opencv-python-headless); install opencv-python "
            "for a window, or use --record FILE to save the view"
        )
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise FumeEdgeError(
            "--display: no display here (DISPLAY is not set); run it on the device's desktop or "
            "with ssh -X, or use --record FILE to save the view"
        )


class DisplayWindow:
    """An OpenCV window showing the composed view; closing it (or pressing q) is reported by `show`."""

    def __init__(self) -> None:
        check_display()
        try:
            cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise FumeEdgeError(
                f"--display: cannot open a window ({str(exc).strip().splitlines()[-1][:120]}); "
                "use --record FILE instead"
            ) from None

    def show(self, view: np.ndarray) -> bool:
        """Draw one view; False when the user closed the window or pressed q."""
        cv2.imshow(WINDOW, view)
        key = cv2.waitKey(1) & 0xFF
        return key != ord("q") and cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        cv2.destroyWindow(WINDOW)


class Recorder:
    """Writes the composed views of a model of input `size` to a video file (`.mp4`: mp4v, else Motion-JPEG)."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        fourcc = "mp4v" if path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG"
        if not path.parent.is_dir():
            raise FumeEdgeError(f"--record {path}: folder {path.parent} does not exist")
        view_size = (2 * size[0], size[1] + BANNER_H)
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, view_size)
        if not self._writer.isOpened():
            raise FumeEdgeError(f"--record {path}: OpenCV cannot write {fourcc} video here; try a .avi file")

    def write(self, view: np.ndarray) -> None:
        self._writer.write(view)

    def close(self) -> None:
        self._writer.release()


class ViewWorker:
    """Composes, records and shows views from its own thread; `submit` never blocks (a full queue drops the view
    and counts it). `closed` turns true when the user closes the window."""

    def __init__(
        self,
        window: DisplayWindow | None,
        recorder: Recorder | None,
        size: tuple[int, int],
        names: tuple[str, ...],
        queue_size: int = 2,
    ) -> None:
        self.window, self.recorder, self.size, self.names = window, recorder, size, names
        self.shown = 0  # views drawn and written
        self.dropped = 0  # views skipped because the worker was behind
        self.closed = False
        self._queue: queue.Queue[tuple[tuple[np.ndarray | None, ...], Prediction] | None] = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name="fume-edge-view", daemon=True)
        self._thread.start()

    def submit(self, images: tuple[np.ndarray | None, ...], prediction: Prediction) -> None:
        """Hand over one inference (the arrays are read later, not copied: do not modify them)."""
        try:
            self._queue.put_nowait((images, prediction))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                view = compose_view(*item, self.size, self.names)
                if self.recorder is not None:
                    self.recorder.write(view)
                if self.window is not None and not self.closed and not self.window.show(view):
                    self.closed = True
                self.shown += 1
            except Exception as exc:  # a broken display or codec must not end the run
                log.error("--display/--record: %s; views are no longer drawn", exc)
                return

    def close(self) -> None:
        """Draw what is queued, then close the window and the video file. Safe to call twice."""
        if not self._thread.is_alive() and self.window is None and self.recorder is None:
            return
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        for sink in (self.window, self.recorder):
            if sink is not None:
                sink.close()
        self.window = self.recorder = None
