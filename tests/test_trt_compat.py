"""Issue 22's checks that run without a GPU: cuda-python against the driver, the lean module names, TensorRT's log,
the stream handle, ONNX Runtime's spinning, and when bench rebuilds an engine (real cuda-python, real lean runtime,
real ONNX Runtime)."""

from __future__ import annotations

import importlib.machinery
import logging
import sys
import types
from pathlib import Path

import pytest

from trt_support import bundled_sidecar

from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.cuda_compat import cuda_python_advice
from fume_edge.runtime.engine_sidecar import RunningOn, rebuild_reason, write_sidecar


@pytest.mark.parametrize(
    ("driver", "bindings", "expected"),
    [
        (
            12060,
            13,
            "cuda-python 13.x needs a CUDA 13 driver, this driver supports CUDA 12.6 (JetPack 6): "
            "pip install 'cuda-python>=12,<13' (or pip install 'fume-edge[trt-cu12]')",
        ),
        (13000, 13, None),
        (12020, 12, None),
        (13000, 12, None),
        (0, 13, None),
        (
            12060,
            None,
            "cuda-python is not installed; for this CUDA 12.6 driver: pip install 'cuda-python>=12,<13' "
            "(or pip install 'fume-edge[trt-cu12]')",
        ),
    ],
    ids=["13-on-jetpack-6", "13-on-13", "12-on-12", "12-on-13", "no-driver", "missing"],
)
def test_cuda_python_advice_names_the_exact_install(driver: int, bindings: int | None, expected: str | None) -> None:
    assert cuda_python_advice(driver, bindings) == expected


def test_error_35_without_a_driver_says_no_driver_not_cuda_python() -> None:
    pytest.importorskip("cuda.bindings.runtime")
    from fume_edge.runtime.cuda_mem import device_info

    with pytest.raises(FumeEdgeError, match=r"no CUDA GPU visible \(no NVIDIA driver found, CUDA error 35\)"):
        device_info()


def test_doctor_with_cuda_python_and_no_driver_says_what_it_sees() -> None:
    pytest.importorskip("cuda.bindings", reason="needs cuda-python (the trt-check extra, as .ci/run installs)")
    from fume_edge.doctor import _cuda
    from fume_edge.runtime.cuda_compat import bindings_major

    finding = _cuda(None)
    assert "no NVIDIA driver" in finding.found and f"built for CUDA {bindings_major()}" in finding.found
    assert finding.fix is not None and "pip install" not in finding.fix  # nothing to install fixes a missing GPU


def _lean() -> types.ModuleType:
    return pytest.importorskip("tensorrt_lean_bindings")


def test_the_debian_lean_module_name_is_recognised(monkeypatch: pytest.MonkeyPatch) -> None:
    """JetPack/Debian/tar packages install `tensorrt_lean`; only that name is importable here."""
    from fume_edge.runtime.trt_module import import_runtime_module, installed_runtime_modules, is_lean

    front = types.ModuleType("tensorrt_lean")
    front.__dict__.update({k: v for k, v in vars(_lean()).items() if not k.startswith("__")})
    front.__version__ = _lean().__version__
    front.__spec__ = importlib.machinery.ModuleSpec("tensorrt_lean", None)
    monkeypatch.setitem(sys.modules, "tensorrt_lean_bindings", None)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "tensorrt_lean", front)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # type: ignore[arg-type]
    module = import_runtime_module()
    assert module is front and is_lean(module)
    assert "tensorrt_lean" in installed_runtime_modules()


def test_tensorrt_warnings_reach_the_log_without_a_console(caplog: pytest.LogCaptureFixture) -> None:
    from fume_edge.runtime.trt_module import LogSink, make_logger

    lean = _lean()
    logger = make_logger(lean, LogSink())
    with caplog.at_level(logging.INFO, logger="fume_edge.tensorrt"):
        logger.log(lean.ILogger.Severity.WARNING, "weights are not calibrated")  # type: ignore[attr-defined]
        logger.log(lean.ILogger.Severity.INFO, "loaded")  # type: ignore[attr-defined]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "TensorRT: weights are not calibrated")
    ]


def test_stream_handle_is_the_raw_address_the_cuda_python_13_way() -> None:
    runtime = pytest.importorskip("cuda.bindings.runtime")
    from fume_edge.runtime.cuda_mem import stream_handle

    assert stream_handle(runtime.cudaStream_t(0x7F00)) == 0x7F00


def test_onnx_runtime_does_not_spin_unless_asked() -> None:
    from fume_edge.runtime.onnx_backend import SPINNING_KEY, session_options

    assert session_options().get_session_config_entry(SPINNING_KEY) == "0"
    assert session_options(spinning=True).get_session_config_entry(SPINNING_KEY) == "1"


def test_bench_rebuilds_only_for_a_missing_or_mismatched_sidecar(tmp_path: Path) -> None:
    engine = tmp_path / "fume.engine"
    here = RunningOn("10.3.0", "8.7")
    assert rebuild_reason(engine, here) == "no engine yet"
    engine.write_bytes(b"plan")
    assert "engine sidecar missing" in str(rebuild_reason(engine, here))
    write_sidecar(engine, bundled_sidecar("10.3.0"))
    assert rebuild_reason(engine, here) is None  # any other load error is the user's to see, not a rebuild
    assert "this is 10.3.1" in str(rebuild_reason(engine, RunningOn("10.3.1", "8.7")))
