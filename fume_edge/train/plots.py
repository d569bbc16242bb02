"""PNG plots for a run folder: training curves, the pH confusion matrix, and predicted-vs-true mask overlays.

Uses matplotlib's object API (`Figure`, no pyplot), so plotting never touches global GUI state and works on a
headless edge box or inside a DDP worker.
"""

from __future__ import annotations

import math
from pathlib import Path
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from fume_edge.labels import PH_CLASS_NAMES, SEG_CLASS_NAMES

# RGBA overlay colours per segmentation class: background transparent, tube blue, gas orange.
_SEG_COLOURS = np.array([[0, 0, 0, 0], [0.15, 0.45, 1.0, 0.45], [1.0, 0.55, 0.0, 0.6]], dtype=np.float32)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_curves(history: Sequence[Mapping[str, float]], path: str | Path) -> Path:
    """Loss (train vs val) and the headline validation metrics per epoch, from `metrics.csv` rows."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(11, 4))
    loss_ax, metric_ax = fig.subplots(1, 2)
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        if history and key in history[0]:
            loss_ax.plot(epochs, [row[key] for row in history], marker=".", label=label)
    loss_ax.set(title="loss", xlabel="epoch")
    loss_ax.legend()
    for key in ("val_balanced_accuracy", "val_macro_f1", "val_gas_iou", "val_joint"):
        values = [row.get(key, math.nan) for row in history]
        if not all(math.isnan(v) for v in values):
            metric_ax.plot(epochs, values, marker=".", label=key.removeprefix("val_"))
    metric_ax.set(title="validation", xlabel="epoch", ylim=(0, 1))
    metric_ax.legend(loc="lower right")
    for ax in (loss_ax, metric_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def plot_confusion(cm: np.ndarray, path: str | Path, names: Sequence[str] = PH_CLASS_NAMES) -> Path:
    """Counts with row-normalised shading (recall per true class, what balanced accuracy averages)."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    fig = Figure(figsize=(4.8, 4.2))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    ax.set(
        xticks=range(len(names)),
        yticks=range(len(names)),
        xticklabels=names,
        yticklabels=names,
        xlabel="predicted",
        ylabel="true",
        title="pH confusion matrix",
    )
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    return _save(fig, path)


def overlay(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H,W) frame in [0,1] with class colours blended on top → (H,W,3) RGB in [0,1]."""
    rgb = np.repeat(np.clip(frame, 0.0, 1.0)[..., None], 3, axis=-1)
    colour = _SEG_COLOURS[np.clip(mask, 0, len(_SEG_COLOURS) - 1)]
    alpha = colour[..., 3:]
    return rgb * (1.0 - alpha) + colour[..., :3] * alpha


def plot_overlays(samples: Sequence[Mapping[str, np.ndarray]], path: str | Path) -> Path:
    """One row per sample: for each gas, the frame with the true mask and with the predicted mask.

    Each sample maps `co2`/`ch4` (H,W frames), `co2_true`/`co2_pred`/`ch4_true`/`ch4_pred` (H,W class ids) and
    `co2_present`/`ch4_present` (0-d bool: the sample has that frame), `ph_true` and, from a model with a pH head,
    `ph_pred` (0-d class ids); a gas whose prediction is missing (a model without that head) is left out of the
    columns, and a frame the sample lacks is drawn as "no frame". Each row is labelled with its true and predicted
    pH class, and a key names the mask colours.
    """
    gases = [g for g in ("co2", "ch4") if samples and f"{g}_pred" in samples[0]]
    columns = [(g, kind) for g in gases for kind in ("true", "pred")]
    fig = Figure(figsize=(3.2 * max(len(columns), 1), 2.5 * max(len(samples), 1) + 0.4))
    axes = np.atleast_2d(fig.subplots(max(len(samples), 1), max(len(columns), 1), squeeze=False))
    for row, sample in enumerate(samples):
        for col, (gas, kind) in enumerate(columns):
            ax = axes[row, col]
            if sample[f"{gas}_present"]:
                ax.imshow(overlay(sample[gas], sample[f"{gas}_{kind}"]))
            else:
                ax.text(0.5, 0.5, "no frame", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"{gas.upper()} {kind}")
        if columns:
            axes[row, 0].set_ylabel(ph_label(sample), fontsize=8)
    fig.legend(
        handles=[Patch(color=_SEG_COLOURS[i, :3].tolist(), label=name) for i, name in enumerate(SEG_CLASS_NAMES) if i],
        loc="lower center",
        ncol=len(SEG_CLASS_NAMES),
        frameon=False,
        title="mask colours",
    )
    return _save(fig, path)


def ph_label(sample: Mapping[str, np.ndarray]) -> str:
    """ "pH true Acidotic / pred Healthy" for a row of overlays (true only for a model without a pH head)."""
    label = f"pH true {PH_CLASS_NAMES[int(sample['ph_true'])]}"
    if "ph_pred" in sample:
        label += f"\npred {PH_CLASS_NAMES[int(sample['ph_pred'])]}"
    return label


def plot_modalities(by_case: Mapping[str, Mapping[str, float]], metrics: Sequence[str], path: str | Path) -> Path:
    """Grouped bars, percent points: each headline metric per modality case (both cameras, one masked out)."""
    cases = list(by_case)
    shown = [m for m in metrics if any(not math.isnan(by_case[c].get(m, math.nan)) for c in cases)]
    fig = Figure(figsize=(max(6.0, 1.2 * len(shown) + 2), 4))
    ax = fig.subplots()
    width = 0.8 / max(1, len(cases))
    for i, case in enumerate(cases):
        values = [100 * by_case[case].get(m, math.nan) for m in shown]
        ax.bar(np.arange(len(shown)) + (i - (len(cases) - 1) / 2) * width, np.nan_to_num(values), width, label=case)
    ax.set(xticks=range(len(shown)), xticklabels=shown, ylabel="%", ylim=(0, 100), title="metrics by modality")
    ax.tick_params(axis="x", labelrotation=20)
    ax.legend(loc="lower right")
    return _save(fig, path)
