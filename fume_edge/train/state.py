"""What a run must remember to continue exactly: training progress, RNG streams, and the checkpoint files.

A resumed CPU run reproduces the unbroken run's losses bit for bit: the model, optimiser, scheduler and AMP scaler
states, the epoch, the best monitored value, the early-stop counter and every RNG stream (Python, NumPy, torch CPU
and CUDA) are saved at the end of each epoch and put back before the next one starts. All of it is tensors and
plain containers, so `model.checkpoint` loads it with `weights_only=True` like any other checkpoint.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from fume_edge.model.checkpoint import Checkpoint
from fume_edge.errors import FumeEdgeError
from fume_edge.train.config import TrainConfig


@dataclass
class Progress:
    """Counters the epoch loop advances; saved with every `last.pt`."""

    epoch: int = 0  # epochs completed
    best: float = -math.inf  # best value of `config.monitor` so far
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since `best` last improved (early stopping)

    def observe(self, value: float) -> bool:
        """Record this epoch's monitored value; True when it is a new best (NaN never is)."""
        if not math.isnan(value) and value > self.best:
            self.best, self.best_epoch, self.bad_epochs = value, self.epoch, 0
            return True
        self.bad_epochs += 1
        return False


def rng_state() -> dict[str, Any]:
    """Every RNG stream training draws from. NumPy's state is kept as plain values (weights-only loadable)."""
    # The global RandomState is always MT19937, whose state is the legacy tuple (numpy types the dict form too).
    kind, keys, pos, has_gauss, gauss = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    python_state = random.getstate()
    state: dict[str, Any] = {
        "python": [python_state[0], list(python_state[1]), python_state[2]],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside a DistributedDataParallel wrapper (its state-dict keys have no `module.` prefix)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict on the CPU with shared tensors kept shared (a shared encoder appears under two prefixes).

    `torch.save` stores a storage once however many keys point at it, so keeping the sharing keeps the file at
    the size of the unique weights (the shared-encoder FUME model: ~6.7 MB instead of ~11 MB).
    """
    copies: dict[tuple[int, tuple[int, ...], torch.dtype], torch.Tensor] = {}
    out = {}
    for key, tensor in model.state_dict().items():
        identity = (tensor.data_ptr(), tuple(tensor.shape), tensor.dtype)
        if identity not in copies or tensor.numel() == 0:
            copies[identity] = tensor.detach().cpu()
        out[key] = copies[identity]
    return out


def make_checkpoint(
    model: nn.Module, config: TrainConfig, metrics: dict[str, float], resume: dict[str, Any] | None = None
) -> Checkpoint:
    """A fume-edge checkpoint of `model`; `resume` (optimizer, scheduler, progress, RNG) only where a run restarts."""
    return Checkpoint(
        architecture=config.model,
        arch_kwargs=dict(config.model_kwargs),
        state_dict=cpu_state_dict(unwrap(model)),
        preprocessing=config.data.preprocessing(),
        provenance={
            "trained_by": "fume-edge train",
            "seed": config.seed,
            "config": config.to_dict(),
            "metrics": {k: v for k, v in metrics.items() if not math.isnan(v)},
        },
        extra={"resume": resume} if resume is not None else {},
    )


def resume_state(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    progress: Progress,
) -> dict[str, Any]:
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "progress": asdict(progress),
        "rng": rng_state(),
    }


def resume_of(checkpoint: Checkpoint, path: str | Path) -> dict[str, Any]:
    """The resume state of a `last.pt` (or periodic) checkpoint; `best.pt` holds weights only and is refused."""
    resume = checkpoint.extra.get("resume")
    if not isinstance(resume, dict):
        raise FumeEdgeError(f"{path}: no resume state in this checkpoint; resume from the run's last.pt")
    return resume


def restore(
    resume: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
) -> Progress:
    """Put the saved optimiser/scheduler/scaler/RNG state back; returns the saved progress counters."""
    optimizer.load_state_dict(resume["optimizer"])
    scheduler.load_state_dict(resume["scheduler"])
    scaler.load_state_dict(resume["scaler"])
    set_rng_state(resume["rng"])
    return Progress(**resume["progress"])
