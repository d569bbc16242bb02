"""The training configuration: typed sections filled from `configs/train.yaml` and the user's YAML.

The packaged defaults are the FUME research configuration (AdamW 1e-3/1e-4, cosine to 1e-5, batch 8, ≤ 100 epochs,
patience 15 on validation balanced accuracy, clipping 1.0, AMP, focal pH loss with α = [1, 8, 1.2], focal + dice
masks, task weights 1/1, class-balanced sampling; modality dropout 0.2 and the augmentations come from the data
settings, `configs/data.yaml`). Like the data settings, these models carry no default values: the packaged
YAML is the one place they live, so a default can never be stated twice and drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from fume_edge.config import ConfigModel, Count, Override, Seed, TopConfig, load_config
from fume_edge.data.config import DropoutProbability, load_data_config
from fume_edge.runtime.pre import Preprocessing

Monitor = Literal["balanced_accuracy", "macro_f1", "gas_iou", "joint"]
TrainPixels = Annotated[int, Field(ge=32, le=8192)]
LearningRate = Annotated[float, Field(ge=0, le=10)]
Weight = Annotated[float, Field(ge=0, le=1000)]
Epochs = Annotated[int, Field(ge=1, le=100_000)]


class DataSettings(ConfigModel):
    """Where the paired CSVs are and how frames reach the model."""

    root: str | None  # folder with the split CSVs; `--data` sets it; relative CSV names resolve under it
    train_csv: str
    val_csv: str
    settings: str | None  # a data settings YAML (augmentations, 16-bit range); None: configs/data.yaml
    image_size: tuple[TrainPixels, TrainPixels]  # (width, height) the model is trained at
    modality_dropout: DropoutProbability | None  # None: the data settings' value
    balanced_sampling: bool
    samples_per_epoch: Count | None  # None: as many draws as the training split has samples
    max_val_samples: Count | None  # None: the whole validation split
    num_workers: Annotated[int, Field(ge=0, le=256)]

    def preprocessing(self) -> Preprocessing:
        """What training feeds the model (image size, 16-bit range of the data settings); checkpoints record it."""
        return load_data_config(self.settings).images.preprocessing(self.image_size)

    def split_path(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() or self.root is None else Path(self.root) / path


class OptimSettings(ConfigModel):
    """AdamW with cosine annealing from `lr` to `min_lr` over the epochs, gradients clipped to `grad_clip`."""

    lr: LearningRate
    weight_decay: LearningRate
    min_lr: LearningRate
    grad_clip: Annotated[float, Field(gt=0, le=1e6)] | None


class LossSettings(ConfigModel):
    """Arguments of `train.losses.MultiTaskLoss`."""

    ph_gamma: Weight
    ph_alpha: tuple[Weight, ...] | None
    seg_gamma: Weight
    seg_alpha: tuple[Weight, ...] | None
    dice_weight: Weight
    cls_weight: Weight
    seg_weight: Weight


class LoggingSettings(ConfigModel):
    """Optional experiment trackers (used only when asked for and installed) and what plots to draw."""

    tensorboard: bool
    wandb: bool
    wandb_project: str
    overlay_samples: Annotated[int, Field(ge=0, le=1000)]
    plot_every: Epochs  # epochs between curve/confusion/overlay plots (always drawn at the end)


class TrainConfig(TopConfig):
    defaults_name = "train"

    model: str
    model_kwargs: dict[str, Any]
    init_from: str | None  # a fume-edge checkpoint whose weights start the run (fine-tuning, new size)
    data: DataSettings
    optim: OptimSettings
    loss: LossSettings
    logging: LoggingSettings
    epochs: Epochs
    batch_size: Annotated[int, Field(ge=1, le=65_536)]
    patience: Epochs | None  # epochs without a better `monitor` before stopping; null: never stop early
    monitor: Monitor
    seed: Seed
    amp: bool  # CUDA only; CPU always trains in float32
    device: str
    output_dir: str
    run_name: str | None  # None: a time-stamped name
    checkpoint_every: Annotated[int, Field(ge=0, le=100_000)]  # epochs between `epoch_NNN.pt` checkpoints; 0: none

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-ready mapping (tuples as lists) that `load_train_config` reads back to an equal config."""
        return self.model_dump(mode="json")


def load_train_config(path: str | Path | None = None, overrides: Iterable[Override] = ()) -> TrainConfig:
    """Packaged defaults overridden by the YAML at `path` (any subset of keys), then by command-line options."""
    return load_config(TrainConfig, path, overrides)
