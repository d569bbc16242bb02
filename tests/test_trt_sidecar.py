"""Engine sidecars: written by the build, read and compared by the backend before any deserialisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trt_support import bundled_sidecar

from fume_edge.assets import default_model_path
from fume_edge.deploy.tensorrt.engine_meta import l4t_release, onnx_metadata
from fume_edge.deploy.tensorrt.trt_settings import EngineBuildOptions
from fume_edge.errors import FumeEdgeError
from fume_edge.hashing import sha256_file
from fume_edge.runtime.engine_sidecar import (
    RunningOn,
    compare_sidecar,
    read_sidecar,
    sidecar_path,
    version_compatible_runs,
    write_sidecar,
)


def test_round_trip_keeps_everything_and_the_onnx_metadata_verbatim(tmp_path: Path) -> None:
    engine = tmp_path / "fume.engine"
    sidecar = bundled_sidecar()
    assert write_sidecar(engine, sidecar) == sidecar_path(engine) == tmp_path / "fume.engine.json"
    assert read_sidecar(engine) == sidecar
    raw = json.loads(sidecar_path(engine).read_text())
    assert raw["metadata"] == onnx_metadata(default_model_path()) and "fume_edge.class_names" in raw["metadata"]
    assert raw["onnx_sha256"] == sha256_file(default_model_path())
    assert raw["build_flags"]["builder_flags"] == ["FP16"] and raw["precision"] == "fp16"
    assert raw["compute_capability"] == "8.7" and raw["cuda_version"] == "12.6" and raw["built_at"].endswith("+00:00")
    assert [t["name"] for t in raw["io"] if t["mode"] == "output"] == ["ph_logits", "co2_seg", "ch4_seg"]


def test_same_version_and_device_pass() -> None:
    compare_sidecar(
        bundled_sidecar("10.3.0.30"),
        RunningOn("10.3.0.30", "8.7", sm_count=8),
        "e.engine",
        sha256_file(default_model_path()),
    )


@pytest.mark.parametrize(
    ("built", "here", "message"),
    [
        ("10.3.0", RunningOn("8.6.2", "8.7"), "built with TensorRT 10.3.0, this is 8.6.2"),
        (
            "10.3.0.30",
            RunningOn("10.3.0.26", "8.7"),
            "built with TensorRT 10.3.0.30, this is 10.3.0.26 (an engine runs on its exact TensorRT version only)",
        ),
        (
            "10.3.0",
            RunningOn("10.3.0", "8.7", sm_count=16),
            "built on Orin with 8 SMs, this GPU has 16 (another Orin model)",
        ),
        (
            "10.3.0",
            RunningOn("10.3.0", "8.7", sm_count=8, l4t="L4T R36.4.3"),
            "built on a machine without L4T, this is L4T R36.4.3",
        ),
        ("10.3.0", RunningOn("10.3.0", "8.6"), "compute capability 8.7 (Orin), this GPU is 8.6"),
        ("10.3.0", RunningOn("11.4.0", None, lean_runtime=True), "only the lean runtime"),
    ],
    ids=["version", "full-version", "sm-count", "l4t", "compute-capability", "lean-needs-version-compatible"],
)
def test_mismatch_is_one_line_with_the_rebuild_command(built: str, here: RunningOn, message: str) -> None:
    with pytest.raises(FumeEdgeError) as error:
        compare_sidecar(bundled_sidecar(built), here, "engines/fume.engine")
    text = str(error.value)
    assert "\n" not in text and message in text
    where = "where the full TensorRT is installed" if here.lean_runtime else "here"
    compat = " --version-compatible" if here.lean_runtime else ""
    assert text.endswith(
        f"rebuild it {where}: fume-edge build-engine {default_model_path()} --fp16{compat} -o engines/fume.engine"
    )


def test_changed_onnx_is_refused() -> None:
    with pytest.raises(FumeEdgeError, match="changed since the build"):
        compare_sidecar(bundled_sidecar(), RunningOn("10.3.0", "8.7"), "e.engine", onnx_sha256="0" * 64)


def test_version_compatible_engines_follow_the_documented_majors() -> None:
    assert version_compatible_runs("10.3.0", "10.16.1") and version_compatible_runs("10.3.0", "11.4.0")
    assert version_compatible_runs("8.6.2", "10.3.0")
    assert not version_compatible_runs("8.6.2", "11.4.0")  # 8 → 11 is not a supported step
    assert not version_compatible_runs("10.16.1", "10.3.0")  # never an older runtime
    sidecar = bundled_sidecar("10.3.0", EngineBuildOptions(version_compatible=True))
    compare_sidecar(sidecar, RunningOn("11.4.0", None), "e.engine")  # the full TensorRT 11 runs a 10.x plan
    with pytest.raises(FumeEdgeError, match=r"lean runtime 11.4.0 runs version-compatible plans of its own version"):
        compare_sidecar(sidecar, RunningOn("11.4.0", None, lean_runtime=True), "e.engine")
    with pytest.raises(FumeEdgeError, match="--version-compatible -o e.engine$"):
        compare_sidecar(
            bundled_sidecar("8.6.2", EngineBuildOptions(version_compatible=True)),
            RunningOn("11.4.0", None, lean_runtime=True),
            "e.engine",
        )


def test_missing_and_corrupt_sidecars_are_one_line(tmp_path: Path) -> None:
    engine = tmp_path / "fume.engine"
    with pytest.raises(FumeEdgeError, match="sidecar missing.*force=True"):
        read_sidecar(engine)
    sidecar_path(engine).write_text('{"tensorrt_version": "10.3"}')
    with pytest.raises(FumeEdgeError, match="not a fume-edge engine sidecar"):
        read_sidecar(engine)


def test_l4t_release_is_read_from_nv_tegra_release(tmp_path: Path) -> None:
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n")
    assert l4t_release(release) == "L4T R36.4.3"
    assert l4t_release(tmp_path / "absent") is None


def test_force_logs_the_mismatch_with_the_rebuild_command_instead_of_refusing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="fume_edge.tensorrt"):
        message = compare_sidecar(
            bundled_sidecar("10.3.0"), RunningOn("10.3.0", "8.7", sm_count=16), "e.engine", force=True
        )
    assert message is not None and "this GPU has 16" in message
    assert caplog.records and caplog.records[0].getMessage() == f"loading anyway (forced): {message}"


def test_rebuild_command_keeps_the_dla_core() -> None:
    sidecar = bundled_sidecar("10.3.0", EngineBuildOptions(precision="int8", dla_core=1))
    assert sidecar.sm_count == 8
    with pytest.raises(FumeEdgeError, match=r"build-engine \S+ --int8 --dla-core 1 -o e.engine$"):
        compare_sidecar(sidecar, RunningOn("10.3.1", "8.7"), "e.engine")
