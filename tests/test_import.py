"""`fume-edge import`: the research fixture reproduced exactly, separate encoders, and one-line refusals."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fume_edge.model.checkpoint import load_checkpoint, save_checkpoint
from fume_edge.deploy.upstream_import import import_research_checkpoint
from fume_edge.errors import FumeEdgeError
from fume_edge.model.registry import create_model
from fume_edge.runtime.torch_backend import TorchBackend

CASES = ["both", "co2_only", "ch4_only"]
TOL = 1e-4


def assert_labels_equal_where_decided(labels: np.ndarray, expected: np.ndarray, logits: np.ndarray) -> None:
    """Labels must agree wherever the top two logits differ by more than the tolerance."""
    top2 = np.sort(logits, axis=1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) > TOL
    assert np.array_equal(labels[decided], expected[decided])


@pytest.fixture(scope="module")
def fixture_io(upstream_dir: Path) -> dict[str, np.ndarray]:
    with np.load(upstream_dir / "upstream_fume_fastscnn_shared_io.npz") as data:
        return dict(data)


def test_import_infers_shared_encoder_and_metadata(upstream_dir: Path) -> None:
    result = import_research_checkpoint(upstream_dir / "upstream_fume_fastscnn_shared.pth")
    ckpt = result.checkpoint
    assert ckpt.arch_kwargs == {"num_classes": 3, "num_seg_classes": 3, "shared_encoder": True}
    assert ckpt.class_names == ["Healthy", "Transitional", "Acidotic"]
    assert ckpt.input_size == (640, 480)
    assert result.source_epoch == 37 and result.parameters == 1_656_236
    assert len(ckpt.provenance["source_sha256"]) == 64


@pytest.mark.parametrize("case", CASES)
def test_imported_model_reproduces_research_outputs(imported_checkpoint: Path, fixture_io: dict, case: str) -> None:
    model = load_checkpoint(imported_checkpoint).build_model()
    inputs = [torch.from_numpy(fixture_io[f"{case}_{k}"]) for k in ("co2", "ch4", "modality_mask")]
    with torch.no_grad():
        out = {k: v.numpy() for k, v in model(*inputs).items()}
    np.testing.assert_allclose(out["ph_logits"], fixture_io[f"{case}_cls_logits"], atol=TOL, rtol=0)
    for gas in ("co2", "ch4"):
        logits = out[f"{gas}_seg_logits"]
        if case == "both":
            np.testing.assert_allclose(logits, fixture_io[f"both_{gas}_seg_logits"], atol=TOL, rtol=0)
        assert_labels_equal_where_decided(logits.argmax(1), fixture_io[f"{case}_{gas}_labels"], logits)


def test_torch_backend_prediction_matches_fixture(imported_checkpoint: Path, fixture_io: dict) -> None:
    with TorchBackend(imported_checkpoint, device="cpu") as backend:
        pred = backend.infer(fixture_io["both_co2"], fixture_io["both_ch4"], fixture_io["both_modality_mask"])
    np.testing.assert_allclose(pred.ph_logits, fixture_io["both_cls_logits"][0], atol=TOL, rtol=0)
    assert pred.seg["co2"].shape == (480, 640) and pred.seg["co2"].dtype == np.int32
    assert_labels_equal_where_decided(
        pred.seg["ch4"][None], fixture_io["both_ch4_labels"], fixture_io["both_ch4_seg_logits"]
    )
    assert 0.0 <= pred.gas_area["co2"] <= 1.0


def _random_model(shared: bool, seed: int = 1) -> torch.nn.Module:
    model = create_model("fume_fastscnn", shared_encoder=shared)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.dtype.is_floating_point:
                scale = (
                    torch.rand(tensor.shape, generator=gen) + 0.5
                    if "running_var" in name
                    else torch.randn(tensor.shape, generator=gen) * 0.2
                )
                tensor.copy_(scale)
    return model.eval()


@pytest.mark.parametrize("wrap", ["model_state_dict", "state_dict", "bare", "dataparallel"])
def test_separate_encoder_round_trip(tmp_path: Path, wrap: str) -> None:
    model = _random_model(shared=False)
    state = model.state_dict()
    if wrap == "dataparallel":
        obj: object = {"model_state_dict": {f"module.{k}": v for k, v in state.items()}, "optimizer_state_dict": {}}
    elif wrap == "bare":
        obj = state
    else:
        obj = {wrap: state, "epoch": 3, "best_metric": np.float64(0.5), "scheduler_state_dict": {"last_epoch": 3}}
    source = tmp_path / "research.pth"
    torch.save(obj, source)

    result = import_research_checkpoint(source)
    assert result.checkpoint.arch_kwargs["shared_encoder"] is False
    imported = load_checkpoint(save_checkpoint(result.checkpoint, tmp_path / "out.pt")).build_model()
    co2, ch4, mask = torch.rand(1, 1, 96, 128), torch.rand(1, 1, 96, 128), torch.ones(1, 2)
    with torch.no_grad():
        expected, got = model(co2, ch4, mask), imported(co2, ch4, mask)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6)


class NotWeights:
    """Stands for any arbitrary object a malicious or careless pickle might hold."""


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.pth"
    text.write_text("this is not a checkpoint")
    good = tmp_path / "good.pth"
    torch.save({"model_state_dict": _random_model(shared=True).state_dict()}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    other = tmp_path / "resnet.pth"
    torch.save(
        {"state_dict": torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8)).state_dict()}, other
    )
    wrong_shape = tmp_path / "wrong_shape.pth"
    state = dict(_random_model(shared=True).state_dict())
    state["fusion.cross_att.query_conv.weight"] = torch.zeros(32, 128, 1, 1)
    torch.save(state, wrong_shape)
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as fh:
        torch.save({"model_state_dict": {}, "payload": NotWeights()}, fh, pickle_module=pickle)
    return {
        "text": (text, "not a PyTorch checkpoint"),
        "truncated": (truncated, "truncated or corrupt"),
        "other_architecture": (other, "missing key"),
        "wrong_shape": (wrong_shape, "fusion.cross_att.query_conv.weight has shape"),
        "evil": (evil, "refused"),
        "missing": (tmp_path / "nope.pth", "file not found"),
    }


@pytest.mark.parametrize("kind", ["text", "truncated", "other_architecture", "wrong_shape", "evil", "missing"])
def test_bad_checkpoints_give_one_clear_error(tmp_path: Path, kind: str) -> None:
    path, message = _bad_files(tmp_path)[kind]
    with pytest.raises(FumeEdgeError, match=message) as info:
        import_research_checkpoint(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_cli_import_and_info_end_to_end(tmp_path: Path, upstream_dir: Path) -> None:
    out = tmp_path / "imported.pt"
    cli = [sys.executable, "-m", "fume_edge"]
    done = subprocess.run(
        [*cli, "import", str(upstream_dir / "upstream_fume_fastscnn_shared.pth"), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "1,656,236" in done.stdout and out.is_file()
    info = subprocess.run([*cli, "info", str(out)], capture_output=True, text=True)
    assert info.returncode == 0 and "GFLOPs" in info.stdout


def test_cli_bad_file_is_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00garbage")
    done = subprocess.run([sys.executable, "-m", "fume_edge", "import", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0
    assert "bad.pth" in done.stderr
