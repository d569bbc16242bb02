#!/usr/bin/env bash
# Set up fume-edge on an NVIDIA Jetson (JetPack 6.x: TensorRT 10.3, CUDA 12.6, Python 3.10).
#
# What this does, and why:
#  - a venv with --system-site-packages, so JetPack's TensorRT (apt: python3-libnvinfer) and its GStreamer-enabled
#    OpenCV stay visible; pip's tensorrt and opencv wheels would shadow them, so they are never installed here;
#  - fume-edge with the mqtt and web extras; torch is not needed on the device (the runtime uses ONNX Runtime / TensorRT).
# JetPack 5.1 (Python 3.8) is below fume-edge's Python floor (3.10): upgrade to JetPack 6.
set -euo pipefail

die() { echo "jetson_setup: $*" >&2; exit 1; }

[ -f /etc/nv_tegra_release ] || die "not a Jetson (no /etc/nv_tegra_release); on a desktop use: pip install -e '.[cpu]'"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "Python $(python3 -V 2>&1 | cut -d' ' -f2) is older than 3.10 (JetPack 5.x); fume-edge needs JetPack 6"
python3 -c 'import tensorrt' 2>/dev/null \
  || die "TensorRT's Python module is missing: sudo apt install python3-libnvinfer python3-libnvinfer-dev"
python3 -c 'import cv2; assert "GStreamer:                   YES" in cv2.getBuildInformation()' 2>/dev/null \
  || echo "jetson_setup: warning: system OpenCV without GStreamer; CSI cameras will not open"

here="$(cd "$(dirname "$0")" && pwd)"
venv="${FUME_VENV:-$here/.venv}"
python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install -q --upgrade pip
# --no-deps for opencv: keep JetPack's OpenCV; install the rest of the runtime normally.
"$venv/bin/pip" install -q numpy typer rich pyyaml paho-mqtt starlette uvicorn prometheus-client
"$venv/bin/pip" install -q --no-deps -e "$here"
"$venv/bin/python" -c 'import onnxruntime' 2>/dev/null \
  || echo "jetson_setup: note: onnxruntime-gpu for Jetson comes from NVIDIA's Jetson wheels (not PyPI); install it to run .onnx models"
"$venv/bin/fume-edge" --version
echo "jetson_setup: done. Activate with: source $venv/bin/activate"
