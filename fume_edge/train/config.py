"""The training configuration: typed sections filled from `configs/train.yaml` and the user's YAML.

The packaged defaults are the FUME research configuration (AdamW 1e-3/1e-4, cosine to 1e-5, batch 8, ≤ 100 epochs,
patience 15 on validation balanced accuracy, clipping 1.0, AMP, focal pH loss with α = [1, 8, 1.2], focal + dice
masks, task weights 1/1, class-balanced sampling; modality dropout 0.2 and the augmentations come from the data
settings, `configs/data.yaml`). Like the data settings, these dataclasses carry no default values: the packaged
YAML is the one place they live, so a default can never be stated twice and drift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fume_edge.config import load_config
from fume_edge.data.config import load_data_config
from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.pre import Preprocessing

Monitor = Literal["balanced_accuracy", "macro_f1", "gas_iou", "joint"]


@dataclass
class DataSettings:
    """Where the paired CSVs are and how frames reach the model."""

    root: str | None  # folder with the split CSVs; `--data` sets it; relative CSV names resolve under it
    train_csv: str
    val_csv: str
    settings: str | None  # a data settings YAML (augmentations, 16-bit range); None: configs/data.yaml
    image_size: tuple[int, int]  # (width, height) the model is trained at
    modality_dropout: float | None  # None: the data settings' value
    balanced_sampling: bool
    samples_per_epoch: int | None  # None: as many draws as the training split has samples
    max_val_samples: int | None  # None: the whole validation split
    num_workers: int

    def preprocessing(self) -> Preprocessing:
        """What training feeds the model (image size, 16-bit range of the data settings); checkpoints record it."""
        return load_data_config(self.settings).images.preprocessing(self.image_size)

    def validate(self, where: str) -> None:
        if self.modality_dropout is not None and not 0.0 <= self.modality_dropout < 1.0:
            raise FumeEdgeError(f"{where}.modality_dropout: expected a value in [0, 1), got {self.modality_dropout}")
        if min(self.image_size) < 32:
            raise FumeEdgeError(f"{where}.image_size: expected [width, height] of at least 32 pixels each")
        for key in ("samples_per_epoch", "max_val_samples"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise FumeEdgeError(f"{where}.{key}: expected a positive integer or null, got {value}")

    def split_path(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() or self.root is None else Path(self.root) / path


@dataclass
class OptimSettings:
    """AdamW with cosine annealing from `lr` to `min_lr` over the epochs, gradients clipped to `grad_clip`."""

    lr: float
    weight_decay: float
    min_lr: float
    grad_clip: float | None


@dataclass
class LossSettings:
    """Arguments of `train.losses.MultiTaskLoss`."""

    ph_gamma: float
    ph_alpha: tuple[float, ...] | None
    seg_gamma: float
    seg_alpha: tuple[float, ...] | None
    dice_weight: float
    cls_weight: float
    seg_weight: float


@dataclass
class LoggingSettings:
    """Optional experiment trackers (used only when asked for and installed) and what plots to draw."""

    tensorboard: bool
    wandb: bool
    wandb_project: str
    overlay_samples: int
    plot_every: int  # epochs between curve/confusion/overlay plots (always drawn at the end)


@dataclass
class TrainConfig:
    model: str
    model_kwargs: dict[str, Any]
    init_from: str | None  # a fume-edge checkpoint whose weights start the run (fine-tuning, new size)
    data: DataSettings
    optim: OptimSettings
    loss: LossSettings
    logging: LoggingSettings
    epochs: int
    batch_size: int
    patience: int | None  # epochs without a better `monitor` before stopping; null: never stop early
    monitor: Monitor
    seed: int
    amp: bool  # CUDA only; CPU always trains in float32
    device: str
    output_dir: str
    run_name: str | None  # None: a time-stamped name
    checkpoint_every: int  # epochs between periodic `epoch_NNN.pt` checkpoints; 0: none

    def validate(self, where: str) -> None:
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise FumeEdgeError(f"{where}.{key}: expected a positive integer, got {getattr(self, key)}")
        if self.patience is not None and self.patience < 1:
            raise FumeEdgeError(f"{where}.patience: expected a positive integer or null, got {self.patience}")
        if self.checkpoint_every < 0:
            raise FumeEdgeError(f"{where}.checkpoint_every: expected 0 or a positive integer")

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-ready mapping (tuples as lists) that `load_train_config` reads back to an equal config."""
        def plain(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        return plain(asdict(self))


def load_train_config(path: str | Path | None = None) -> TrainConfig:
    """Packaged defaults overridden by the YAML at `path` (any subset of keys)."""
    return load_config(TrainConfig, "train", path)
