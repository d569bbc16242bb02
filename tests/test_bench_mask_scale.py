"""`export --mask-scale N`: seg masks at 1/N, parity with PyTorch at that scale, and the study's graph rewrite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from fume_edge.bench.mask_scale import gas_iou, rescale_masks
from fume_edge.deploy.onnx.commands import export_and_check
from fume_edge.deploy.onnx.onnx_export import export_onnx
from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.base import load_backend
from fume_edge.runtime.pre import modality_mask
from fume_edge.metrics import labels_at

SIZE = (128, 96)


def _inputs(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = [rng.random((1, 1, SIZE[1], SIZE[0]), dtype=np.float32) for _ in range(2)]
    return frames[0], frames[1], modality_mask(True, True)


def test_mask_scale_export_matches_the_rewrite_and_torch(imported_checkpoint: Path, tmp_path: Path) -> None:
    job = export_and_check(imported_checkpoint, tmp_path / "s2.onnx", size=SIZE, mask_scale=2, check_count=2)
    assert job.parity.passed, job.parity.failures  # PyTorch at the same scale agrees
    full = export_onnx(imported_checkpoint, tmp_path / "s1.onnx", size=SIZE).path
    onnx.save(rescale_masks(onnx.load(str(full)), 2), tmp_path / "rewritten.onnx")
    with (
        load_backend(tmp_path / "s2.onnx", device="cpu") as exported,
        load_backend(tmp_path / "rewritten.onnx", device="cpu") as rewritten,
        load_backend(full, device="cpu") as exact,
    ):
        assert exported.metadata["fume_edge.mask_scale"] == "2"
        assert "fume_edge.mask_scale" not in exact.metadata  # the default graph is unchanged
        for seed in range(3):
            a, b, c = (backend.infer(*_inputs(seed)) for backend in (exported, rewritten, exact))
            assert a.seg["co2"].shape == (SIZE[1] // 2, SIZE[0] // 2) and c.seg["co2"].shape == (SIZE[1], SIZE[0])
            np.testing.assert_array_equal(a.seg["co2"], b.seg["co2"])
            np.testing.assert_array_equal(a.seg["ch4"], b.seg["ch4"])
            np.testing.assert_allclose(a.ph_logits, c.ph_logits, atol=1e-5)  # the pH head is untouched
            assert labels_at(a.seg["co2"], c.seg["co2"].shape).shape == c.seg["co2"].shape


def test_mask_scale_must_be_a_power_of_two(imported_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(FumeEdgeError, match="--mask-scale 3"):
        export_onnx(imported_checkpoint, tmp_path / "x.onnx", size=SIZE, mask_scale=3)


def test_gas_iou_by_hand() -> None:
    a = np.array([[2, 2, 0], [1, 0, 0]])
    b = np.array([[2, 0, 0], [2, 0, 0]])
    assert gas_iou(a, b) == pytest.approx(1 / 3)
    assert gas_iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    np.testing.assert_array_equal(labels_at(np.array([[1, 2]], np.int32), (2, 4)), [[1, 1, 2, 2], [1, 1, 2, 2]])
    with pytest.raises(ValueError, match="whole factor"):
        labels_at(np.zeros((3, 3)), (4, 4))
