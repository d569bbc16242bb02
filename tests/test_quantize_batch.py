"""A `--batch N` export quantized: N stacked pairs per calibration feed and per report call, the same scales as the
batch-1 export's, and per-row predictions equal to the batch-1 INT8 model's; a `--dynamic-batch` export quantized
the same way (one pair a feed) runs any 1..N rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from calibration_support import SIZE
from onnx import numpy_helper

from fume_edge.data.calibration import load_calibration
from fume_edge.deploy.int8.int8_report import cpu_session, run
from fume_edge.deploy.int8.quantize import HOLDOUT, QuantizeOptions, QuantizeResult, quantize_onnx
from fume_edge.deploy.onnx.onnx_export import export_onnx
from fume_edge.runtime.base import call_rows
from fume_edge.runtime.onnx_backend import OnnxBackend

BATCH = 3
TARGETS = ("cpu", "tensorrt")


@pytest.fixture(scope="module")
def exports(imported_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("onnx")
    return {n: export_onnx(imported_checkpoint, folder / f"b{n}.onnx", size=SIZE, batch=n).path for n in (1, BATCH)}


@pytest.fixture(scope="module")
def quantized(
    exports: dict[int, Path], calib: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, int], QuantizeResult]:
    folder = tmp_path_factory.mktemp("int8")
    return {
        (target, n): quantize_onnx(path, calib, folder / f"b{n}.{target}.onnx", QuantizeOptions(target, force=True))
        for target in TARGETS
        for n, path in exports.items()
    }


def _scales(path: Path) -> dict[str, np.ndarray]:
    """Every scale and zero point the Q/DQ nodes read, by initializer name."""
    model = onnx.load(str(path))
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return {
        name: constants[name]
        for node in model.graph.node
        if node.op_type in ("QuantizeLinear", "DequantizeLinear")
        for name in node.input[1:]
    }


@pytest.mark.parametrize("target", TARGETS)
def test_batch_export_gets_the_batch_1_scales(quantized: dict[tuple[str, int], QuantizeResult], target: str) -> None:
    """Calibrating 3 stacked pairs per feed (the 32 feeds padded to 33) sees the values one pair per feed sees."""
    one, batched = (_scales(quantized[target, n].output) for n in (1, BATCH))
    assert len(one) > 100 and one.keys() == batched.keys()
    for name, value in one.items():
        assert batched[name].dtype == value.dtype and np.array_equal(batched[name], value), name


@pytest.mark.parametrize("target", TARGETS)
def test_batch_int8_model_keeps_its_batch_and_predicts_each_row_as_batch_1(
    quantized: dict[tuple[str, int], QuantizeResult], calib: Path, target: str
) -> None:
    result = quantized[target, BATCH]
    assert result.written and result.metadata["fume_edge.batch"] == str(BATCH)
    with OnnxBackend(result.output, device="cpu") as backend:  # the runtime's contract check: N rows in and out
        assert backend.contract.batch == BATCH
    cset = load_calibration(calib)
    _, held = cset.split(HOLDOUT)
    items = [cset.item(i, case) for i in held for case in ("both", "co2 only")][:7]  # 7 = 3 + 3 + a padded 1
    one = run(cpu_session(quantized[target, 1].output), items)
    rows = run(cpu_session(result.output), items)
    assert len(rows) == len(items)
    for k, (want, got) in enumerate(zip(one, rows, strict=True)):
        assert want.keys() == got.keys() and got["ph_logits"].shape == want["ph_logits"].shape == (1, 3)
        np.testing.assert_allclose(got["ph_logits"], want["ph_logits"], rtol=1e-5, atol=1e-5, err_msg=str(k))
        for name in ("co2_seg", "ch4_seg"):
            assert np.array_equal(got[name], want[name]), (k, name)
    # the report reads every row: it judges the same 12 held-back inputs the batch-1 report does, with equal verdicts
    assert result.report.samples == quantized[target, 1].report.samples == 12
    assert result.report.to_dict() == quantized[target, 1].report.to_dict()


@pytest.mark.slow
def test_bench_loop_for_stations_runs_the_quantized_batch_export(
    imported_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bench --stations 3`'s INT8 loop model: the batch 1..3 export quantized for the CPU, one call for 3 stations
    (a short tick runs only its pairs: benchmarks/README.md, "Short ticks")."""
    from rich.console import Console

    from fume_edge.bench.backends import Models
    from fume_edge.bench.commands import batched_model
    from fume_edge.bench.int8 import is_quantized

    monkeypatch.setenv("FUME_EDGE_CACHE", str(tmp_path / "cache"))
    one = export_onnx(imported_checkpoint, tmp_path / "b1.onnx").path
    loop = batched_model(one, "onnxruntime-int8", 3, Models(imported_checkpoint, one), Console(quiet=True))
    assert is_quantized(loop) and loop.parent == tmp_path / "cache" / "bench"
    with OnnxBackend(loop, device="cpu") as backend:
        assert (backend.contract.batch, backend.contract.dynamic_batch) == (3, True)


