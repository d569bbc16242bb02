"""One pass over a loader: a training epoch (forward, loss, backward, clip, step) or a scored evaluation.

Kept free of files and printing: the trainer decides what to log, this module only computes. A callback after each
training batch lets the caller drive a progress bar with the live loss.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from fume_edge.labels import CH4_SEG_LOGITS, CO2_SEG_LOGITS, GASES, PH_LOGITS
from fume_edge.train.losses import MultiTaskLoss
from fume_edge.metrics import MetricAccumulator

Batch = Mapping[str, torch.Tensor]
SEG_KEYS = {"co2": CO2_SEG_LOGITS, "ch4": CH4_SEG_LOGITS}


@dataclass
class LossMeter:
    """Sample-weighted running means of the total loss and its parts."""

    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0

    def add(self, total: float, parts: Mapping[str, float], n: int) -> None:
        for key, value in {"loss": total, **parts}.items():
            self.sums[key] = self.sums.get(key, 0.0) + value * n
        self.count += n

    def means(self) -> dict[str, float]:
        return {k: v / self.count for k, v in self.sums.items()} if self.count else {}

    def as_array(self) -> np.ndarray:
        """[count, *sums] in key order, for summing over DDP ranks (every rank has the same keys)."""
        return np.array([self.count, *self.sums.values()], dtype=np.float64)

    def load_array(self, values: np.ndarray) -> None:
        self.count = int(values[0])
        self.sums = dict(zip(self.sums, (float(v) for v in values[1:]), strict=True))


def to_device(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def forward(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    return model(batch["co2"], batch["ch4"], batch["modality_mask"])


def autocast(device: torch.device, enabled: bool) -> torch.autocast | nullcontext[None]:
    """Mixed precision on CUDA only: CPU training stays float32 (and therefore bit-reproducible)."""
    return torch.autocast("cuda", dtype=torch.float16) if enabled and device.type == "cuda" else nullcontext()


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: MultiTaskLoss,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    amp: bool,
    grad_clip: float | None,
    on_batch: Callable[[int, dict[str, float]], None] = lambda step, parts: None,
) -> LossMeter:
    """Train for one pass; returns the epoch's loss and parts, summed over samples."""
    model.train()
    meter = LossMeter()
    for step, raw in enumerate(batches):
        batch = to_device(raw, device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            outputs = forward(model, batch)
        total, parts = loss_fn({k: v.float() for k, v in outputs.items()}, batch)
        scaler.scale(total).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        meter.add(float(total.detach()), parts, int(batch["ph_class"].shape[0]))
        on_batch(step, {"loss": float(total.detach()), **parts})
    return meter


@dataclass
class Evaluation:
    """Loss sums, the confusion matrices, and a few (frame, true, predicted) examples for overlay plots."""

    meter: LossMeter
    accumulator: MetricAccumulator
    examples: list[dict[str, np.ndarray]]


def score_batch(accumulator: MetricAccumulator, outputs: Mapping[str, torch.Tensor], batch: Batch) -> None:
    """Add one batch's predictions to the split's confusion matrices (a gas only where that modality is present)."""
    if PH_LOGITS in outputs:
        accumulator.update_ph(batch["ph_class"].cpu().numpy(), outputs[PH_LOGITS].argmax(1).cpu().numpy())
    present = batch["modality_mask"].cpu().numpy() > 0
    for column, gas in enumerate(GASES):
        key = SEG_KEYS[gas]
        if key in outputs and present[:, column].any():
            keep = present[:, column]
            accumulator.update_seg(
                gas, batch[f"{gas}_mask"].cpu().numpy()[keep], outputs[key].argmax(1).cpu().numpy()[keep]
            )


def _examples(outputs: Mapping[str, torch.Tensor], batch: Batch, limit: int) -> list[dict[str, np.ndarray]]:
    """Up to `limit` samples as arrays for `plots.plot_overlays`."""
    found = []
    for i in range(min(limit, int(batch["ph_class"].shape[0]))):
        sample = {}
        for column, gas in enumerate(GASES):
            sample[gas] = batch[gas][i, 0].cpu().numpy()
            sample[f"{gas}_present"] = batch["modality_mask"][i, column].cpu().numpy() > 0
            sample[f"{gas}_true"] = batch[f"{gas}_mask"][i].cpu().numpy()
            if SEG_KEYS[gas] in outputs:
                sample[f"{gas}_pred"] = outputs[SEG_KEYS[gas]][i].argmax(0).cpu().numpy()
        sample["ph_true"] = batch["ph_class"][i].cpu().numpy()
        if PH_LOGITS in outputs:
            sample["ph_pred"] = outputs[PH_LOGITS][i].argmax().cpu().numpy()
        found.append(sample)
    return found


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: MultiTaskLoss,
    device: torch.device,
    amp: bool,
    keep_examples: int = 0,
) -> Evaluation:
    """Score a split with the model in eval mode."""
    model.eval()
    meter, accumulator = LossMeter(), MetricAccumulator()
    examples: list[dict[str, np.ndarray]] = []
    for raw in batches:
        batch = to_device(raw, device)
        with autocast(device, amp):
            outputs = {k: v.float() for k, v in forward(model, batch).items()}
        total, parts = loss_fn(outputs, batch)
        meter.add(float(total), parts, int(batch["ph_class"].shape[0]))
        score_batch(accumulator, outputs, batch)
        if len(examples) < keep_examples:
            examples += _examples(outputs, batch, keep_examples - len(examples))
    return Evaluation(meter, accumulator, examples)
