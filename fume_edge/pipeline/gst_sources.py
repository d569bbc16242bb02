"""The cameras a Jetson has beyond plain V4L2, as GStreamer pipelines for OpenCV's GStreamer backend.

- `csi://N`: CSI sensor N through `nvarguscamerasrc` (the ISP, in NVMM memory), converted by `nvvidconv`;
- `gst:PIPELINE`: a pipeline passed through as written (an `appsink` is appended when it has none), e.g. a 16-bit
  thermal camera: `gst:v4l2src device=/dev/fume-co2 ! video/x-raw,format=GRAY16_LE` (frames arrive as uint16);
- `rtsp://...` on a Jetson whose OpenCV has GStreamer: decoded by the hardware decoder (`nvv4l2decoder`) instead
  of FFmpeg on the CPU; elsewhere RTSP stays on FFmpeg.

JetPack's OpenCV is built with GStreamer; pip's OpenCV wheels are not: asking a GStreamer source of one without it is
one clear error saying so. Pipelines end in a dropping one-buffer appsink: the capture thread wants the newest
frame, never a queue of stale ones.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2

from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.config import CameraConfig

APPSINK = "appsink drop=true max-buffers=1 sync=false"
TO_BGR = "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR"
JETSON_RELEASE = Path("/etc/nv_tegra_release")


def has_gstreamer() -> bool:
    return bool(cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER))


def _require_gstreamer(name: str, what: str) -> None:
    if not has_gstreamer():
        raise FumeEdgeError(
            f"{name}: {what} needs OpenCV with GStreamer, and this OpenCV ({cv2.__version__}) has "
            "none; on a Jetson use JetPack's OpenCV: pip uninstall opencv-python-headless "
            "opencv-python in a venv made with --system-site-packages (docs/troubleshooting.md)"
        )


def csi_pipeline(sensor: int, camera: CameraConfig) -> str:
    """nvarguscamerasrc for sensor `sensor` at the configured size and rate (the sensor's default mode otherwise)."""
    caps = ["video/x-raw(memory:NVMM)"]
    if camera.width and camera.height:
        caps += [f"width={camera.width}", f"height={camera.height}"]
    if camera.fps:
        rate = Fraction(camera.fps).limit_denominator(1001)
        caps.append(f"framerate={rate.numerator}/{rate.denominator}")
    return f"nvarguscamerasrc sensor-id={sensor} ! {','.join(caps)} ! {TO_BGR} ! {APPSINK}"


def passthrough_pipeline(pipeline: str, camera: CameraConfig) -> str:
    """A user's pipeline with an appsink appended when it has none (GRAY16_LE first for a raw16 camera that names
    no format, so 16-bit counts are not reduced to 8 bits)."""
    if "appsink" in pipeline:
        return pipeline
    if camera.raw16 and "format=" not in pipeline:
        pipeline += " ! video/x-raw,format=GRAY16_LE"
    return f"{pipeline} ! {APPSINK}"


def rtsp_pipeline(url: str, latency_ms: int = 100) -> str:
    """RTSP over TCP, H.264 or H.265 parsed and decoded by the Jetson's hardware decoder."""
    return (
        f"rtspsrc location={url} latency={latency_ms} protocols=tcp ! parsebin ! nvv4l2decoder ! {TO_BGR} ! {APPSINK}"
    )


def gstreamer_target(spec: str, name: str, camera: CameraConfig) -> str | None:
    """The GStreamer pipeline for `spec`, or None when the source is not one for GStreamer (RTSP falls back to
    FFmpeg off a Jetson or without GStreamer)."""
    if spec.startswith("csi://"):
        sensor = spec[len("csi://") :]
        if not sensor.isdigit():
            raise FumeEdgeError(f"{name}: expected csi://N with the sensor number N (csi://0, csi://1)")
        _require_gstreamer(name, "a CSI camera")
        return csi_pipeline(int(sensor), camera)
    if spec.startswith("gst:"):
        if not spec[4:].strip():
            raise FumeEdgeError(f"{name}: expected gst:PIPELINE, e.g. gst:v4l2src device=/dev/video0 ! videoconvert")
        _require_gstreamer(name, "a GStreamer pipeline")
        return passthrough_pipeline(spec[4:].strip(), camera)
    if spec.lower().startswith(("rtsp://", "rtsps://")) and JETSON_RELEASE.is_file() and has_gstreamer():
        return rtsp_pipeline(spec)
    return None
