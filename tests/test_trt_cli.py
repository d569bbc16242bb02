"""`fume-edge build-engine` and `check` as a user runs them: one line and exit 2 for user errors, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trt_support import fake_engine

from fume_edge.assets import default_model_path
from fume_edge.deploy.tensorrt.tensorrt_build import tensorrt_available
from fume_edge.runtime.trt_module import is_jetson


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}  # help tables unwrapped
    return subprocess.run(
        [sys.executable, "-m", "fume_edge", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.mark.skipif(tensorrt_available() is None, reason="TensorRT is installed here: the build would run")
def test_build_engine_without_tensorrt_says_how_to_get_it(tmp_path: Path) -> None:
    line = _one_error_line(_cli("build-engine", str(default_model_path()), "--fp16", cwd=tmp_path))
    assert "TensorRT's Python module (tensorrt) is not installed here" in line
    assert "sudo apt install python3-libnvinfer" in line and "never pip install tensorrt there" in line
    assert is_jetson() or "pip install --extra-index-url https://pypi.nvidia.com tensorrt" in line
    assert not (tmp_path / "engines").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--fp16", "--int8"), "exactly one of --fp16 or --int8"),
        (("--fp16", "--calibrator", "entropy"), "--calibrator entropy: only with --int8"),
        (("--int8", "--calibrator", "minmax"), "--calibrator 'minmax'"),
    ],
    ids=["both-precisions", "entropy-without-int8", "unknown-calibrator"],
)
def test_build_engine_option_errors_come_before_any_work(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    assert message in _one_error_line(_cli("build-engine", str(default_model_path()), *args, cwd=tmp_path))


def test_build_engine_missing_model_is_one_line(tmp_path: Path) -> None:
    assert "absent.onnx: ONNX file not found" in _one_error_line(
        _cli("build-engine", "absent.onnx", "--fp16", cwd=tmp_path)
    )


def test_help_shows_defaults(tmp_path: Path) -> None:
    done = _cli("build-engine", "--help", cwd=tmp_path)
    assert done.returncode == 0
    for default in (
        "[default: engines/MODEL.PRECISION.engine]",
        "[default: 2.0]",
        "[default: 3]",
        "[default: qdq]",
        "[default: GPU only]",
    ):
        assert default in done.stdout, default


def test_info_describes_an_engine_from_its_sidecar_without_tensorrt(tmp_path: Path) -> None:
    engine = fake_engine(tmp_path, "10.3.0")
    done = _cli("info", str(engine), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for text in (
        "fume.engine (engine)",
        "TensorRT",
        "10.3.0",
        "Orin (compute capability 8.7)",
        "int32 [1×480×640]",
        "Healthy, Transitional, Acidotic",
    ):
        assert text in done.stdout, text
    assert "precision" in done.stdout and "fp16" in done.stdout
