"""The bundled default model: loads by default, reads as documented, and survives TensorRT-target INT8.

The INT8 check runs the real commands (synth → pair → calibrate → quantize) on a held-out synthetic validation
split from the bundled model's recipe settings, with a seed its training never saw.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper

from fume_edge.assets import default_model_path
from fume_edge.deploy.onnx.trt_rules import check_tensorrt_compatible
from fume_edge.runtime.base import load_backend

RECIPE_DATA = Path(__file__).parents[1] / "fume_edge" / "assets" / "recipe" / "data.yaml"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "fume_edge", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"fume-edge {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_default_model_is_the_bundled_onnx_within_the_size_budget() -> None:
    path = default_model_path()
    assert path.name == "fume_default.onnx" and path.stat().st_size <= 10 * 1024 * 1024
    with load_backend(path, device="cpu") as backend:
        assert backend.input_size == (640, 480)
        assert backend.class_names == ["Healthy", "Transitional", "Acidotic"]
    assert check_tensorrt_compatible(onnx.load(str(path))) == []


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("default_int8")
    _cli("synth", "syn", "--pairs", "160", "--seed", "11", "--config", str(RECIPE_DATA), "--workers", "2", cwd=work)
    _cli("pair", "syn/annotations.csv", "-o", "paired", "--config", str(RECIPE_DATA), "--seed", "11", cwd=work)
    _cli("calibrate", "--data", "paired/paired_train.csv", "-o", "calib", "--count", "64", cwd=work)
    return work


def test_int8_tensorrt_target_of_default_model_is_within_limits(held_out: Path) -> None:
    _cli(
        "quantize",
        str(default_model_path()),
        "--calib",
        "calib",
        "-o",
        "int8.onnx",
        "--val",
        "paired/paired_val.csv",
        cwd=held_out,
    )
    model = onnx.load(str(held_out / "int8.onnx"))
    report = json.loads({p.key: p.value for p in model.metadata_props}["fume_edge.quant.report"])
    assert report["samples"] >= 20 and report["source"].endswith("paired_val.csv")
    assert report["gas_iou_drop_points"] <= 1.0
    assert report["ph_agreement"] >= 0.98
    assert report["balanced_accuracy"]["int8"] >= 0.85
    zero_points = [numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("zero_point")]
    assert zero_points and all(z.dtype.name == "int8" and not z.any() for z in zero_points)
    assert check_tensorrt_compatible(model) == []
