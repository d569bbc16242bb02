"""The PyTorch dataset over a paired CSV, with modality dropout, and a class-balanced sampler.

A sample is a dict (the keys the trainer's `MultiTaskLoss` reads):
- `co2`, `ch4`: float32 (1, H, W) in [0, 1]; zeros when that gas is absent or dropped.
- `co2_mask`, `ch4_mask`: int64 (H, W) class ids (0 background, 1 tube, 2 gas); zeros when absent or dropped, so
  the loss must weigh each gas by `modality_mask` (it does).
- `modality_mask`: float32 (2,) = [use_co2, use_ch4].
- `ph_class`: int64 () index into `PH_CLASS_NAMES` (fixed by `fume-edge pair`, which also split by it).
- `ph`: float32 ().

Modality dropout (training only) teaches the fused model to work when a camera fails: with probability p a paired
sample loses one gas, chosen at random; a sample never loses both, and a single-gas sample is left as it is.
Randomness comes from torch's generator, so `torch.manual_seed` makes epochs reproducible and every DataLoader
worker draws different augmentations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from fume_edge.data.config import DataConfig, load_data_config
from fume_edge.data.images import load_frame, load_mask
from fume_edge.runtime.pre import Preprocessing
from fume_edge.data.records import Sample, read_samples
from fume_edge.data.transforms import PairedAugment
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import GASES, INPUT_HEIGHT, INPUT_WIDTH


class PairedFrameDataset(Dataset):
    """Samples of one `paired_*.csv`. `train` turns on augmentation and modality dropout.

    `size` = (width, height) every frame and mask is resized to (the model's input size by default);
    `modality_dropout` overrides the configured probability (training only; evaluation never drops).
    `preprocessing` (a model's own, when scoring a model file) replaces the one `config` and `size` make.
    """

    def __init__(
        self,
        csv_path: str | Path,
        *,
        train: bool,
        config: DataConfig | None = None,
        size: tuple[int, int] = (INPUT_WIDTH, INPUT_HEIGHT),
        modality_dropout: float | None = None,
        preprocessing: Preprocessing | None = None,
    ):
        config = config or load_data_config()
        self.samples: list[Sample] = read_samples(csv_path)
        if not self.samples:
            raise FumeEdgeError(f"{csv_path}: no samples; run `fume-edge pair` on an annotation CSV with frames")
        self.train = train
        self.preprocessing = preprocessing or config.images.preprocessing(size)
        self.size = self.preprocessing.input_size
        self.augment = PairedAugment(config.augment) if train else None
        p = config.dataset.modality_dropout if modality_dropout is None else modality_dropout
        self.modality_dropout = p if train else 0.0

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def ph_classes(self) -> list[int]:
        """Each sample's pH class id, in order (for samplers and class weights)."""
        return [s.ph_class for s in self.samples]

    def _load(self, sample: Sample) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        frames, masks = {}, {}
        for gas in GASES:
            frame = sample.frame(gas)
            if frame is not None:
                frames[gas] = load_frame(frame.image, self.preprocessing)
                masks[gas] = load_mask(frame.mask, self.size)
        return frames, masks

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.samples[index]
        frames, masks = self._load(sample)
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
            if self.augment is not None:
                frames, masks = self.augment(frames, masks, rng)
            if len(frames) == len(GASES) and rng.random() < self.modality_dropout:
                dropped = GASES[int(rng.integers(len(GASES)))]
                del frames[dropped], masks[dropped]
        width, height = self.size
        item: dict[str, torch.Tensor] = {}
        for gas in GASES:
            frame = frames.get(gas, np.zeros((height, width), np.float32))
            mask = masks.get(gas, np.zeros((height, width), np.uint8))
            item[gas] = torch.from_numpy(np.ascontiguousarray(frame)).unsqueeze(0)
            item[f"{gas}_mask"] = torch.from_numpy(mask.astype(np.int64))
        item["modality_mask"] = torch.tensor([float(gas in frames) for gas in GASES])
        item["ph_class"] = torch.tensor(sample.ph_class, dtype=torch.int64)
        item["ph"] = torch.tensor(sample.ph, dtype=torch.float32)
        return item


def class_balanced_sampler(
    ph_classes: Sequence[int], num_samples: int | None = None, generator: torch.Generator | None = None
) -> WeightedRandomSampler:
    """Draws every pH class equally often (with replacement), so the 2.6 % Transitional class is seen in training.

    `num_samples` defaults to the dataset size (one epoch).
    """
    counts = Counter(ph_classes)
    weights = [1.0 / counts[c] for c in ph_classes]
    return WeightedRandomSampler(weights, num_samples or len(ph_classes), replacement=True, generator=generator)
