"""Cameras a Jetson has: CSI sensors, GStreamer pipelines and hardware-decoded RTSP, through OpenCV's GStreamer
backend; an OpenCV without GStreamer is one clear line. Where an OpenCV with GStreamer is installed (Debian's
python3-opencv, as JetPack's), a real pipeline delivers 16-bit frames through the real reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_support import run_config

from fume_edge.config import replace
from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline import gst_sources
from fume_edge.pipeline.sources import open_reader

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def test_csi_pipeline_asks_the_sensor_for_the_configured_mode(tmp_path: Path) -> None:
    camera = replace(run_config(tmp_path).sources.co2, width=1280, height=720, fps=29.97)
    assert gst_sources.csi_pipeline(1, camera) == (
        "nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=2997/100 ! "
        "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
        "appsink drop=true max-buffers=1 sync=false"
    )
    default = replace(camera, width=None, height=None, fps=None)
    assert "sensor-id=0 ! video/x-raw(memory:NVMM) ! nvvidconv" in gst_sources.csi_pipeline(0, default)


def test_passed_through_pipelines_get_an_appsink_and_16_bits_when_raw16(tmp_path: Path) -> None:
    camera = run_config(tmp_path).sources.co2
    thermal = replace(camera, raw16=True)
    assert gst_sources.passthrough_pipeline("v4l2src device=/dev/fume-co2", thermal) == (
        "v4l2src device=/dev/fume-co2 ! video/x-raw,format=GRAY16_LE ! appsink drop=true max-buffers=1 sync=false"
    )
    assert gst_sources.passthrough_pipeline("v4l2src ! videoconvert", camera).endswith(
        "videoconvert ! appsink drop=true max-buffers=1 sync=false"
    )
    own = "videotestsrc ! video/x-raw,format=GRAY8 ! appsink name=mine"
    assert gst_sources.passthrough_pipeline(own, thermal) == own


def test_rtsp_is_hardware_decoded_only_on_a_jetson_with_gstreamer(tmp_path: Path) -> None:
    camera = run_config(tmp_path).sources.co2
    expected = None if not (gst_sources.JETSON_RELEASE.is_file() and gst_sources.has_gstreamer()) else "nvv4l2decoder"
    target = gst_sources.gstreamer_target("rtsp://cam.local/stream1", "--co2 rtsp://cam.local/stream1", camera)
    assert target == expected or (expected is not None and target is not None and expected in target)
    assert "parsebin ! nvv4l2decoder" in gst_sources.rtsp_pipeline("rtsp://cam.local/stream1")


@pytest.mark.parametrize("spec, message", [("csi://left", "expected csi://N"), ("gst:  ", "expected gst:PIPELINE")])
def test_malformed_specs_are_one_error(tmp_path: Path, spec: str, message: str) -> None:
    with pytest.raises(FumeEdgeError, match=message):
        open_reader(spec, "co2", run_config(tmp_path))


def test_an_opencv_without_gstreamer_is_one_clear_line(tmp_path: Path) -> None:
    if gst_sources.has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from fume_edge.cli import main; sys.argv[0] = 'fume-edge'; main()",
            "run",
            "--co2",
            "csi://0",
            "--ch4",
            "synthetic",
            "--alerts",
            str(tmp_path / "a.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --co2 csi://0: a CSI camera needs OpenCV with GStreamer")
    assert "pip uninstall opencv-python-headless" in lines[0]


READ_16_BIT = """
import json, sys
from fume_edge.config import given
from fume_edge.pipeline.config import load_run_config
from fume_edge.pipeline.sources import open_reader
config, _ = load_run_config(None, given(("sources.co2.raw16", True, "raw16"), ("sources.co2.width", 64, "width"),
                                        ("sources.co2.height", 48, "height")))
reader = open_reader(sys.argv[1], "co2", config)
frames = [reader.read() for _ in range(3)]
reader.close()
print(json.dumps({"live": reader.live, "dtypes": [f[0].dtype.name for f in frames],
                  "shapes": [list(f[0].shape) for f in frames], "max": [int(f[0].max()) for f in frames]}))
"""


def _pydantic_only(folder: Path) -> Path:
    """A folder holding just pydantic and its dependencies from this environment: what the device install adds to
    the system Python's OpenCV (jetson_setup.sh's venv sees the system packages)."""
    import annotated_types
    import pydantic
    import pydantic_core
    import typing_extensions
    import typing_inspection

    folder.mkdir()
    for module in (pydantic, pydantic_core, annotated_types, typing_inspection, typing_extensions):
        source = Path(module.__file__ or "")
        source = source.parent if source.name == "__init__.py" else source
        (folder / source.name).symlink_to(source)
    return folder


def test_a_real_gstreamer_pipeline_delivers_16_bit_frames(tmp_path: Path) -> None:
    probe = "import cv2, yaml, sys; sys.exit(0 if cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER) else 1)"
    if not SYSTEM_PYTHON.is_file() or subprocess.run([str(SYSTEM_PYTHON), "-c", probe]).returncode != 0:
        pytest.skip(
            "no system OpenCV with GStreamer (apt-get install python3-opencv python3-yaml "
            "gstreamer1.0-plugins-base; .ci/run does)"
        )
    spec = "gst:videotestsrc pattern=ball ! video/x-raw,format=GRAY16_LE,width=64,height=48,framerate=30/1"
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{_pydantic_only(tmp_path / 'pydantic')}", "PYTHONNOUSERSITE": "1"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", READ_16_BIT, spec], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    frames = json.loads(result.stdout)
    assert frames["live"] and frames["dtypes"] == ["uint16"] * 3 and frames["shapes"] == [[48, 64]] * 3
    assert max(frames["max"]) > 255  # 16-bit values, not reduced to 8 bits
