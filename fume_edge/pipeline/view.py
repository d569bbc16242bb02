"""`--display` and `--record FILE`: the paired frames side by side with the model's masks, as a window or a video.

Both show the same composed view: each camera's frame at the model's resolution, tube and gas pixels tinted in
the colours of the alert snapshots, and a banner with the frame's pH probabilities. A machine without a GUI
(opencv-python-headless, or no display server) makes `--display` one clear error at start, never a crash.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np

from fume_edge.alerts.snapshot import overlay_panel
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import PH_CLASS_NAMES
from fume_edge.runtime.base import Prediction

WINDOW = "fume-edge"
BANNER_H = 28


def compose_view(images: tuple[np.ndarray | None, ...], prediction: Prediction, size: tuple[int, int],
                 names: tuple[str, ...]) -> np.ndarray:
    """The BGR uint8 view of one inference: a banner over the cameras side by side (NO SIGNAL for a silent one)."""
    panels = []
    for image, seg, name in zip(images, (prediction.co2_seg, prediction.ch4_seg), names):
        panel = overlay_panel(image, seg, size)
        cv2.putText(panel, name.upper(), (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
        panels.append(panel)
    body = np.hstack(panels)
    banner = np.zeros((BANNER_H, body.shape[1], 3), np.uint8)
    if prediction.ph_probs is not None:
        text = "  ".join(f"{n} {p:.2f}" for n, p in zip(PH_CLASS_NAMES, prediction.ph_probs))
        cv2.putText(banner, f"pH: {text}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([banner, body])


def check_display() -> None:
    """Fail with one line when `--display` cannot open a window here (checked before anything starts)."""
    gui = re.search(r"GUI:\s*(\S+)", cv2.getBuildInformation())
    if gui is not None and gui.group(1).upper() == "NONE":
        raise FumeEdgeError("--display: this OpenCV has no GUI (opencv-python-headless); install opencv-python "
                            "for a window, or use --record FILE to save the view")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise FumeEdgeError("--display: no display here (DISPLAY is not set); run it on the device's desktop or "
                            "with ssh -X, or use --record FILE to save the view")


class DisplayWindow:
    """An OpenCV window showing the composed view; closing it (or pressing q) is reported by `show`."""

    def __init__(self) -> None:
        check_display()
        try:
            cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise FumeEdgeError(f"--display: cannot open a window ({str(exc).strip().splitlines()[-1][:120]}); "
                                "use --record FILE instead") from None

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
