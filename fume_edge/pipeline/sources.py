"""Frame sources: what `--co2 SRC` / `--ch4 SRC` name, opened as a `FrameReader`.

A reader only reads; the capture thread (`capture.py`) owns pacing, validation, reconnects and the ring. Kinds:
- a camera: `/dev/videoN` or an index (V4L2 through OpenCV: width, height, fps, FourCC; `raw16` keeps 16-bit
  thermal formats such as Y16 at 16 bits instead of OpenCV's 8-bit RGB conversion);
- a stream URL (`rtsp://`, `http(s)://`, ...) through OpenCV's FFmpeg backend;
- `csi://N`, `gst:PIPELINE`, and RTSP on a Jetson: through OpenCV's GStreamer backend (`gst_sources.py`);
- a video file (media time from the file's frame rate, or per frame from a `timestamps` CSV), optionally looped;
- a folder of images (sorted by name, read at their full bit depth);
- `synthetic`: the synthetic OGI generator rendering live (`synthetic_source.py`).

Live sources (cameras, URLs) stamp each frame with the monotonic clock when it was read; recorded ones (files,
folders, synthetic) give media time, seconds from the start of the recording, which the capture thread places on
the run's clock. Opening a source that does not exist is one `FumeEdgeError` line naming it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
import time
from pathlib import Path
from typing import Protocol
from collections.abc import Iterator

import cv2
import numpy as np

from fume_edge.alerts.secrets import redact_text
from fume_edge.config import read_utf8, replace
from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.config import CameraConfig, RunConfig
from fume_edge.pipeline.gst_sources import gstreamer_target
from fume_edge.runtime.pre import InvalidFrame

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm")
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
OPEN_TIMEOUT_MS = 10000  # a stream that does not answer within this is reported (and retried with backoff)
READ_TIMEOUT_MS = 5000  # a stream that stops sending is treated as dead after this, so it is reconnected


class SourceLost(Exception):
    """A live source stopped delivering (unplugged camera, dropped stream): the capture thread reconnects."""


class SourceNotReady(FumeEdgeError):
    """A live source that exists but does not open yet (a camera still booting, a stream not up): `run` starts
    without it and its capture thread keeps trying, with the reconnect backoff."""


class FrameReader(Protocol):
    name: str  # how messages name it: the --co2/--ch4 value
    live: bool  # a camera or stream: stamped with the monotonic clock, reconnected when it dies
    fps: float | None  # nominal frame rate, None when unknown

    def read(self) -> tuple[np.ndarray, float] | None:
        """The next frame and its time (see the module docstring); None at the end of a recording. A live source
        raises `SourceLost` when it dies."""
        ...

    def close(self) -> None: ...


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what FFmpeg/V4L2 print on file descriptor 2 while opening, so a bad source is one line from us."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _set(cap: cv2.VideoCapture, prop: int, value: float) -> None:
    cap.set(prop, value)  # a camera may refuse a setting; what it delivers is validated frame by frame


class OpenCvSource:
    """A camera, stream URL or video file read through `cv2.VideoCapture`."""

    def __init__(
        self,
        name: str,
        target: int | str,
        kind: str,
        camera: CameraConfig,
        loop: bool = False,
        default_fps: float = 30.0,
    ) -> None:
        self.name, self.kind, self.camera, self.loop = name, kind, camera, loop
        self.live = kind in ("camera", "stream", "gstreamer")
        opencv_log = getattr(cv2.utils, "logging", None)  # absent from some system builds (Debian's, JetPack's)
        if opencv_log is not None:
            opencv_log.setLogLevel(opencv_log.LOG_LEVEL_ERROR)
        if kind == "camera":
            api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
            params: list[int] = []
        elif kind == "gstreamer":
            api, params = cv2.CAP_GSTREAMER, []
        else:
            api = cv2.CAP_FFMPEG
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
        with _quiet_native_stderr():
            self.cap = cv2.VideoCapture(target, api, params)
        if not self.cap.isOpened():
            hint = {
                "camera": "check the device and that no other program holds it (v4l2-ctl --list-devices)",
                "stream": "check the URL, the network and the camera's credentials",
                "gstreamer": "try the pipeline with gst-launch-1.0 (fakesink at the end); CSI needs nvargus-daemon",
                "file": "check that OpenCV can decode it (ffprobe FILE)",
            }[kind]
            raise (SourceNotReady if self.live else FumeEdgeError)(f"{name}: cannot open this {kind}; {hint}")
        if kind == "camera":
            self._configure(camera)
        reported = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps: float | None = reported if 0 < reported < 1000 else camera.fps
        self._period = 1.0 / (self.fps or default_fps)
        self._times = _read_timestamps(camera.timestamps, name) if kind == "file" and camera.timestamps else None
        self._position = 0  # frames read from the file since the last rewind
        self._offset = 0.0  # media time added by earlier loops
        self._last = 0.0

    def _configure(self, camera: CameraConfig) -> None:
        if camera.fourcc:
            _set(self.cap, cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*camera.fourcc.ljust(4)))
        if camera.width:
            _set(self.cap, cv2.CAP_PROP_FRAME_WIDTH, camera.width)
        if camera.height:
            _set(self.cap, cv2.CAP_PROP_FRAME_HEIGHT, camera.height)
        if camera.fps:
            _set(self.cap, cv2.CAP_PROP_FPS, camera.fps)
        if camera.raw16:
            _set(self.cap, cv2.CAP_PROP_CONVERT_RGB, 0)

    def read(self) -> tuple[np.ndarray, float] | None:
        ok, image = self.cap.read()
        if self.live:
            if not ok:
                raise SourceLost(f"{self.name}: no frame")
            now = time.monotonic()
            return (as_raw16(image, self.camera, self.name) if self.camera.raw16 else image), now
        if not ok:
            if not self.loop or self._position == 0:
                return None
            self._offset = self._last + self._period
            self._position = 0
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            return self.read()
        media = self._media_time(self._position)
        self._position += 1
        self._last = self._offset + media
        return image, self._last

    def _media_time(self, position: int) -> float:
        if self._times is None:
            return position * self._period
        if position >= len(self._times):
            raise FumeEdgeError(f"{self.name}: the video has more frames than its timestamps file lists")
        return self._times[position]

    def close(self) -> None:
        self.cap.release()


def as_raw16(image: np.ndarray, camera: CameraConfig, name: str) -> np.ndarray:
    """A 16-bit camera frame as uint16 (height, width). Some V4L2 drivers hand Y16 over as raw bytes (uint8, twice
    as wide or flat); those are reinterpreted, little-endian, at the configured size. Anything else is refused:
    dividing raw bytes by 255 would feed the model noise that looks like a picture."""
    height, width = camera.height, camera.width
    if image.dtype == np.uint16 and image.shape[:2] == (height, width):
        return image
    if image.dtype == np.uint8 and width and height and image.size == 2 * width * height:
        return np.ascontiguousarray(image).view("<u2").reshape(height, width)
    raise InvalidFrame(
        f"{name}: a raw16 frame of {image.dtype} {image.shape} does not fit {width}x{height} 16-bit "
        "pixels; set this camera's width and height to the sensor's size (`v4l2-ctl --all`)"
    )


def _read_timestamps(path: str, name: str) -> list[float]:
    """Media time of each video frame from a CSV with `video_frame` and `timestamp_s` columns (as written by
    `fume-edge synth --videos`; rows with an empty `video_frame` were never recorded)."""
    try:
        with io.StringIO(read_utf8(path), newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("video_frame")]
        by_frame = sorted((int(row["video_frame"]), float(row["timestamp_s"])) for row in rows)
    except FileNotFoundError:
        raise FumeEdgeError(f"{path}: timestamps file of {name} not found") from None
    except (KeyError, ValueError, TypeError):
        raise FumeEdgeError(f"{path}: expected CSV columns video_frame and timestamp_s with numbers") from None
    if [frame for frame, _ in by_frame] != list(range(len(by_frame))):
        raise FumeEdgeError(f"{path}: video_frame must number every recorded frame 0, 1, 2, ... once")
    return [stamp for _, stamp in by_frame]


class ImageFolder:
    """Images of a folder in name order at `fps`; an unreadable file yields an empty frame (counted as garbage)."""

    live = False
    fps: float | None

    def __init__(self, name: str, folder: Path, fps: float, loop: bool) -> None:
        self.name, self.loop = name, loop
        self.fps = self._rate = fps
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise FumeEdgeError(f"{name}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        self._index = 0

    def read(self) -> tuple[np.ndarray, float] | None:
        if self._index >= len(self.files) and not self.loop:
            return None
        path = self.files[self._index % len(self.files)]
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        t = self._index / self._rate
        self._index += 1
        return (np.empty((0, 0), np.uint8) if image is None else image), t

    def close(self) -> None:
        pass


def source_identity(spec: str) -> str:
    """What a source spec names, for telling two specs apart: the device, the resolved file or folder, the URL."""
    if spec.isdigit():
        return os.path.realpath(f"/dev/video{spec}")
    if spec.lower().startswith(URL_SCHEMES) or spec == "synthetic":
        return spec
    return os.path.realpath(spec)


def _file_identity(spec: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the device, file or folder a spec names (a hard link shares it); None for the rest."""
    if spec.lower().startswith(URL_SCHEMES) or spec == "synthetic":
        return None
    try:
        found = os.stat(source_identity(spec))
    except (OSError, ValueError):
        return None
    return found.st_dev, found.st_ino


