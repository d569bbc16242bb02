"""Training losses: focal loss (pH head and gas masks), soft dice, and the FUME multi-task combination.

Focal loss keeps the rare Transitional pH class (≈2.6 % of frames) and the small gas plumes from being drowned by
easy majority examples; dice adds a region-overlap term that does not care how few pixels a plume covers. A
modality dropped for a sample (modality dropout, or a missing camera) has no image, so its mask must not count:
every term takes a per-sample weight and averages over the samples that are present.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from fume_edge.labels import CH4_SEG_LOGITS, CO2_SEG_LOGITS, PH_LOGITS
from fume_edge.train.config import LossSettings

_EPS = 1e-6


def _sample_weights(batch: int, weight: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Per-sample weights (B,), all ones when none are given."""
    if weight is None:
        return torch.ones(batch, dtype=like.dtype, device=like.device)
    return weight.to(dtype=like.dtype, device=like.device).reshape(batch)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: Sequence[float] | torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-class focal loss  −α_t (1 − p_t)^γ log p_t, averaged over the elements of the present samples.

    `logits` is (B,C) or (B,C,H,W) and `target` (B,) or (B,H,W) class ids; `alpha` weighs each class; `weight`
    (B,) weighs each sample (0 drops it). With γ = 0 and no α this is cross-entropy.
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    log_pt = log_p.gather(1, target.long().unsqueeze(1)).squeeze(1)
    loss = -((1.0 - log_pt.exp()).clamp(min=0.0) ** gamma) * log_pt
    if alpha is not None:
        alpha_t = torch.as_tensor(alpha, dtype=loss.dtype, device=loss.device)[target.long()]
        loss = loss * alpha_t
    per_sample = loss.reshape(loss.shape[0], -1).mean(dim=1)
    w = _sample_weights(loss.shape[0], weight, per_sample)
    return (per_sample * w).sum() / w.sum().clamp(min=_EPS)


def dice_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, smooth: float = 1.0
) -> torch.Tensor:
    """Soft dice loss 1 − mean over classes of (2Σpg + s)/(Σp + Σg + s), summed over the present samples' pixels.

    Pooling the sums over the batch (rather than per image) keeps a class absent from one image, such as gas in a
    clean frame, from producing a meaningless 0/0 dice for that image.
    """
    probs = F.softmax(logits.float(), dim=1)
    onehot = F.one_hot(target.long(), probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    w = _sample_weights(probs.shape[0], weight, probs).reshape(-1, 1, 1, 1)
    dims = (0, 2, 3)
    intersection = (probs * onehot * w).sum(dims)
    total = (probs * w).sum(dims) + (onehot * w).sum(dims)
    dice = (2.0 * intersection + smooth) / (total + smooth)
    return 1.0 - dice.mean()


def seg_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: Sequence[float] | None = None,
    weight: torch.Tensor | None = None,
    dice_weight: float = 1.0,
) -> torch.Tensor:
    """Focal + dice for one gas mask."""
    return focal_loss(logits, target, gamma, alpha, weight) + dice_weight * dice_loss(logits, target, weight)


@dataclass(frozen=True)
class MultiTaskLoss:
    """The FUME objective: w_cls · focal(pH) + w_seg · mean over present gases of (focal + dice)(mask).

    Heads a model lacks (baselines) are skipped, so every registered model trains with the same loss object.
    `settings` is the `loss` section of `configs/train.yaml`, where the research values live.
    """

    settings: LossSettings

    def __call__(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its detached parts (`ph`, `co2_seg`, `ch4_seg`) for logging.

        `batch` holds `ph_class` (B,), `co2_mask`/`ch4_mask` (B,H,W) and `modality_mask` (B,2).
        """
        s = self.settings
        parts: dict[str, torch.Tensor] = {}
        if PH_LOGITS in outputs:
            parts["ph"] = s.cls_weight * focal_loss(outputs[PH_LOGITS], batch["ph_class"], s.ph_gamma, s.ph_alpha)
        seg_terms, gases_present = [], []
        for column, (key, mask_key) in enumerate(((CO2_SEG_LOGITS, "co2_mask"), (CH4_SEG_LOGITS, "ch4_mask"))):
            if key not in outputs:
                continue
            present = batch["modality_mask"][:, column]
            term = seg_loss(outputs[key], batch[mask_key], s.seg_gamma, s.seg_alpha, present, s.dice_weight)
            parts[key.removesuffix("_logits")] = term  # exactly 0 when no sample has this gas
            seg_terms.append(term)
            gases_present.append((present > 0).any().float())
        total = parts["ph"] if "ph" in parts else torch.zeros((), device=batch["ph_class"].device)
        if seg_terms:
            mean_seg = torch.stack(seg_terms).sum() / torch.stack(gases_present).sum().clamp(min=1.0)
            total = total + s.seg_weight * mean_seg
        return total, {name: float(value.detach()) for name, value in parts.items()}
