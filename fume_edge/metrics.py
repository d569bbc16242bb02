"""Split-level metrics for the pH head and the gas masks, defined exactly as scikit-learn defines them.

Everything is computed from confusion matrices accumulated over a whole split, so a 640×480 validation set never
has to be held in memory and batch boundaries cannot change the result. A class with neither true nor predicted
examples has no defined IoU/Dice/F1: it is NaN and left out of the macro means (scikit-learn's
`zero_division=np.nan`; for IoU, `jaccard_score` with `labels` = the classes seen). Balanced accuracy averages
recall over the classes present in the truth, as sklearn does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fume_edge.labels import GAS_CLASS_ID, GASES, PH_CLASS_NAMES, SEG_CLASS_NAMES


def confusion(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts; rows are true classes, columns predicted (sklearn's layout)."""
    true = np.asarray(true, dtype=np.int64).ravel()
    pred = np.asarray(pred, dtype=np.int64).ravel()
    return np.bincount(true * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def labels_at(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Class-id masks (…,h,w) scaled up by nearest neighbour to (…,H,W), H and W whole multiples of h and w: the
    masks of a `--mask-scale N` export compared at (or drawn at) full size. Same-size masks come back as they are."""
    height, width = shape[-2:]
    h, w = labels.shape[-2:]
    if (h, w) == (height, width):
        return labels
    if height % h or width % w:
        raise ValueError(f"masks {h}x{w} do not scale to {height}x{width} by a whole factor")
    return labels.repeat(height // h, axis=-2).repeat(width // w, axis=-1)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den elementwise with NaN where den is 0."""
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else math.nan


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """TP / (TP + FP + FN) per class (sklearn `jaccard_score(average=None)`)."""
    tp = np.diag(cm)
    return _ratio(tp, cm.sum(0) + cm.sum(1) - tp)


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """2TP / (2TP + FP + FN) per class: F1, which on masks is the Dice coefficient (sklearn `f1_score`)."""
    tp = np.diag(cm)
    return _ratio(2 * tp, cm.sum(0) + cm.sum(1))


def accuracy(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm) / total) if total else math.nan


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes that occur in the truth (sklearn `balanced_accuracy_score`)."""
    return _nanmean(_ratio(np.diag(cm), cm.sum(1)))


def weighted_f1(cm: np.ndarray) -> float:
    """Per-class F1 weighted by true support (sklearn `f1_score(average="weighted")`)."""
    f1 = per_class_f1(cm)
    support = cm.sum(1).astype(np.float64)
    keep = ~np.isnan(f1)
    return float((f1[keep] * support[keep]).sum() / support[keep].sum()) if support[keep].sum() else math.nan


def cohen_kappa(cm: np.ndarray) -> float:
    """Agreement beyond chance (sklearn `cohen_kappa_score`, unweighted)."""
    cm = cm.astype(np.float64)
    total = cm.sum()
    if not total:
        return math.nan
    expected = np.outer(cm.sum(1), cm.sum(0)) / total
    off = 1.0 - np.eye(len(cm))
    den = (off * expected).sum()
    return float(1.0 - (off * cm).sum() / den) if den else math.nan


def classification_metrics(cm: np.ndarray, names: tuple[str, ...] = PH_CLASS_NAMES) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro/weighted/per-class F1 and Cohen's kappa from a pH confusion matrix."""
    f1 = per_class_f1(cm)
    out = {
        "accuracy": accuracy(cm),
        "balanced_accuracy": balanced_accuracy(cm),
        "macro_f1": _nanmean(f1),
        "weighted_f1": weighted_f1(cm),
        "kappa": cohen_kappa(cm),
    }
    out.update({f"f1_{name.lower()}": float(v) for name, v in zip(names, f1, strict=True)})
    return out


def segmentation_metrics(cm: np.ndarray, prefix: str, names: tuple[str, ...] = SEG_CLASS_NAMES) -> dict[str, float]:
    """Per-class IoU and Dice, mIoU and pixel accuracy for one gas's mask, keys prefixed by the gas.

    `{gas}_iou_gas` is that gas's headline gas IoU.
    """
    iou = per_class_iou(cm)
    dice = per_class_f1(cm)
    out = {f"{prefix}_miou": _nanmean(iou), f"{prefix}_pixel_acc": accuracy(cm)}
    out.update({f"{prefix}_iou_{name.lower()}": float(v) for name, v in zip(names, iou, strict=True)})
    out.update({f"{prefix}_dice_{name.lower()}": float(v) for name, v in zip(names, dice, strict=True)})
    return out


@dataclass
class MetricAccumulator:
    """Confusion matrices over a split: one for pH, one per gas mask. Feed it class ids, batch by batch."""

    num_classes: int = len(PH_CLASS_NAMES)
    num_seg_classes: int = len(SEG_CLASS_NAMES)
    ph: np.ndarray | None = None
    seg: dict[str, np.ndarray] = field(default_factory=dict)

    def update_ph(self, true: np.ndarray, pred: np.ndarray) -> None:
        cm = confusion(true, pred, self.num_classes)
        self.ph = cm if self.ph is None else self.ph + cm

    def update_seg(self, gas: str, true: np.ndarray, pred: np.ndarray) -> None:
        """Add masks (…,H,W) of one gas; pass only the samples where that modality is present."""
        cm = confusion(true, labels_at(np.asarray(pred), np.shape(true)), self.num_seg_classes)
        self.seg[gas] = self.seg[gas] + cm if gas in self.seg else cm

    def as_array(self) -> np.ndarray:
        """Every count in a fixed layout (pH, then each gas; zeros where unseen), for summing over DDP ranks."""
        blocks = [self.ph if self.ph is not None else np.zeros((self.num_classes,) * 2, np.int64)]
        blocks += [self.seg.get(gas, np.zeros((self.num_seg_classes,) * 2, np.int64)) for gas in GASES]
        return np.concatenate([b.ravel() for b in blocks]).astype(np.int64)

    def load_array(self, counts: np.ndarray) -> None:
        """Inverse of `as_array`; a head or gas with no counts at all stays unseen."""
        n_ph = self.num_classes**2
        ph = counts[:n_ph].reshape(self.num_classes, self.num_classes)
        self.ph = ph if ph.any() else None
        rest = counts[n_ph:].reshape(len(GASES), self.num_seg_classes, self.num_seg_classes)
        self.seg = {gas: cm for gas, cm in zip(GASES, rest, strict=True) if cm.any()}

    def compute(self) -> dict[str, float]:
        """All metrics for the heads seen, plus `gas_iou` (mean over gases) and `joint` (see `joint_score`)."""
        out: dict[str, float] = {}
        if self.ph is not None:
            out.update(classification_metrics(self.ph))
        for gas in GASES:
            if gas in self.seg:
                out.update(segmentation_metrics(self.seg[gas], gas))
        gas_class = SEG_CLASS_NAMES[GAS_CLASS_ID].lower()
        gas_ious = np.array([out[f"{g}_iou_{gas_class}"] for g in GASES if f"{g}_iou_{gas_class}" in out])
        if gas_ious.size:
            out["gas_iou"] = _nanmean(gas_ious)
        out["joint"] = joint_score(out)
        return out


def joint_score(metrics: dict[str, float]) -> float:
    """One number to rank models with any set of heads: mean of balanced accuracy and gas IoU, where present.

    Both are the acceptance criteria of the default model (each ≥ 0.85), so the joint score rewards the model
    that is good at both rather than excellent at one.
    """
    parts = np.array([metrics[k] for k in ("balanced_accuracy", "gas_iou") if k in metrics], dtype=np.float64)
    return _nanmean(parts) if parts.size else math.nan
