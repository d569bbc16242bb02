"""Losses against values worked out by hand, and the multi-task rules (dropped modality, missing heads)."""

from __future__ import annotations

import math

import pytest
import torch

from fume_edge.config import replace
from fume_edge.labels import CH4_SEG_LOGITS, CO2_SEG_LOGITS, PH_LOGITS
from fume_edge.train.config import load_train_config
from fume_edge.train.losses import MultiTaskLoss, dice_loss, focal_loss, seg_loss


def research_loss(**changes: float) -> MultiTaskLoss:
    """The packaged research configuration's loss, with `changes` applied."""
    return MultiTaskLoss(replace(load_train_config().loss, **changes))


def test_focal_loss_hand_computed() -> None:
    # logits (0, ln 3): p = (1/4, 3/4). Target 1: p_t = 3/4 -> (1/4)^2 * -ln(3/4); alpha[1] = 8.
    logits = torch.tensor([[0.0, math.log(3.0)]])
    target = torch.tensor([1])
    expected = 8.0 * 0.25**2 * -math.log(0.75)
    assert focal_loss(logits, target, gamma=2.0, alpha=[1.0, 8.0]).item() == pytest.approx(expected, rel=1e-6)
    # gamma 0, no alpha: cross-entropy
    assert focal_loss(logits, target, gamma=0.0).item() == pytest.approx(-math.log(0.75), rel=1e-6)


def test_focal_loss_sample_weight_drops_samples() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, -5.0]])
    target = torch.tensor([1, 1])
    only_first = focal_loss(logits[:1], target[:1])
    assert focal_loss(logits, target, weight=torch.tensor([1.0, 0.0])).item() == pytest.approx(only_first.item())


def test_dice_loss_hand_computed() -> None:
    # Two pixels, two classes, logits (0, ln 3) at both: p = (1/4, 3/4). Targets: class 0, class 1.
    logits = torch.tensor([0.0, math.log(3.0)]).reshape(1, 2, 1, 1).expand(1, 2, 1, 2).contiguous()
    target = torch.tensor([[[0, 1]]])
    # class 0: inter 1/4, sum p 1/2, sum g 1 -> (0.5 + 1)/(1.5 + 1) = 0.6
    # class 1: inter 3/4, sum p 3/2, sum g 1 -> (1.5 + 1)/(2.5 + 1) = 5/7
    expected = 1.0 - (0.6 + 5.0 / 7.0) / 2.0
    assert dice_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)
    perfect = torch.tensor([[10.0, -10.0], [-10.0, 10.0]]).reshape(1, 2, 1, 2)
    assert dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-4)


def _batch(b: int = 2, h: int = 6, w: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "ph_class": torch.randint(0, 3, (b,), generator=g),
        "co2_mask": torch.randint(0, 3, (b, h, w), generator=g),
        "ch4_mask": torch.randint(0, 3, (b, h, w), generator=g),
        "modality_mask": torch.ones(b, 2),
    }


def _outputs(b: int = 2, h: int = 6, w: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        PH_LOGITS: torch.randn(b, 3, generator=g),
        CO2_SEG_LOGITS: torch.randn(b, 3, h, w, generator=g),
        CH4_SEG_LOGITS: torch.randn(b, 3, h, w, generator=g),
    }


def test_multitask_is_weighted_sum_of_parts() -> None:
    # All logits 0: p = 1/3 for every class. pH target Transitional (alpha 8, gamma 2): 8 (2/3)^2 ln 3.
    # Masks [0, 2] over two pixels: focal (2/3)^2 ln 3 per pixel; dice: classes 0 and 2 (2/3 + 1)/(2/3 + 1 + 1)
    # = 5/8, class 1 (0 + 1)/(2/3 + 0 + 1) = 3/5, so 1 - (5/8 + 3/5 + 5/8)/3 = 23/60.
    mask = torch.tensor([[[0, 2]]])
    batch = {
        "ph_class": torch.tensor([1]),
        "co2_mask": mask,
        "ch4_mask": mask.clone(),
        "modality_mask": torch.ones(1, 2),
    }
    out = {
        PH_LOGITS: torch.zeros(1, 3),
        CO2_SEG_LOGITS: torch.zeros(1, 3, 1, 2),
        CH4_SEG_LOGITS: torch.zeros(1, 3, 1, 2),
    }
    total, parts = research_loss(cls_weight=0.5, seg_weight=2.0)(out, batch)
    ph = 0.5 * 8.0 * (2 / 3) ** 2 * math.log(3.0)
    seg = (2 / 3) ** 2 * math.log(3.0) + 23 / 60
    assert parts == pytest.approx({"ph": ph, "co2_seg": seg, "ch4_seg": seg}, rel=1e-6)
    assert total.item() == pytest.approx(ph + 2.0 * (seg + seg) / 2, rel=1e-6)


def test_dropped_modality_mask_does_not_count() -> None:
    batch, out = _batch(), _outputs()
    batch["modality_mask"] = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # sample 1 has no CH4 frame
    total, parts = research_loss()(out, batch)
    assert parts["ch4_seg"] == pytest.approx(seg_loss(out[CH4_SEG_LOGITS][:1], batch["ch4_mask"][:1]).item(), rel=1e-6)
    # changing the dropped sample's CH4 target changes nothing
    batch["ch4_mask"][1] = 2
    assert research_loss()(out, batch)[0].item() == pytest.approx(total.item(), rel=1e-6)
    # no CH4 anywhere: the seg mean is over CO2 alone
    batch["modality_mask"] = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    total, parts = research_loss()(out, batch)
    assert parts["ch4_seg"] == 0.0
    assert total.item() == pytest.approx(parts["ph"] + parts["co2_seg"], rel=1e-6)


def test_missing_heads_are_skipped_and_gradients_flow() -> None:
    batch, out = _batch(), _outputs()
    seg_only = {k: v.requires_grad_() for k, v in out.items() if k != PH_LOGITS}
    total, parts = research_loss()(seg_only, batch)
    assert set(parts) == {"co2_seg", "ch4_seg"}
    total.backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in seg_only.values())
    cls_only = {PH_LOGITS: out[PH_LOGITS]}
    assert set(research_loss()(cls_only, batch)[1]) == {"ph"}
