"""Batched inference (one call for several stations' pairs) equals inference pair by pair, on every backend here."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from rich.console import Console

from fume_edge.deploy.onnx.commands import export_and_check
from fume_edge.model.checkpoint import Checkpoint, save_checkpoint
from fume_edge.model.registry import create_model
from fume_edge.labels import GAS_CLASS_ID, GASES
from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.base import Prediction, call_rows, load_backend, predictions_from_batch
from fume_edge.runtime.contract import ModelContract
from fume_edge.runtime.pre import Preprocessing

SMALL = (128, 96)
BATCH = 3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = create_model("fume_fastscnn")
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.dtype.is_floating_point:
                tensor.copy_(
                    torch.rand(tensor.shape, generator=gen) + 0.5
                    if "running_var" in key
                    else torch.randn(tensor.shape, generator=gen) * 0.2
                )
    ckpt = Checkpoint(
        architecture="fume_fastscnn", arch_kwargs={}, state_dict=model.state_dict(), preprocessing=Preprocessing(SMALL)
    )
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("batch") / "fume.pt")


def _rows(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three different stations' inputs: both cameras, CO2 only, CH4 only."""
    rng = np.random.default_rng(seed)
    width, height = SMALL
    co2 = rng.random((BATCH, 1, height, width), dtype=np.float32)
    ch4 = rng.random((BATCH, 1, height, width), dtype=np.float32)
    mask = np.array([[1, 1], [1, 0], [0, 1]], np.float32)
    co2[2], ch4[1] = 0.0, 0.0
    return co2, ch4, mask


