"""ONNX export: every registered model exports and matches PyTorch; the ORT backend equals the torch backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from fume_edge.model.checkpoint import Checkpoint, save_checkpoint
from fume_edge.deploy.onnx.commands import export_and_check
from fume_edge.deploy.onnx.onnx_export import OPSET, export_onnx
from fume_edge.errors import FumeEdgeError
from fume_edge.model.registry import create_model, list_models
from fume_edge.runtime.base import load_backend
from fume_edge.runtime.pre import Preprocessing

SMALL = (128, 96)


def _random_checkpoint(tmp_path: Path, name: str, seed: int = 0) -> Path:
    model = create_model(name)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.dtype.is_floating_point:
                tensor.copy_(
                    torch.rand(tensor.shape, generator=gen) + 0.5
                    if "running_var" in key
                    else torch.randn(tensor.shape, generator=gen) * 0.2
                )
    ckpt = Checkpoint(
        architecture=name, arch_kwargs={}, state_dict=model.state_dict(), preprocessing=Preprocessing(SMALL)
    )
    return save_checkpoint(ckpt, tmp_path / f"{name}.pt")


@pytest.mark.parametrize("name", list_models())
def test_every_model_exports_with_parity(tmp_path: Path, name: str) -> None:
    job = export_and_check(_random_checkpoint(tmp_path, name), tmp_path / f"{name}.onnx", size=SMALL, check_count=3)
    assert job.parity.passed, job.parity.failures
    graph = onnx.load(str(tmp_path / f"{name}.onnx"))
    assert graph.opset_import[0].version == OPSET
    for output in graph.graph.output:
        dims = [d.dim_value for d in output.type.tensor_type.shape.dim]
        assert all(d > 0 for d in dims), f"{output.name} has a dynamic dimension"
        if output.name.endswith("_seg"):
            assert output.type.tensor_type.elem_type == onnx.TensorProto.INT32
            assert dims == [1, SMALL[1], SMALL[0]]
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["fume_edge.architecture"] == name and len(meta["fume_edge.source_checkpoint_sha256"]) == 64


def test_onnx_backend_prediction_equals_torch_backend(
    imported_checkpoint: Path, tmp_path: Path, upstream_dir: Path
) -> None:
    onnx_path = export_onnx(imported_checkpoint, tmp_path / "fume.onnx").path
    with np.load(upstream_dir / "upstream_fume_fastscnn_shared_io.npz") as io:
        fixture = dict(io)
    with (
        load_backend(imported_checkpoint, device="cpu") as torch_backend,
        load_backend(onnx_path, device="cpu") as ort_backend,
    ):
        assert ort_backend.input_size == (640, 480)
        for case in ("both", "co2_only", "ch4_only"):
            inputs = [fixture[f"{case}_{k}"] for k in ("co2", "ch4", "modality_mask")]
            a, b = torch_backend.infer(*inputs), ort_backend.infer(*inputs)
            np.testing.assert_allclose(b.ph_logits, fixture[f"{case}_cls_logits"][0], atol=1e-4, rtol=0)
            np.testing.assert_allclose(b.ph_probs, a.ph_probs, atol=1e-5, rtol=0)
            assert a.ph_class == b.ph_class
            np.testing.assert_array_equal(b.seg["co2"], fixture[f"{case}_co2_labels"][0])
            np.testing.assert_array_equal(b.seg["ch4"], a.seg["ch4"])
            assert a.gas_area["co2"] == pytest.approx(b.gas_area["co2"])


def test_fp16_export_keeps_float32_io_and_labels(tmp_path: Path) -> None:
    ckpt = _random_checkpoint(tmp_path, "fume_fastscnn")
    job = export_and_check(ckpt, tmp_path / "fp16.onnx", size=SMALL, fp16=True, check_count=3)
    assert job.parity.passed, job.parity.failures
    assert all(row.label_agreement >= 0.999 for row in job.parity.rows)
    graph = onnx.load(str(tmp_path / "fp16.onnx")).graph
    assert {i.name: i.type.tensor_type.elem_type for i in graph.input} == {
        "co2": onnx.TensorProto.FLOAT,
        "ch4": onnx.TensorProto.FLOAT,
        "modality_mask": onnx.TensorProto.FLOAT,
    }
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in graph.initializer)


def test_parity_failure_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph that does not match PyTorch never reaches the output path: the exporter is made to trace other
    weights than the checkpoint it is given, so `export_and_check`'s parity check sees a real mismatch."""
    import fume_edge.deploy.onnx.commands as export_commands

    good = _random_checkpoint(tmp_path, "fume_fastscnn", seed=0)
    other = _random_checkpoint(tmp_path / "other", "fume_fastscnn", seed=1)
    monkeypatch.setattr(export_commands, "export_onnx", lambda checkpoint, path, **kw: export_onnx(other, path, **kw))
    output = tmp_path / "out" / "model.onnx"
    output.parent.mkdir()
    job = export_and_check(good, output, size=SMALL, simplify=False, check_count=2)
    assert not job.parity.passed and job.parity.failures
    assert not list(output.parent.iterdir())  # neither the model nor its staging file


def test_unknown_architecture_is_one_clear_error(tmp_path: Path) -> None:
    ckpt = Checkpoint(architecture="resnet50", arch_kwargs={}, state_dict={}, preprocessing=Preprocessing(SMALL))
    path = save_checkpoint(ckpt, tmp_path / "resnet.pt")
    with pytest.raises(FumeEdgeError, match="unknown model 'resnet50'"):
        export_onnx(path, tmp_path / "x.onnx")


def test_onnx_without_expected_inputs_and_corrupt_onnx(tmp_path: Path) -> None:
    from onnx import helper

    node = helper.make_node("Identity", ["image"], ["out"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 3])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), foreign)
    with pytest.raises(FumeEdgeError, match=r"input 'co2' is missing \(has image\)"):
        load_backend(foreign)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(FumeEdgeError, match="corrupt.onnx: ONNX Runtime cannot load it"):
        load_backend(corrupt)


def test_cli_export_bad_size_is_one_line(tmp_path: Path) -> None:
    ckpt = _random_checkpoint(tmp_path, "fume_fastscnn")
    done = subprocess.run(
        [sys.executable, "-m", "fume_edge", "export", str(ckpt), "--size", "100x100", "-o", str(tmp_path / "x.onnx")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "multiples of 32" in done.stderr and "Traceback" not in done.stderr
