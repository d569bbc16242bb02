"""Process-group plumbing for `torchrun` training: which rank am I, which device, and summing counts across ranks.

A plain `fume-edge train` is a world of one and never touches `torch.distributed`. Under `torchrun` (WORLD_SIZE set)
every rank joins one group — NCCL on CUDA, gloo on CPU — trains on its own shard, and only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from fume_edge.runtime.torch_backend import resolve_device

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, logs and plots."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _device(preference: str, local_rank: int) -> torch.device:
    """The runtime's device rule (`auto` → CUDA when present), with each rank on its own GPU."""
    device = resolve_device(preference)
    return torch.device("cuda", local_rank) if device.type == "cuda" and device.index is None else device


def setup(preference: str) -> DistContext:
    """Join the `torchrun` process group when launched by it; otherwise a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistContext(0, 1, _device(preference, 0))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _device(preference, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), device)


def teardown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_object(ctx: DistContext, value: T) -> T:
    """Rank 0's `value` on every rank (e.g. a time-stamped run name)."""
    if not ctx.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_array(ctx: DistContext, values: np.ndarray) -> np.ndarray:
    """Element-wise sum over ranks (confusion matrices, loss sums), exact in float64/int64."""
    if not ctx.enabled:
        return values
    tensor = torch.from_numpy(np.ascontiguousarray(values)).to(torch.float64)
    tensor = tensor.to(ctx.device) if ctx.device.type == "cuda" else tensor
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy().astype(values.dtype)


def shard(indices: list[int], ctx: DistContext, equal: bool) -> list[int]:
    """This rank's share of an index list every rank built identically.

    Training needs `equal` shares (DDP all-reduces every step, so ranks must run the same number of batches: the
    tail that does not divide is dropped); evaluation keeps every sample once (ranks sum counts, nothing waits).
    """
    if not ctx.enabled:
        return indices
    if equal:
        indices = indices[: len(indices) - len(indices) % ctx.world_size]
    return indices[ctx.rank :: ctx.world_size]