def check_distinct_sources(co2: str, ch4: str) -> None:
    """Both gases from one camera, file or folder (by any path, symlink or hard link) is a mistake that would
    pair every frame with itself."""
    if co2 == "synthetic":
        return
    inode = _file_identity(co2)
    if source_identity(co2) == source_identity(ch4) or (inode is not None and inode == _file_identity(ch4)):
        raise FumeEdgeError(
            f"--ch4 {redact_text(ch4)}: the same source as --co2 {redact_text(co2)} "
            f"({redact_text(source_identity(co2))}); each gas needs its own camera, file or folder"
        )


def _with_sidecar_timestamps(camera: CameraConfig, video: Path) -> CameraConfig:
    """A video's frame times from `<video>.csv` beside it (as `synth --videos` writes), unless the config names a
    timestamps file: recorded gaps, jitter and clock offsets then reach pairing and the alerts."""
    sidecar = video.with_suffix(".csv")
    if camera.timestamps or not sidecar.is_file():
        return camera
    return replace(camera, timestamps=str(sidecar))


def open_reader(spec: str, gas: str, config: RunConfig, variant: int = 0) -> FrameReader:
    """Open what `--{gas} SPEC` names; anything that is not there is one clear error. `variant`: the station's place
    in run.yaml, so synthetic stations each render their own scene."""
    name = f"--{gas} {redact_text(spec)}"  # messages and logs never show a stream's password
    camera, sources = config.sources.camera(gas), config.sources
    if spec == "synthetic":
        from fume_edge.pipeline.synthetic_source import SyntheticSource

        return SyntheticSource(name, gas, sources.synthetic, camera, loop=True, variant=variant)
    if spec.isdigit() or spec.startswith("/dev/"):
        device = f"/dev/video{spec}" if spec.isdigit() else spec
        if sys.platform.startswith("linux") and not os.path.exists(device):
            raise FumeEdgeError(
                f"{name}: no such camera device {device}; list cameras with `v4l2-ctl "
                "--list-devices` or `ls /dev/video*`"
            )
        return OpenCvSource(name, int(spec) if spec.isdigit() else spec, "camera", camera)
    pipeline = gstreamer_target(spec, name, camera)
    if pipeline is not None:
        return OpenCvSource(name, pipeline, "gstreamer", camera)
    if spec.lower().startswith(URL_SCHEMES):
        return OpenCvSource(name, spec, "stream", camera)
    path = Path(spec)
    if path.is_dir():
        return ImageFolder(name, path, camera.fps or config.sync.default_fps, sources.loop)
    if path.is_file():
        return OpenCvSource(
            name,
            str(path),
            "file",
            _with_sidecar_timestamps(camera, path),
            loop=sources.loop,
            default_fps=config.sync.default_fps,
        )
    raise FumeEdgeError(
        f"{name}: no such file, folder or camera; pass /dev/videoN or a camera index, a video "
        "file, an image folder, an rtsp:// or http:// URL, or `synthetic`"
    )
