"""The TensorRT backend through the real lean runtime (`tensorrt_lean_bindings`) and the real cuda-python, on a
machine without a GPU: the two refusals a user meets before TensorRT touches the engine.

CI installs both (`.ci/run`, FUME_EDGE_REQUIRE_TRT_LEAN=1 turns a missing module into a failure, not a skip).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trt_support import fake_engine

from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.cuda_mem import device_info
from fume_edge.runtime.trt_backend import TensorRTBackend
from fume_edge.runtime.trt_module import LogSink, import_runtime_module, is_lean, make_logger, numpy_dtype_name

REQUIRED = os.environ.get("FUME_EDGE_REQUIRE_TRT_LEAN") == "1"


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        if REQUIRED:
            raise
        pytest.skip(
            f"{module} not installed (pip install tensorrt-lean-cu12-libs tensorrt-lean-cu12-bindings "
            "cuda-python, as .ci/run does)"
        )


@pytest.fixture(autouse=True)
def lean_runtime() -> None:
    _require("tensorrt_lean_bindings")
    _require("cuda.bindings.runtime")


def test_the_lean_runtime_is_what_loads_engines_here() -> None:
    module = import_runtime_module()
    assert is_lean(module) and module.__version__.startswith("11.")


def _lean_version() -> str:
    return str(import_runtime_module().__version__)


@pytest.mark.parametrize(
    ("built_with", "version_compatible", "message"),
    [
        ("11.4.0", False, "only the lean runtime is installed here"),
        ("8.6.2", True, "built with TensorRT 8.6.2; the lean runtime 11."),
        (
            "11.3.0",
            True,
            "runs version-compatible plans of its own version only: install the TensorRT 11.3.0 lean "
            "runtime or the dispatch runtime (tensorrt_dispatch)",
        ),
    ],
    ids=["not-version-compatible", "other-major", "other-minor"],
)
def test_mismatched_sidecar_is_refused_before_deserialising(
    tmp_path: Path, built_with: str, version_compatible: bool, message: str
) -> None:
    engine = fake_engine(tmp_path, built_with, version_compatible)
    with pytest.raises(
        FumeEdgeError,
        match="rebuild it where the full TensorRT is installed: fume-edge build-engine .* --version-compatible -o ",
    ) as error:
        TensorRTBackend(engine)
    assert message in str(error.value)


def test_no_gpu_is_one_line_from_cuda_python() -> None:
    with pytest.raises(FumeEdgeError, match=r"no CUDA GPU visible \(.*CUDA error (35|100)\)"):
        device_info()


def test_run_with_an_engine_and_no_gpu_is_one_line_without_traceback(tmp_path: Path) -> None:
    engine = fake_engine(tmp_path, _lean_version(), version_compatible=True)  # passes the sidecar check, needs a GPU
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fume_edge",
            "run",
            "--co2",
            "synthetic",
            "--ch4",
            "synthetic",
            "--model",
            str(engine),
            "--max-frames",
            "1",
            "--quiet",
            "--alerts",
            str(tmp_path / "a.db"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no CUDA GPU visible (no NVIDIA driver found" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_the_runtime_api_the_backend_uses_exists_in_the_lean_module() -> None:
    """TensorRT 11's runtime classes, checked for every name trt_backend.py calls (mypy checks them against 10.13)."""
    module = import_runtime_module()
    used = {
        module.ICudaEngine: (
            "num_io_tensors",
            "get_tensor_name",
            "get_tensor_mode",
            "get_tensor_shape",
            "get_tensor_dtype",
            "create_execution_context",
        ),
        module.IExecutionContext: ("set_tensor_address", "execute_async_v3"),
        module.Runtime: ("deserialize_cuda_engine", "engine_host_code_allowed"),
        module.TensorIOMode: ("INPUT", "OUTPUT"),
    }
    missing = [f"{cls.__name__}.{name}" for cls, names in used.items() for name in names if not hasattr(cls, name)]
    assert missing == []
    assert {numpy_dtype_name(getattr(module.DataType, n)) for n in ("FLOAT", "HALF", "INT32", "INT8", "BOOL")} == {
        "float32",
        "float16",
        "int32",
        "int8",
        "bool",
    }


def test_tensorrt_log_reaches_the_sink_through_the_lean_logger_class() -> None:
    module = import_runtime_module()
    sink = LogSink()
    logger = make_logger(module, sink)
    assert isinstance(logger, module.ILogger)
    logger.log(module.ILogger.Severity.ERROR, "engine plan is corrupt")
    logger.log(module.ILogger.Severity.INFO, "loaded")
    assert sink.errors == ["engine plan is corrupt"]


@pytest.mark.parametrize("suffix", [".engine", ".plan"])
def test_load_backend_sends_plans_to_the_tensorrt_backend(tmp_path: Path, suffix: str) -> None:
    from fume_edge.runtime.base import load_backend

    engine = fake_engine(tmp_path, "11.4.0").rename(tmp_path / f"moved{suffix}")  # its sidecar stays behind
    with pytest.raises(FumeEdgeError, match=f"moved{suffix}.json: engine sidecar missing"):
        load_backend(engine, device="cuda", threads=2)
