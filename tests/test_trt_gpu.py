"""TensorRT on a real GPU (`pytest -m gpu`; benchmarks/gpu_check.sh runs these on a lent or user's GPU).

FP16 and INT8 engines of the bundled model against ONNX Runtime on the same synthetic pairs (pH class equal, mask
label agreement ≥ 99.5 % FP16 / ≥ 99 % INT8), the CUDA-graph path equal to the plain one, a foreign or corrupt
engine refused, the plan loadable by trtexec. They skip where there is no GPU or no TensorRT, saying which.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fume_edge.assets import default_model_path
from fume_edge.data.calibration import load_calibration
from fume_edge.deploy.tensorrt.tensorrt_build import BuildResult, EngineBuildOptions, build_engine, tensorrt_available
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import GASES
from fume_edge.runtime.engine_sidecar import sidecar_path
from fume_edge.runtime.onnx_backend import OnnxBackend
from fume_edge.runtime.trt_backend import TensorRTBackend

pytestmark = pytest.mark.gpu
AGREEMENT = {"fp16": 0.995, "int8-qdq": 0.99}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = tensorrt_available()
    if missing:
        pytest.skip(missing)
    try:
        from fume_edge.runtime.cuda_mem import device_info

        device_info()
    except FumeEdgeError as exc:
        pytest.skip(str(exc))
    folder = tmp_path_factory.mktemp("trt_gpu")
    for args in (
        ("synth", "syn", "--pairs", "48", "--seed", "21", "--workers", "2"),
        ("pair", "syn/annotations.csv", "-o", "paired"),
        ("calibrate", "--data", "paired/paired_train.csv", "-o", "calib", "--count", "32"),
    ):
        done = subprocess.run([sys.executable, "-m", "fume_edge", *args], cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    return folder


@pytest.fixture(scope="module")
def engines(work: Path) -> dict[str, BuildResult]:
    return {
        "fp16": build_engine(default_model_path(), work / "fp16.engine", EngineBuildOptions(precision="fp16")),
        "int8-qdq": build_engine(
            default_model_path(), work / "int8.engine", EngineBuildOptions(precision="int8"), calib=work / "calib"
        ),
    }


@pytest.mark.parametrize("precision", ["fp16", "int8-qdq"])
def test_engine_agrees_with_onnx_runtime(work: Path, engines: dict[str, BuildResult], precision: str) -> None:
    result = engines[precision]
    assert result.info.precision == precision and sidecar_path(result.engine).is_file()
    assert not result.engine.read_bytes().startswith(b"{")  # a plain plan, nothing glued in front
    cset = load_calibration(work / "calib")
    agree, total = 0, 0
    with TensorRTBackend(result.engine) as trt_model, OnnxBackend(default_model_path(), device="cpu") as reference:
        for index in range(len(cset)):
            item = cset.item(index)
            got = trt_model.infer(item.co2, item.ch4, item.modality_mask)
            want = reference.infer(item.co2, item.ch4, item.modality_mask)
            assert got.ph_class == want.ph_class, index
            for gas in GASES:
                a, b = got.seg.get(gas), want.seg.get(gas)
                assert a is not None and b is not None and a.dtype == np.int32
                agree += int(np.count_nonzero(a == b))
                total += a.size
    assert agree / total >= AGREEMENT[precision]


def test_cuda_graph_replay_equals_the_plain_path(work: Path, engines: dict[str, BuildResult]) -> None:
    item = load_calibration(work / "calib").item(0)
    with (
        TensorRTBackend(engines["fp16"].engine) as plain,
        TensorRTBackend(engines["fp16"].engine, cuda_graph=True) as graph,
    ):
        for _ in range(3):
            a = plain.infer(item.co2, item.ch4, item.modality_mask)
            b = graph.infer(item.co2, item.ch4, item.modality_mask)
            assert all(np.array_equal(a.seg[gas], b.seg[gas]) for gas in GASES)
            assert a.ph_logits is not None and b.ph_logits is not None
            np.testing.assert_allclose(a.ph_logits, b.ph_logits, rtol=1e-5, atol=1e-5)


def test_foreign_and_corrupt_engines_are_refused(work: Path, engines: dict[str, BuildResult]) -> None:
    foreign = work / "foreign.engine"
    shutil.copy(engines["fp16"].engine, foreign)
    meta = json.loads(sidecar_path(engines["fp16"].engine).read_text())
    sidecar_path(foreign).write_text(json.dumps(meta | {"compute_capability": "1.0"}))
    with pytest.raises(FumeEdgeError, match="compute capability 1.0.*rebuild it here"):
        TensorRTBackend(foreign)
    corrupt = work / "corrupt.engine"
    data = engines["fp16"].engine.read_bytes()
    corrupt.write_bytes(data[: len(data) // 3])
    shutil.copy(sidecar_path(engines["fp16"].engine), sidecar_path(corrupt))
    with pytest.raises(FumeEdgeError, match="cannot load this engine"):
        TensorRTBackend(corrupt)


def test_entropy_calibrator_builds_where_tensorrt_has_it(work: Path) -> None:
    import tensorrt as trt

    if int(trt.__version__.split(".")[0]) >= 11:
        pytest.skip(f"TensorRT {trt.__version__} has no calibrators (removed in 11)")
    result = build_engine(
        default_model_path(),
        work / "entropy.engine",
        EngineBuildOptions(precision="int8", calibrator="entropy"),
        calib=work / "calib",
    )
    assert result.info.precision == "int8-entropy" and result.engine.stat().st_size > 0


def test_entropy_calibrator_feeds_the_network_batch(work: Path, imported_checkpoint: Path) -> None:
    """A `--batch 3` network is calibrated with 3 stacked pairs per batch, and TensorRT builds from them."""
    import tensorrt as trt

    if int(trt.__version__.split(".")[0]) >= 11:
        pytest.skip(f"TensorRT {trt.__version__} has no calibrators (removed in 11)")
    from fume_edge.deploy.onnx.onnx_export import export_onnx
    from fume_edge.deploy.tensorrt.trt_calibrator import EntropyCalibrator
    from fume_edge.hashing import sha256_file
    from fume_edge.runtime.cuda_mem import open_stream

    cset = load_calibration(work / "calib")
    batched = export_onnx(imported_checkpoint, work / "b3.onnx", size=cset.input_size, batch=3).path
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    explicit = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if trt.__version__.startswith("8.") else 0
    network = builder.create_network(explicit)
    assert trt.OnnxParser(network, logger).parse(batched.read_bytes())
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    stream = open_stream(0)
    try:
        calibrator = EntropyCalibrator(cset, stream, sha256_file(batched), network)
        assert calibrator.get_batch_size() == network.get_input(0).shape[0] == 3
        assert len(calibrator.get_batch(names)) == len(names) == 3
        assert all(calibrator.host[name].shape[0] == 3 for name in names)
    finally:
        stream.close()
    result = build_engine(
        batched,
        work / "b3-entropy.engine",
        EngineBuildOptions(precision="int8", calibrator="entropy"),
        calib=work / "calib",
    )
    assert result.info.precision == "int8-entropy" and result.engine.stat().st_size > 0


def test_trtexec_loads_the_plan(engines: dict[str, BuildResult]) -> None:
    trtexec = shutil.which("trtexec") or next(
        (p for p in ("/usr/src/tensorrt/bin/trtexec",) if Path(p).is_file()), None
    )
    if trtexec is None:
        pytest.skip("trtexec is not on the PATH (JetPack: /usr/src/tensorrt/bin)")
    done = subprocess.run(
        [trtexec, f"--loadEngine={engines['fp16'].engine}", "--iterations=5", "--warmUp=0", "--duration=0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "PASSED" in done.stdout, done.stdout[-2000:]


def test_entropy_cache_is_written_per_network_and_reused(work: Path) -> None:
    import tensorrt as trt

    if int(trt.__version__.split(".")[0]) >= 11:
        pytest.skip(f"TensorRT {trt.__version__} has no calibrators (removed in 11)")
    from fume_edge.deploy.tensorrt.trt_settings import calibration_cache_name
    from fume_edge.hashing import sha256_file

    cset = load_calibration(work / "calib")
    expected = (
        work
        / "calib"
        / calibration_cache_name(trt.__version__, sha256_file(default_model_path()), cset.manifest_sha256)
    )
    if not expected.is_file():
        build_engine(
            default_model_path(),
            work / "entropy2.engine",
            EngineBuildOptions(precision="int8", calibrator="entropy"),
            calib=work / "calib",
        )
    assert expected.is_file() and expected.stat().st_size > 0


def test_stream_is_non_blocking_and_a_failed_capture_falls_back(work: Path) -> None:
    """A call CUDA forbids during capture (cudaMalloc) ends it cleanly: the error is cleared and the stream works."""
    from fume_edge.runtime.cuda_mem import CaptureFailed, CudaStream

    stream = CudaStream(0)
    try:
        flags = stream._call("cudaStreamGetFlags", stream.cudart.cudaStreamGetFlags(stream.stream))
        assert int(flags) == int(stream.cudart.cudaStreamNonBlocking)
        with pytest.raises(CaptureFailed):
            stream.capture(lambda: stream.device_buffer(1 << 20))
        host = stream.pinned((4,), np.dtype(np.float32))
        host[:] = 7
        device = stream.device_buffer(host.nbytes)
        stream.to_device(device, host)
        host[:] = 0
        stream.to_host(host, device)
        stream.synchronize()
        assert host.tolist() == [7, 7, 7, 7]
    finally:
        stream.close()


def test_close_gives_the_gpu_memory_back(engines: dict[str, BuildResult]) -> None:
    """Context, engine and runtime released on close: opening and closing an engine five times leaks nothing."""
    from cuda.bindings import runtime as cudart

    def free() -> int:
        return int(cudart.cudaMemGetInfo()[1])

    TensorRTBackend(engines["fp16"].engine).close()  # CUDA's own lazy set-up, once
    before = free()
    for _ in range(5):
        backend = TensorRTBackend(engines["fp16"].engine)
        assert backend.engine is not None
        backend.close()
        assert backend.engine is None and backend.context is None
    assert before - free() < 64 << 20  # less than 64 MB drift after five engines


def test_dla_engine_loads_on_its_core(work: Path) -> None:
    import tensorrt as trt

    if trt.Builder(trt.Logger()).num_DLA_cores == 0:
        pytest.skip("this GPU has no DLA (only AGX Orin and Orin NX do)")
    calibrator = "entropy" if trt.__version__.startswith("8.") else "qdq"
    result = build_engine(
        default_model_path(),
        work / "dla.engine",
        EngineBuildOptions(precision="int8", calibrator=calibrator, dla_core=0),
        calib=work / "calib",
    )
    assert result.info.build_flags["dla_core"] == 0
    item = load_calibration(work / "calib").item(0)
    with TensorRTBackend(result.engine) as backend:
        assert backend._runtime is not None and backend._runtime.DLA_core == 0
        assert backend.infer(item.co2, item.ch4, item.modality_mask).ph_class is not None
