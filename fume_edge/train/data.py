"""The trainer's view of the data layer: which splits, which samples each epoch, and on which rank.

Epoch order is a pure function of (seed, epoch): the class-balanced sampler draws from a generator seeded with
both, on every rank alike, and each rank takes its shard. That is what lets a resumed run replay the unbroken
run's batches exactly, and DDP ranks agree on the epoch without talking to each other.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from fume_edge.data.config import load_data_config
from fume_edge.data.dataset import PairedFrameDataset, class_balanced_sampler
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import PH_CLASS_NAMES
from fume_edge.train.config import TrainConfig
from fume_edge.train.distributed import DistContext, shard


@dataclass
class Splits:
    train: PairedFrameDataset
    val: PairedFrameDataset


def _split(config: TrainConfig, key: str, train: bool) -> PairedFrameDataset:
    settings = config.data
    path = settings.split_path(getattr(settings, key))
    if not path.is_file():
        raise FumeEdgeError(
            f"{path}: split not found; pass --data DIR holding it (from `fume-edge pair`) or set data.{key}"
        )
    return PairedFrameDataset(
        path,
        train=train,
        config=load_data_config(settings.settings),
        modality_dropout=settings.modality_dropout,
        preprocessing=settings.preprocessing(),
    )


def load_splits(config: TrainConfig) -> Splits:
    """Training (augmented, modality dropout) and validation (as recorded) datasets; missing or empty is one line."""
    root = config.data.root
    if root is not None and not Path(root).is_dir():
        raise FumeEdgeError(f"{root}: data folder not found; pass --data DIR with the paired_*.csv files")
    return Splits(train=_split(config, "train_csv", train=True), val=_split(config, "val_csv", train=False))


def require_every_class(dataset: PairedFrameDataset, config: TrainConfig) -> None:
    """A pH class with no training sample cannot be learnt (and breaks balanced sampling): say which one."""
    counts = Counter(dataset.ph_classes)
    missing = [name for i, name in enumerate(PH_CLASS_NAMES) if counts[i] == 0]
    if missing:
        path = config.data.split_path(config.data.train_csv)
        raise FumeEdgeError(
            f"{path}: no {missing[0]} samples in the training split; every pH class needs training "
            "samples (add data or re-split with `fume-edge pair`)"
        )


def epoch_indices(dataset: PairedFrameDataset, config: TrainConfig, epoch: int) -> list[int]:
    """The epoch's sample order, identical on every rank and on every replay of this (seed, epoch)."""
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    count = config.data.samples_per_epoch or len(dataset)
    if config.data.balanced_sampling:
        return list(class_balanced_sampler(dataset.ph_classes, count, generator))
    order = torch.cat([torch.randperm(len(dataset), generator=generator) for _ in range(-(-count // len(dataset)))])
    return order[:count].tolist()


def train_loader(dataset: PairedFrameDataset, config: TrainConfig, ctx: DistContext, epoch: int) -> DataLoader:
    """This rank's batches for `epoch`. Worker seeds come from (seed, epoch) too, so augmentations replay."""
    indices = shard(epoch_indices(dataset, config, epoch), ctx, equal=True)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=indices,
        num_workers=config.data.num_workers,
        generator=torch.Generator().manual_seed(config.seed + epoch),
        pin_memory=ctx.device.type == "cuda",
    )


def val_loader(dataset: PairedFrameDataset, config: TrainConfig, ctx: DistContext) -> DataLoader:
    """This rank's validation batches: every sample once (or `max_val_samples` spread evenly over the split)."""
    count = min(config.data.max_val_samples or len(dataset), len(dataset))
    indices = np.linspace(0, len(dataset) - 1, count).round().astype(int).tolist()
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=shard(indices, ctx, equal=False),
        num_workers=config.data.num_workers,
        pin_memory=ctx.device.type == "cuda",
    )