def _assert_rows_equal(batched: list, single: list) -> None:
    assert len(batched) == len(single) == BATCH
    for a, b in zip(batched, single, strict=True):
        np.testing.assert_allclose(a.ph_logits, b.ph_logits, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(a.seg["co2"], b.seg["co2"])
        np.testing.assert_array_equal(a.seg["ch4"], b.seg["ch4"])


def test_onnx_batch_export_records_the_batch_and_equals_pair_by_pair(checkpoint: Path, tmp_path: Path) -> None:
    job = export_and_check(checkpoint, tmp_path / "b3.onnx", size=SMALL, check_count=2, batch=BATCH)
    assert job.parity.passed, job.parity.failures
    single_path = export_and_check(checkpoint, tmp_path / "b1.onnx", size=SMALL, check_count=1).export.path
    graph = onnx.load(str(tmp_path / "b3.onnx"))
    assert {p.key: p.value for p in graph.metadata_props}["fume_edge.batch"] == str(BATCH)
    assert all(o.type.tensor_type.shape.dim[0].dim_value == BATCH for o in graph.graph.output)
    co2, ch4, mask = _rows()
    with load_backend(tmp_path / "b3.onnx", device="cpu") as batched, load_backend(single_path, device="cpu") as one:
        assert batched.max_batch == BATCH and batched.contract.batch == BATCH and one.max_batch == 1
        rows = batched.infer_batch(co2, ch4, mask)
        _assert_rows_equal(rows, [one.infer(co2[i : i + 1], ch4[i : i + 1], mask[i : i + 1]) for i in range(BATCH)])
        # one pair through a batch-N model (padded) is that pair's result
        np.testing.assert_allclose(
            batched.infer(co2[1:2], ch4[1:2], mask[1:2]).ph_logits, rows[1].ph_logits, atol=1e-5, rtol=0
        )


def test_torch_batch_equals_pair_by_pair(checkpoint: Path) -> None:
    co2, ch4, mask = _rows(1)
    with load_backend(checkpoint, device="cpu") as backend:
        assert backend.max_batch is None
        _assert_rows_equal(
            backend.infer_batch(co2, ch4, mask),
            [backend.infer(co2[i : i + 1], ch4[i : i + 1], mask[i : i + 1]) for i in range(BATCH)],
        )


def test_an_engine_sidecar_of_a_batch_model_records_its_batch(checkpoint: Path, tmp_path: Path) -> None:
    """What `build-engine` writes beside the plan of an `export --batch N` model: the batch, in the model contract
    the TensorRT backend reads (`max_batch`) before it deserialises anything."""
    from trt_support import IO, ORIN

    from fume_edge.deploy.tensorrt.engine_meta import make_sidecar
    from fume_edge.deploy.tensorrt.trt_settings import EngineBuildOptions, build_plan
    from fume_edge.runtime.contract import ModelContract
    from fume_edge.runtime.engine_sidecar import read_sidecar, write_sidecar

    onnx_path = export_and_check(checkpoint, tmp_path / "b3.onnx", size=SMALL, check_count=1, batch=BATCH).export.path
    options = EngineBuildOptions()
    write_sidecar(
        tmp_path / "b3.engine",
        make_sidecar(onnx_path, onnx_path, "10.3.0", ORIN, IO, build_plan("10.3.0", options), options),
    )
    sidecar = read_sidecar(tmp_path / "b3.engine")
    assert sidecar.metadata["fume_edge.batch"] == str(BATCH)
    assert ModelContract.from_metadata(sidecar.metadata, "b3.engine").batch == BATCH


@pytest.mark.gpu
def test_tensorrt_batch_engine_equals_pair_by_pair(checkpoint: Path, tmp_path: Path) -> None:
    """A TensorRT engine of an `export --batch 3` model: `max_batch` 3, one call for 3 pairs equal to each pair
    alone (pH class, masks), a short call of 2 (padded) the same rows, 4 pairs one clear error."""
    from fume_edge.deploy.tensorrt.tensorrt_build import EngineBuildOptions, build_engine, tensorrt_available
    from fume_edge.errors import FumeEdgeError
    from fume_edge.runtime.trt_backend import TensorRTBackend

    missing = tensorrt_available()
    if missing:
        pytest.skip(missing)
    onnx_path = export_and_check(checkpoint, tmp_path / "b3.onnx", size=SMALL, check_count=1, batch=BATCH).export.path
    try:
        built = build_engine(onnx_path, tmp_path / "b3.engine", EngineBuildOptions(precision="fp32"))
    except FumeEdgeError as exc:  # no GPU here
        pytest.skip(str(exc))
    co2, ch4, mask = _rows(2)
    with TensorRTBackend(built.engine) as engine, load_backend(onnx_path, device="cpu") as reference:
        assert engine.max_batch == BATCH
        rows = engine.infer_batch(co2, ch4, mask)
        single = [engine.infer(co2[i : i + 1], ch4[i : i + 1], mask[i : i + 1]) for i in range(BATCH)]
        want = reference.infer_batch(co2, ch4, mask)
        for got, alone, cpu in zip(rows, single, want, strict=True):
            np.testing.assert_allclose(got.ph_logits, alone.ph_logits, atol=1e-4, rtol=0)
            for gas in GASES:
                np.testing.assert_array_equal(got.seg[gas], alone.seg[gas])
            assert got.ph_class == cpu.ph_class
            assert float(np.mean(got.seg["co2"] == cpu.seg["co2"])) >= 0.99
        short = engine.infer_batch(co2[:2], ch4[:2], mask[:2])
        assert len(short) == 2
        np.testing.assert_allclose(short[1].ph_logits, rows[1].ph_logits, atol=1e-4, rtol=0)
        with pytest.raises(FumeEdgeError, match="1 to 3"):
            engine.infer_batch(*(np.concatenate([a, a[:1]]) for a in (co2, ch4, mask)))


def test_predictions_are_keyed_by_gas_read_only_and_leave_out_a_missing_head() -> None:
    """Per-gas data by key (`labels.GASES`), never by attribute names built from strings; threads share a
    Prediction, so its mappings cannot be changed."""
    co2 = np.zeros((2, 4, 5), np.int32)
    co2[1, :2] = GAS_CLASS_ID  # row 1: 10 of 20 pixels gas
    rows = predictions_from_batch({"ph_logits": np.zeros((2, 3), np.float32), "co2_seg": co2})
    assert [set(p.seg) for p in rows] == [{"co2"}, {"co2"}]  # a model without a CH4 head: no "ch4" key
    assert rows[1].gas_area == {"co2": pytest.approx(0.5)} and rows[0].gas_area["co2"] == 0.0
    with pytest.raises(TypeError):
        rows[0].seg["ch4"] = co2[0]  # type: ignore[index]
    with pytest.raises(TypeError):
        rows[0].gas_area["co2"] = 1.0  # type: ignore[index]
    with pytest.raises(ValueError, match="not gases"):
        Prediction(ph_probs=None, seg={"co2_seg": co2[0]})


@pytest.fixture(scope="module")
def dynamic_onnx(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`export --batch 3 --dynamic-batch` of the random checkpoint (parity checked at every batch 1..3)."""
    folder = tmp_path_factory.mktemp("dynamic")
    job = export_and_check(checkpoint, folder / "d3.onnx", size=SMALL, check_count=2, batch=BATCH, dynamic_batch=True)
    assert job.parity.passed, job.parity.failures
    assert len(job.parity.rows) == 1 + 2 + 3  # one call of each size, every row compared with PyTorch
    return job.export.path


def test_a_dynamic_batch_export_runs_1_to_n_rows_each_equal_to_its_pair_alone(
    checkpoint: Path, dynamic_onnx: Path, tmp_path: Path
) -> None:
    graph = onnx.load(str(dynamic_onnx))
    meta = {p.key: p.value for p in graph.metadata_props}
    assert (meta["fume_edge.batch"], meta["fume_edge.dynamic_batch"]) == (str(BATCH), "true")
    for value in (*graph.graph.input, *graph.graph.output):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and all(d.dim_value > 0 for d in dims[1:])  # only the batch is free
    single_path = export_and_check(checkpoint, tmp_path / "b1.onnx", size=SMALL, check_count=1).export.path
    co2, ch4, mask = _rows(4)
    with load_backend(dynamic_onnx, device="cpu") as dynamic, load_backend(single_path, device="cpu") as one:
        assert dynamic.contract.dynamic_batch and dynamic.max_batch == BATCH
        alone = [one.infer(co2[i : i + 1], ch4[i : i + 1], mask[i : i + 1]) for i in range(BATCH)]
        for rows in range(1, BATCH + 1):
            assert call_rows(dynamic, rows) == rows  # a short tick runs just its pairs
            got = dynamic.infer_batch(co2[:rows], ch4[:rows], mask[:rows])
            assert len(got) == rows
            for a, b in zip(got, alone[:rows], strict=True):
                np.testing.assert_allclose(a.ph_logits, b.ph_logits, atol=1e-5, rtol=0)
                for gas in GASES:
                    np.testing.assert_array_equal(a.seg[gas], b.seg[gas])


def test_a_static_batch_model_pads_a_short_call_and_torch_never_does(checkpoint: Path, tmp_path: Path) -> None:
    static = export_and_check(checkpoint, tmp_path / "b3.onnx", size=SMALL, check_count=1, batch=BATCH).export.path
    with load_backend(static, device="cpu") as backend, load_backend(checkpoint, device="cpu") as eager:
        assert not backend.contract.dynamic_batch
        assert [call_rows(backend, n) for n in (1, 2, 3)] == [3, 3, 3]
        assert [call_rows(eager, n) for n in (1, 2, 3)] == [1, 2, 3]


def _relabelled(source: Path, target: Path, key: str, value: str | None) -> Path:
    """`source` with metadata `key` set to `value` (None: removed)."""
    model = onnx.load(str(source))
    kept = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    if value is not None:
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.save(model, str(target))
    return target


def test_the_dynamic_batch_flag_is_checked_against_the_graph(
    checkpoint: Path, dynamic_onnx: Path, tmp_path: Path
) -> None:
    """The metadata says dynamic where the graph is static, or the reverse: one line at load, naming the input."""
    static = export_and_check(checkpoint, tmp_path / "b3.onnx", size=SMALL, check_count=1, batch=BATCH).export.path
    claims = _relabelled(static, tmp_path / "claims.onnx", "fume_edge.dynamic_batch", "true")
    with pytest.raises(FumeEdgeError, match=r"input 'co2' is float32\[3,1,96,128\], expected float32\[batch,1,96"):
        load_backend(claims, device="cpu")
    unlabelled = _relabelled(dynamic_onnx, tmp_path / "unlabelled.onnx", "fume_edge.dynamic_batch", None)
    with pytest.raises(FumeEdgeError, match=r"input 'co2' is float32\[batch,1,96,128\], expected float32\[3,1,96"):
        load_backend(unlabelled, device="cpu")


@pytest.mark.parametrize("value", ["yes", "1", ""])
def test_a_malformed_dynamic_batch_value_is_one_line(value: str) -> None:
    with pytest.raises(FumeEdgeError, match=f"fume_edge.dynamic_batch is '{value}', expected true or false") as info:
        ModelContract.from_metadata({"fume_edge.batch": "3", "fume_edge.dynamic_batch": value}, "m.onnx")
    assert "\n" not in str(info.value)


def test_dynamic_batch_needs_a_batch_of_two_or_more(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(FumeEdgeError, match="--dynamic-batch: give the most pairs a call takes with --batch N"):
        export_and_check(checkpoint, tmp_path / "d1.onnx", size=SMALL, dynamic_batch=True)
    assert not (tmp_path / "d1.onnx").exists()


def test_bench_stations_runs_the_onnxruntime_loop_on_a_dynamic_batch_export(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bench --stations 3`: the FP32 ONNX Runtime row's loop model is the checkpoint at batch 1..3 (a short tick
    runs smaller there, benchmarks/README.md; the INT8 row's: tests/test_quantize_batch.py)."""
    from fume_edge.bench.backends import Models
    from fume_edge.bench.commands import batched_model

    monkeypatch.setenv("FUME_EDGE_CACHE", str(tmp_path / "cache"))
    given = tmp_path / "given.onnx"
    models, quiet = Models(checkpoint, given), Console(file=io.StringIO())
    loop = batched_model(given, "onnxruntime", BATCH, models, quiet)
    contract = ModelContract.from_metadata({p.key: p.value for p in onnx.load(str(loop)).metadata_props}, str(loop))
    assert (contract.batch, contract.dynamic_batch) == (BATCH, True)


@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graph", [False, True], ids=["enqueue", "cuda-graph"])
def test_tensorrt_dynamic_batch_engine_runs_1_to_n_rows(dynamic_onnx: Path, tmp_path: Path, cuda_graph: bool) -> None:
    """An engine of an `export --batch 3 --dynamic-batch` model (profile 1/3/3): every call size 1..3 gives each
    row its pair's result alone, a full call after short ones (the CUDA graph's N rows) too; 4 rows one error."""
    from fume_edge.deploy.tensorrt.tensorrt_build import EngineBuildOptions, build_engine, tensorrt_available
    from fume_edge.runtime.trt_backend import TensorRTBackend

    missing = tensorrt_available()
    if missing:
        pytest.skip(missing)
    try:
        built = build_engine(dynamic_onnx, tmp_path / "d3.engine", EngineBuildOptions(precision="fp32"))
    except FumeEdgeError as exc:  # no GPU here
        pytest.skip(str(exc))
    assert {t.name: t.shape[0] for t in built.info.io} == dict.fromkeys(
        ("co2", "ch4", "modality_mask", "ph_logits", "co2_seg", "ch4_seg"), -1
    )
    co2, ch4, mask = _rows(5)
    with TensorRTBackend(built.engine, cuda_graph=cuda_graph) as engine, load_backend(dynamic_onnx, "cpu") as cpu:
        assert engine.max_batch == BATCH and engine.contract.dynamic_batch and call_rows(engine, 1) == 1
        alone = [engine.infer(co2[i : i + 1], ch4[i : i + 1], mask[i : i + 1]) for i in range(BATCH)]
        want = cpu.infer_batch(co2, ch4, mask)
        for rows in (3, 1, 2, 3):
            got = engine.infer_batch(co2[:rows], ch4[:rows], mask[:rows])
            assert len(got) == rows
            for a, b, c in zip(got, alone, want, strict=False):
                np.testing.assert_allclose(a.ph_logits, b.ph_logits, atol=1e-4, rtol=0)
                for gas in GASES:
                    np.testing.assert_array_equal(a.seg[gas], b.seg[gas])
                assert a.ph_class == c.ph_class and float(np.mean(a.seg["co2"] == c.seg["co2"])) >= 0.99
        with pytest.raises(FumeEdgeError, match="1 to 3"):
            engine.infer_batch(*(np.concatenate([a, a[:1]]) for a in (co2, ch4, mask)))


def test_the_swappable_backend_pads_as_the_model_in_use_does(
    checkpoint: Path, dynamic_onnx: Path, tmp_path: Path
) -> None:
    """`run`'s backend holder: a static batch-3 model pads a short call to 3 rows; swapped for the dynamic batch-3
    export (same input, same most rows), the next call runs only its pairs."""
    from fume_edge.runtime.holder import SwappableBackend

    static = export_and_check(checkpoint, tmp_path / "b3.onnx", size=SMALL, check_count=1, batch=BATCH).export.path
    co2, ch4, mask = _rows(6)
    with SwappableBackend(load_backend(static, device="cpu"), "static", "1") as holder:
        assert call_rows(holder, 1) == BATCH
        holder.swap(load_backend(dynamic_onnx, device="cpu"), "dynamic", "2").close()
        assert call_rows(holder, 1) == 1 and call_rows(holder, 2) == 2
        assert len(holder.infer_batch(co2[:2], ch4[:2], mask[:2])) == 2


def test_tensorrt_rules_take_a_dynamic_batch_where_the_model_declares_one(dynamic_onnx: Path, tmp_path: Path) -> None:
    """`build-engine` checks the graph first: the batch dimension of a `--dynamic-batch` export is fine on every
    TensorRT version (it gets a profile); the same graph without the flag is a dynamic shape, refused."""
    from fume_edge.deploy.onnx.trt_rules import VERSIONS, check_onnx

    model = onnx.load(str(dynamic_onnx))
    for version in VERSIONS:
        assert check_onnx(model, version).findings == ()
    unlabelled = onnx.load(str(_relabelled(dynamic_onnx, tmp_path / "u.onnx", "fume_edge.dynamic_batch", None)))
    assert str(check_onnx(unlabelled).findings[0]).startswith("input 'co2' has a dynamic shape ['batch', 1, 96, 128]")
