"""FUME-FastSCNN: parameter budget, export-safe pooling equal to torch's, and a static 640×480 ONNX export."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from fume_edge.model.pooling import adaptive_avg_pool2d, adaptive_bin_edges
from fume_edge.model.registry import count_parameters, create_model, list_models


def test_parameter_counts_match_research_and_stay_under_budget() -> None:
    shared = count_parameters(create_model("fume_fastscnn", shared_encoder=True))
    separate = count_parameters(create_model("fume_fastscnn", shared_encoder=False))
    assert shared == pytest.approx(1.66e6, rel=0.01)
    assert separate == pytest.approx(2.73e6, rel=0.01)
    assert shared <= 3_000_000 and separate <= 3_000_000


def test_shared_encoder_is_one_module_with_both_prefixes() -> None:
    model = create_model("fume_fastscnn", shared_encoder=True)
    assert model.co2_encoder is model.ch4_encoder
    keys = model.state_dict().keys()
    assert any(k.startswith("co2_encoder.") for k in keys) and any(k.startswith("ch4_encoder.") for k in keys)


@pytest.mark.parametrize("height,width", [(15, 20), (3, 4), (7, 5), (6, 6), (1, 1), (30, 40), (13, 17), (2, 9)])
@pytest.mark.parametrize("bins", [1, 2, 3, 6])
def test_adaptive_pool_equals_torch(height: int, width: int, bins: int) -> None:
    x = torch.randn(2, 5, height, width)
    expected = F.adaptive_avg_pool2d(x, bins)
    torch.testing.assert_close(adaptive_avg_pool2d(x, bins), expected, rtol=1e-5, atol=1e-6)


def test_bin_edges_follow_torch_formula() -> None:
    assert adaptive_bin_edges(20, 6) == [(0, 4), (3, 7), (6, 10), (10, 14), (13, 17), (16, 20)]
    assert adaptive_bin_edges(15, 6) == [(0, 3), (2, 5), (5, 8), (7, 10), (10, 13), (12, 15)]


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights, BN statistics and attention gammas so that every branch changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.dtype.is_floating_point:
                values = (
                    torch.rand(tensor.shape, generator=gen) * 0.5 + 0.5
                    if "running_var" in name
                    else torch.randn(tensor.shape, generator=gen) * 0.1
                )
                tensor.copy_(values)
    return model.eval()


def test_cross_attention_blend_matches_a_branch_per_sample() -> None:
    """The per-sample blend gives each sample what the research code's `if both present` gives it alone."""
    model = _randomise(create_model("fume_fastscnn"))
    co2, ch4 = torch.rand(3, 1, 96, 128), torch.rand(3, 1, 96, 128)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    with torch.no_grad():
        batched = model(co2, ch4, mask)["ph_logits"]
        singles = torch.cat([model(co2[i : i + 1], ch4[i : i + 1], mask[i : i + 1])["ph_logits"] for i in range(3)])
        saved = model.fusion.cross_att.gamma.clone()
        model.fusion.cross_att.gamma.zero_()
        no_cross = model(co2[1:], ch4[1:], mask[1:])["ph_logits"]
        model.fusion.cross_att.gamma.copy_(saved)
    torch.testing.assert_close(batched, singles, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batched[1:], no_cross, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["fume_fastscnn"])
def test_torch_onnx_export_succeeds_at_640x480(name: str) -> None:
    pytest.importorskip("onnx")
    model = create_model(name).eval()
    frame = torch.rand(1, 1, 480, 640)
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (frame, frame, torch.ones(1, 2)),
        buffer,
        dynamo=False,
        opset_version=17,
        input_names=["co2", "ch4", "modality_mask"],
    )
    import onnx

    graph = onnx.load_from_string(buffer.getvalue()).graph
    ops = {node.op_type for node in graph.node}
    # export-safe: no data-dependent branch, and no op the exporter could not map (an ATen fallback, another domain)
    assert not {"If", "Loop", "ATen"} & ops and {node.domain for node in graph.node} <= {"", "ai.onnx"}
    assert "MatMul" in ops and "ReduceMean" in ops  # pyramid pooling: averaging matrices, and a mean for bin 1
    assert [i.name for i in graph.input][:3] == ["co2", "ch4", "modality_mask"]


def test_registry_lists_main_model_and_rejects_unknown() -> None:
    from fume_edge.errors import FumeEdgeError

    assert "fume_fastscnn" in list_models()
    with pytest.raises(FumeEdgeError, match="unknown model"):
        create_model("no_such_model")