def test_sensitivity_search_on_the_batch_export_ranks_as_batch_1(exports: dict[int, Path], calib: Path) -> None:
    """The per-node search feeds N pairs a call too, and measures the same noise as on the batch-1 export."""
    options = QuantizeOptions(sensitivity=True, sensitivity_ops=("Gemm",), force=True)
    one, batched = (quantize_onnx(exports[n], calib, exports[n].with_suffix(".s.onnx"), options) for n in (1, BATCH))
    assert one.sensitivity is not None and batched.sensitivity is not None
    assert [r.name for r in batched.sensitivity.ranking] == [r.name for r in one.sensitivity.ranking]
    # atol: a noise/signal under 1e-9 (amplitude ~3e-5) is the FP32 kernels' rounding at batch 3 vs 1, not INT8
    np.testing.assert_allclose(
        [r.error for r in batched.sensitivity.ranking], [r.error for r in one.sensitivity.ranking], rtol=1e-4, atol=1e-9
    )


def test_report_on_a_validation_csv_judges_every_row_once(exports: dict[int, Path], calib: Path, dataset: Path) -> None:
    """`--val` streams the CSV's samples: a batch-3 report runs them 3 a call, the last call padded, none twice."""
    val = dataset / "paired_val.csv"
    reports = [
        quantize_onnx(exports[n], calib, exports[n].with_suffix(".val.onnx"), QuantizeOptions("cpu"), val).report
        for n in (1, BATCH)
    ]
    rows = sum(1 for _ in val.open()) - 1
    assert reports[0].samples == reports[1].samples == rows and rows % BATCH
    assert reports[1].to_dict() == reports[0].to_dict() and reports[1].source == str(val)


@pytest.mark.parametrize("target", TARGETS)
def test_a_dynamic_batch_export_quantizes_to_an_int8_model_of_any_batch(
    imported_checkpoint: Path,
    quantized: dict[tuple[str, int], QuantizeResult],
    calib: Path,
    tmp_path: Path,
    target: str,
) -> None:
    """Its scales are the batch-1 export's, it stays dynamic, and each of 1..N rows predicts as the batch-1 model."""
    dynamic = export_onnx(imported_checkpoint, tmp_path / "d3.onnx", size=SIZE, batch=BATCH, dynamic_batch=True).path
    result = quantize_onnx(dynamic, calib, tmp_path / f"d3.{target}.onnx", QuantizeOptions(target, force=True))
    assert result.written and result.metadata["fume_edge.dynamic_batch"] == "true"
    # the traces name (and so order) their weights differently: every scale and zero point, as a multiset
    one, got = (
        sorted((a.dtype.str, a.shape, a.tobytes()) for a in _scales(path).values())
        for path in (quantized[target, 1].output, result.output)
    )
    assert len(one) > 100 and one == got
    cset = load_calibration(calib)
    _, held = cset.split(HOLDOUT)
    items = [(item.co2, item.ch4, item.modality_mask) for item in (cset.item(i, "both") for i in held[:BATCH])]
    with OnnxBackend(quantized[target, 1].output, device="cpu") as single, OnnxBackend(result.output, "cpu") as backend:
        assert backend.contract.dynamic_batch and all(call_rows(backend, n) == n for n in range(1, BATCH + 1))
        alone = [single.infer(*item) for item in items]
        for n in range(1, BATCH + 1):
            rows = backend.infer_batch(*(np.concatenate(parts) for parts in zip(*items[:n], strict=True)))
            assert len(rows) == n
            for want, row in zip(alone, rows, strict=False):
                np.testing.assert_allclose(row.ph_logits, want.ph_logits, rtol=1e-5, atol=1e-5)
                assert all(np.array_equal(row.seg[gas], want.seg[gas]) for gas in want.seg)
