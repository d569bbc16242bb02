"""The per-version build settings (deploy/tensorrt/trt_settings.py): one table of what each TensorRT version gets."""

from __future__ import annotations

import pytest

from fume_edge.deploy.tensorrt.trt_settings import (
    EngineBuildOptions,
    InputProfile,
    build_plan,
    calibration_cache_name,
)
from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.contract import ModelContract
from fume_edge.runtime.pre import Preprocessing

# (version, precision, calibrator) -> (network flags, builder flags, ONNX form, sidecar precision)
EXPECTED = {
    ("8.6.2", "fp32", "qdq"): (("EXPLICIT_BATCH",), (), "float", "fp32"),
    ("8.6.2", "fp16", "qdq"): (("EXPLICIT_BATCH",), ("FP16",), "float", "fp16"),
    ("8.6.2", "int8", "qdq"): (("EXPLICIT_BATCH",), ("INT8", "FP16"), "qdq", "int8-qdq"),
    ("8.6.2", "int8", "entropy"): (("EXPLICIT_BATCH",), ("INT8", "FP16"), "float", "int8-entropy"),
    ("10.3.0", "fp16", "qdq"): ((), ("FP16",), "float", "fp16"),
    ("10.3.0", "int8", "qdq"): ((), ("INT8", "FP16"), "qdq", "int8-qdq"),
    ("10.3.0", "int8", "entropy"): ((), ("INT8", "FP16"), "float", "int8-entropy"),
    ("10.16.1", "fp32", "qdq"): ((), (), "float", "fp32"),
    ("11.4.0", "fp32", "qdq"): ((), (), "float", "fp32"),
    ("11.4.0", "fp16", "qdq"): ((), (), "fp16", "fp16"),
    ("11.4.0", "int8", "qdq"): ((), (), "qdq", "int8-qdq"),
}


@pytest.mark.parametrize(("version", "precision", "calibrator"), list(EXPECTED), ids=lambda v: str(v))
def test_flags_and_onnx_form_per_version(version: str, precision: str, calibrator: str) -> None:
    plan = build_plan(version, EngineBuildOptions(precision=precision, calibrator=calibrator))
    assert (plan.network_flags, plan.builder_flags, plan.onnx_form, plan.sidecar_precision) == EXPECTED[
        (version, precision, calibrator)
    ]
    assert plan.entropy_calibrator == (calibrator == "entropy")


@pytest.mark.parametrize("version", ["8.6.2", "10.3.0", "11.4.0"])
def test_config_values_and_version_compatible(version: str) -> None:
    plan = build_plan(version, EngineBuildOptions(workspace_gb=0.5, opt_level=5, version_compatible=True))
    assert plan.workspace_bytes == 1 << 29 and plan.optimization_level == 5
    assert plan.builder_flags[-1] == "VERSION_COMPATIBLE"


def test_dla_adds_gpu_fallback_on_8_6_10_and_11() -> None:
    """11.x included: NVIDIA's 11.x notes list DLA on AGX Orin; a device without DLA is refused at build time."""
    for version in ("8.6.2", "10.3.0", "11.4.0"):
        plan = build_plan(version, EngineBuildOptions(precision="fp16", dla_core=1))
        assert plan.dla_core == 1 and "GPU_FALLBACK" in plan.builder_flags


def test_dla_int8_on_8_6_takes_the_entropy_calibrator_and_explicit_qdq_from_10_on() -> None:
    entropy = build_plan("8.6.2", EngineBuildOptions(precision="int8", calibrator="entropy", dla_core=0))
    assert entropy.entropy_calibrator and entropy.dla_core == 0
    assert build_plan("10.3.0", EngineBuildOptions(precision="int8", dla_core=0)).onnx_form == "qdq"


