"""The five baselines: registered, ≤ 3M parameters, the shared output contract, modality masking, ONNX parity."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

from fume_edge.labels import CH4_SEG_LOGITS, CO2_SEG_LOGITS, PH_LOGITS
from fume_edge.model.registry import count_parameters, create_model, list_models

HEADS = {
    "seg_only": {CO2_SEG_LOGITS, CH4_SEG_LOGITS},
    "cls_only": {PH_LOGITS},
    "gas_aware": {PH_LOGITS, CO2_SEG_LOGITS, CH4_SEG_LOGITS},
    "early_fusion": {PH_LOGITS, CO2_SEG_LOGITS, CH4_SEG_LOGITS},
    "single_stream": {PH_LOGITS, CO2_SEG_LOGITS, CH4_SEG_LOGITS},
}
H, W = 96, 128


def _inputs(batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, H, W, generator=g), torch.rand(batch, 1, H, W, generator=g), torch.ones(batch, 2)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_baseline_contract(name: str) -> None:
    assert name in list_models()
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert count_parameters(model) <= 3_000_000
    out = model(*_inputs())
    assert set(out) == HEADS[name]
    if PH_LOGITS in out:
        assert out[PH_LOGITS].shape == (2, 3)
    for key in HEADS[name] - {PH_LOGITS}:
        assert out[key].shape == (2, 3, H, W)


@pytest.mark.parametrize("name", sorted(n for n, heads in HEADS.items() if PH_LOGITS in heads))
def test_dropped_modality_frame_does_not_reach_ph(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    co2, ch4, _ = _inputs(1)
    only_co2 = torch.tensor([[1.0, 0.0]])
    with torch.no_grad():
        a = model(co2, ch4, only_co2)[PH_LOGITS]
        b = model(co2, torch.rand_like(ch4), only_co2)[PH_LOGITS]
        c = model(co2, ch4, torch.ones(1, 2))[PH_LOGITS]
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 0


@pytest.mark.parametrize("name", sorted(HEADS))
def test_baseline_exports_to_onnx_and_matches(name: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = create_model(name).eval()
    co2, ch4, mask = _inputs(1)
    mask = torch.tensor([[1.0, 0.0]])  # a per-sample blend, not a traced branch: must match for any mask
    with torch.no_grad():
        names = list(model(co2, ch4, mask))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (co2, ch4, mask),
            buffer,
            input_names=["co2", "ch4", "modality_mask"],
            output_names=names,
            opset_version=17,
            dynamo=False,
        )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for trial_mask in (mask, torch.ones(1, 2)):
        feeds = {"co2": co2.numpy(), "ch4": ch4.numpy(), "modality_mask": trial_mask.numpy()}
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
        with torch.no_grad():
            expected = model(co2, ch4, trial_mask)
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value.numpy(), rtol=1e-3, atol=1e-4)
