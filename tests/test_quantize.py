"""QDQ INT8 quantization: TensorRT's rules walked on the graph, the CPU form, exclusions, the search, the report."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from calibration_support import SIZE
from disk_support import fill, mount_tmpfs, unmount
from onnx import TensorProto, numpy_helper

from fume_edge.data.calibration import MANIFEST, load_calibration
from fume_edge.hashing import sha256_file
from fume_edge.deploy.int8 import int8_report
from fume_edge.deploy.int8.int8_report import Int8Report
from fume_edge.deploy.onnx.onnx_export import export_onnx
from fume_edge.deploy.int8.quantize import CalibrationFeeds, QuantizeOptions, calibration_stride, quantize_onnx
from fume_edge.deploy.int8.sensitivity import NodeSensitivity, keep_float, quantized_nodes
from fume_edge.deploy.onnx.trt_rules import check_tensorrt_compatible
from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.onnx_backend import OnnxBackend


@pytest.fixture(scope="module")
def fp32(imported_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(imported_checkpoint, tmp_path_factory.mktemp("onnx") / "fume.onnx", size=SIZE).path


@pytest.fixture(scope="module")
def trt_int8(fp32: Path, calib: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "fume.int8.onnx"
    result = quantize_onnx(fp32, calib, out, QuantizeOptions(target="tensorrt", force=True))
    assert result.written and result.report.samples == 4 * 3  # held-back fifth of 20 pairs × 3 modality cases
    return out


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _weight_dequantizers(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """(DequantizeLinear, consumer) for every Conv/Gemm weight input."""
    producer = {o: n for n in model.graph.node for o in n.output}
    return [(producer[n.input[1]], n) for n in model.graph.node if n.op_type in ("Conv", "Gemm")]


def test_tensorrt_target_is_symmetric_int8_with_per_channel_weights(trt_int8: Path) -> None:
    model = onnx.load(str(trt_int8))
    constants = _constants(model)
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 100
    for node in qdq:
        assert len(node.input) == 3, f"{node.name}: zero point omitted (means uint8)"
        zero_point = constants[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
    for dq, consumer in _weight_dequantizers(model):
        assert dq.op_type == "DequantizeLinear", f"{consumer.name}: weights not quantized"
        weight, scale = constants[dq.input[0]], constants[dq.input[1]]
        axis = {a.name: a.i for a in dq.attribute}.get("axis")
        assert weight.dtype == np.int8 and axis is not None, consumer.name
        assert scale.ndim == 1 and scale.size == weight.shape[axis] == weight.shape[0], consumer.name
    assert check_tensorrt_compatible(model) == []


def test_tensorrt_target_records_how_it_was_made_and_runs(trt_int8: Path, calib: Path) -> None:
    meta = {p.key: p.value for p in onnx.load(str(trt_int8)).metadata_props}
    assert meta["fume_edge.precision"] == "int8" and meta["fume_edge.quant.target"] == "tensorrt"
    assert meta["fume_edge.quant.method"] == "minmax"
    assert meta["fume_edge.quant.calibration_manifest_sha256"] == sha256_file(calib / MANIFEST)
    assert all("/ppm/MatMul" in name for name in json.loads(meta["fume_edge.quant.excluded_nodes"]))
    assert json.loads(meta["fume_edge.input_size"]) == list(SIZE)  # the export's own metadata is kept
    assert json.loads(meta["fume_edge.quant.report"])["samples"] == 12
    item = load_calibration(calib).item(0)
    with OnnxBackend(trt_int8, device="cpu") as backend:
        prediction = backend.infer(item.co2, item.ch4, item.modality_mask)
    assert prediction.seg["co2"] is not None and prediction.seg["co2"].shape == (SIZE[1], SIZE[0])


def test_excluded_nodes_stay_float(fp32: Path, calib: Path, tmp_path: Path) -> None:
    options = QuantizeOptions(exclude=("Softmax", "/model/cls_head/*"), force=True)
    result = quantize_onnx(fp32, calib, tmp_path / "x.onnx", options)
    model = onnx.load(str(tmp_path / "x.onnx"))
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    floats = {t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT}
    kept = [n for n in model.graph.node if n.op_type == "Softmax" or n.name.startswith("/model/cls_head/")]
    assert len(kept) >= 7 and all(n.name in result.excluded for n in kept)
    assert not any(o in quantized for n in kept for o in n.output)  # float out
    gemms = [n for n in kept if n.op_type == "Gemm"]
    assert len(gemms) == 3 and all(n.input[1] in floats for n in gemms)  # float weights
    assert not {n.name for n in kept} & {name for name, _ in quantized_nodes(model)}
    with pytest.raises(FumeEdgeError, match="--exclude 'NoSuchOp': no node or op type matches"):
        quantize_onnx(fp32, calib, tmp_path / "y.onnx", QuantizeOptions(exclude=("NoSuchOp",)))


def test_sensitivity_ranks_measured_errors(fp32: Path, calib: Path, tmp_path: Path) -> None:
    options = QuantizeOptions(sensitivity=True, sensitivity_ops=("Gemm",), force=True)
    result = quantize_onnx(fp32, calib, tmp_path / "s.onnx", options)
    assert result.sensitivity is not None
    ranking = result.sensitivity.ranking
    assert len(ranking) == 5 and {r.op_type for r in ranking} == {"Gemm"}
    assert [r.error for r in ranking] == sorted((r.error for r in ranking), reverse=True) and ranking[0].error > 0
    assert result.sensitivity.steps[0].kept_float == 0  # the search tries the all-INT8 model first


class _FakeBuilder:
    probe_model = onnx.ModelProto()

    def build(self, nodes: object, exclude: list[str], probe: bool = False) -> onnx.ModelProto:
        model = onnx.ModelProto()
        model.doc_string = json.dumps(list(exclude))
        return model


def _judge(needed: set[str]):  # type: ignore[no-untyped-def]
    def judge(model: onnx.ModelProto) -> Int8Report:
        ok = needed <= set(json.loads(model.doc_string))
        return Int8Report(1, {"gas_iou": 0.5}, {"gas_iou": 0.5 if ok else 0.4}, 1.0, 1.0)

    return judge


def test_keep_float_takes_the_fewest_top_nodes_that_pass() -> None:
    ranking = [NodeSensitivity(f"n{i}", "Conv", 1.0 / (i + 1)) for i in range(6)] + [NodeSensitivity("z", "Relu", 0.0)]
    kept, steps = keep_float(ranking, _FakeBuilder(), _judge({"n0", "n2"}), ["user"], max_float=16)
    assert kept == ["n0", "n1", "n2", "n3"] and [s.kept_float for s in steps] == [0, 1, 2, 4]
    kept, steps = keep_float(ranking, _FakeBuilder(), _judge({"never"}), [], max_float=3)
    assert kept == ["n0", "n1", "n2"] and not steps[-1].passed  # best effort; the report then fails


def test_report_limits() -> None:
    assert Int8Report(10, {"gas_iou": 0.80}, {"gas_iou": 0.795}, 0.99, 1.0).passed
    failing = Int8Report(10, {"gas_iou": 0.80}, {"gas_iou": 0.785}, 0.97, 1.0)
    assert [f.split(" (")[0] for f in failing.failures()] == ["gas IoU drops 1.50 points", "pH agreement 97.00%"]
    assert Int8Report(10, {"gas_iou": math.nan}, {"gas_iou": math.nan}, 1.0, 1.0).gas_iou_drop == 0.0
    assert not Int8Report(0, {}, {}, math.nan, math.nan).passed


def test_outside_the_limits_nothing_is_written_unless_forced(
    fp32: Path, calib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(int8_report, "MIN_PH_AGREEMENT", 1.01)  # unreachable: every model now fails
    result = quantize_onnx(fp32, calib, tmp_path / "no.onnx")
    assert not result.written and not result.report.passed and not list(tmp_path.iterdir())


def test_forced_output_is_written_atomically(trt_int8: Path, tmp_path: Path) -> None:
    """On a disk too full for the new model, the previous file stays whole and no partial file is left; once there
    is room the new model replaces it."""
    from fume_edge.deploy.onnx.quant_graph import write_atomically

    assert [p.name for p in trt_int8.parent.iterdir()] == [trt_int8.name]
    model = onnx.load(str(trt_int8))
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "8m")
    try:
        target = disk / trt_int8.name
        target.write_bytes(b"the previous model")
        filler = fill(disk, leave=trt_int8.stat().st_size // 2)  # half the room the new model needs
        with pytest.raises(OSError):
            write_atomically(model, target)
        assert target.read_bytes() == b"the previous model"
        assert sorted(p.name for p in disk.iterdir()) == sorted([target.name, filler.name])
        filler.unlink()
        write_atomically(model, target)
        assert target.read_bytes() == trt_int8.read_bytes() and sorted(disk.iterdir()) == [target]
    finally:
        unmount(disk)


class _IndexedSet:
    """A calibration set whose inputs say which pair and case they are: co2 holds the index, ch4 the case."""

    def item(self, index: int, case: str) -> object:
        return type("Item", (), {"co2": np.array([index]), "ch4": np.array([case]), "modality_mask": np.ones((1, 2))})()


def test_feeds_cover_the_modality_cases() -> None:
    feeds = CalibrationFeeds(_IndexedSet(), [4, 7, 9], "all")  # type: ignore[arg-type]
    assert len(feeds) == 6 and [f["ch4"][0] for f in iter(feeds.get_next, None)] == [
        "both",
        "both",
        "both",
        "co2 only",
        "ch4 only",
        "co2 only",
    ]
    feeds.set_range(start_index=4, end_index=10)
    assert [f["co2"][0] for f in iter(feeds.get_next, None)] == [7, 9]
    assert len(CalibrationFeeds(_IndexedSet(), [1, 2], "both")) == 2  # type: ignore[arg-type]
    assert calibration_stride(480) == 8 and calibration_stride(482) == 2 and calibration_stride(7) == 7


def test_feeds_stack_the_graph_batch_and_pad_the_last_group_from_the_start() -> None:
    feeds = CalibrationFeeds(_IndexedSet(), [4, 7, 9, 11], "both", rows=3)  # type: ignore[arg-type]
    got = list(iter(feeds.get_next, None))
    assert len(feeds) == 2 and [f["co2"].tolist() for f in got] == [[4, 7, 9], [11, 4, 7]]
    assert all(f["modality_mask"].shape == (3, 2) for f in got)
    tiny = CalibrationFeeds(_IndexedSet(), [5], "all", rows=4)  # type: ignore[arg-type]
    assert tiny.get_next()["ch4"].tolist() == ["both", "co2 only", "both", "co2 only"]  # type: ignore[index]


def test_bad_inputs_are_one_line(fp32: Path, calib: Path, tmp_path: Path) -> None:
    other = shutil.copytree(calib, tmp_path / "other", ignore=shutil.ignore_patterns("*.npz"))
    manifest = json.loads((other / MANIFEST).read_text())
    smaller = manifest["preprocessing"] | {"input_size": [64, 64]}
    (other / MANIFEST).write_text(json.dumps(manifest | {"input_size": [64, 64], "preprocessing": smaller}))
    with pytest.raises(FumeEdgeError, match=r"made with input_size \[64, 64\] \(model: \[128, 96\]\)"):
        quantize_onnx(fp32, other, tmp_path / "a.onnx")
    model = onnx.load(str(fp32))
    model.graph.input[2].name = "mask"
    onnx.save(model, str(tmp_path / "foreign.onnx"))
    with pytest.raises(FumeEdgeError, match="not a fume-edge model, inputs modality_mask are missing"):
        quantize_onnx(tmp_path / "foreign.onnx", calib, tmp_path / "b.onnx")
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(FumeEdgeError, match="corrupt.onnx: not a readable ONNX file"):
        quantize_onnx(tmp_path / "corrupt.onnx", calib, tmp_path / "d.onnx")
    with pytest.raises(FumeEdgeError, match="--target 'gpu'"):
        quantize_onnx(fp32, calib, tmp_path / "c.onnx", QuantizeOptions(target="gpu"))


def test_quantize_command_cpu_target(fp32: Path, calib: Path, dataset: Path, tmp_path: Path) -> None:
    """The CLI end to end; its --target cpu model has uint8 activations and int8 weights, which TensorRT refuses."""
    out = tmp_path / "cpu.int8.onnx"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fume_edge",
            "quantize",
            str(fp32),
            "--calib",
            str(calib),
            "-o",
            str(out),
            "--target",
            "cpu",
            "--method",
            "percentile",
            "--val",
            str(dataset / "paired_val.csv"),
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "INT8 vs FP32" in done.stdout and "paired_val.csv" in done.stdout and f"wrote {out}" in done.stdout
    model = onnx.load(str(out))
    constants = _constants(model)
    activations = [constants[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert activations and all(zp.dtype == np.uint8 for zp in activations)
    assert all(constants[dq.input[0]].dtype == np.int8 for dq, _ in _weight_dequantizers(model))
    assert any("zero point is uint8" in p for p in check_tensorrt_compatible(model))


def test_outputs_are_named_by_target_and_never_overwritten_silently(fp32: Path, calib: Path, tmp_path: Path) -> None:
    from fume_edge.deploy.int8.commands import int8_path, quantize_command

    assert int8_path(Path("engines/fume.onnx"), "cpu") == Path("engines/fume.cpu.int8.onnx")
    assert int8_path(Path("engines/fume.onnx"), "tensorrt") == Path("engines/fume.tensorrt.int8.onnx")
    taken = tmp_path / "taken.onnx"
    taken.write_bytes(b"keep me")
    with pytest.raises(FumeEdgeError, match="taken.onnx: already exists; pass --overwrite"):
        quantize_command(fp32, calib, taken, QuantizeOptions(target="cpu"), None)
    assert taken.read_bytes() == b"keep me"


def test_run_warns_when_a_tensorrt_int8_model_runs_on_the_cpu(trt_int8: Path, fp32: Path) -> None:
    from fume_edge.pipeline.advice import backend_warnings

    with OnnxBackend(trt_int8, device="cpu") as backend:
        assert any("--target cpu" in w for w in backend_warnings(backend, trt_int8))
    with OnnxBackend(fp32, device="cpu") as backend:
        assert backend_warnings(backend, fp32) == []