@pytest.mark.parametrize(
    ("version", "options", "message"),
    [
        ("11.4.0", EngineBuildOptions(precision="int8", calibrator="entropy"), "has no calibrators"),
        ("8.6.2", EngineBuildOptions(precision="int8", dla_core=0), "add --calibrator entropy"),
        ("10.3.0", EngineBuildOptions(precision="fp32", dla_core=0), "DLA runs FP16 or INT8 only"),
        ("8.5.2", EngineBuildOptions(), "needs TensorRT 8.6 or newer"),
        ("10.3.0", EngineBuildOptions(precision="fp16", calibrator="entropy"), "only with --int8"),
        ("10.3.0", EngineBuildOptions(opt_level=6), "--opt-level 6"),
        ("10.3.0", EngineBuildOptions(precision="bf16"), "precision 'bf16'"),
        ("ten", EngineBuildOptions(), "expected MAJOR.MINOR"),
    ],
    ids=["entropy-on-11", "dla-qdq-on-8.6", "dla-fp32", "too-old", "entropy-fp16", "opt-level", "precision", "version"],
)
def test_refusals_are_one_clear_line(version: str, options: EngineBuildOptions, message: str) -> None:
    with pytest.raises(FumeEdgeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_plan(version, options)


def test_labels_name_engine_files() -> None:
    labels = [
        EngineBuildOptions(precision=p, calibrator=c).label
        for p, c in (("fp16", "qdq"), ("int8", "qdq"), ("int8", "entropy"), ("fp32", "qdq"))
    ]
    assert labels == ["fp16", "int8", "int8-entropy", "fp32"]


def test_entropy_cache_is_keyed_by_network_data_and_version() -> None:
    """A cache from another ONNX, other calibration data or another TensorRT must never be reused."""
    base = calibration_cache_name("10.3.0.30", "a" * 64, "b" * 64)
    others = {
        calibration_cache_name("10.3.0.30", "c" * 64, "b" * 64),
        calibration_cache_name("10.3.0.30", "a" * 64, "d" * 64),
        calibration_cache_name("10.3.0.26", "a" * 64, "b" * 64),
    }
    assert base not in others and len(others) == 3
    assert base == calibration_cache_name("10.3.0.30", "a" * 64, "b" * 64)


DYNAMIC_3 = ModelContract(Preprocessing(input_size=(128, 96)), batch=3, dynamic_batch=True)


@pytest.mark.parametrize("version", ["8.6.2", "10.3.0", "10.16.1", "11.4.0"])
def test_a_dynamic_batch_model_gets_a_profile_of_1_to_n_rows_tuned_at_n(version: str) -> None:
    plan = build_plan(version, EngineBuildOptions(precision="fp32"), DYNAMIC_3)
    frame = (1, 96, 128)
    assert plan.profile == (
        InputProfile("co2", (1, *frame), (3, *frame), (3, *frame)),
        InputProfile("ch4", (1, *frame), (3, *frame), (3, *frame)),
        InputProfile("modality_mask", (1, 2), (3, 2), (3, 2)),
    )
    static = ModelContract(Preprocessing(input_size=(128, 96)), batch=3)
    assert build_plan(version, EngineBuildOptions(), static).profile == ()  # a static batch-3 engine: no profile


DLA_FP16 = EngineBuildOptions(precision="fp16", dla_core=0)
ENTROPY = EngineBuildOptions(precision="int8", calibrator="entropy")  # 11.x has no calibrators at all


@pytest.mark.parametrize(
    ("version", "options", "message"),
    [
        ("8.6.2", DLA_FP16, "--dla-core: DLA runs static shapes only"),
        ("10.3.0", DLA_FP16, "--dla-core: DLA runs static shapes only"),
        ("8.6.2", ENTROPY, "--calibrator entropy: TensorRT's calibrator reads a static input shape"),
        ("10.3.0", ENTROPY, "--calibrator entropy: TensorRT's calibrator reads a static input shape"),
    ],
)
def test_dla_and_the_entropy_calibrator_refuse_a_dynamic_batch_in_one_line(
    version: str, options: EngineBuildOptions, message: str
) -> None:
    with pytest.raises(FumeEdgeError, match=f"{message}.*(without --dynamic-batch|static --batch N)") as info:
        build_plan(version, options, DYNAMIC_3)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("version", ["8.6.2", "10.3.0", "11.4.0"])
def test_int8_by_qdq_builds_a_dynamic_batch_model_with_its_profile(version: str) -> None:
    """A QDQ model carries its own scales (`quantize` of a --dynamic-batch export): no calibrator, any batch."""
    plan = build_plan(version, EngineBuildOptions(precision="int8"), DYNAMIC_3)
    assert plan.onnx_form == "qdq" and not plan.entropy_calibrator and len(plan.profile) == 3
