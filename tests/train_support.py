"""Helpers for the training tests: a tiny synthetic paired dataset and a fast training configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fume_edge.config import merge
from fume_edge.data.config import load_data_config
from fume_edge.data.pairing import run_pairing
from fume_edge.data.synth_dataset import plan_sessions, write_synthetic_dataset

# Frames are rendered at the generator's minimum size and trained at half that: seconds per epoch on two cores.
DATA_SETTINGS = {"synthetic": {"width": 128, "height": 96}}
TRAIN_SIZE = [64, 48]


def make_paired_dataset(folder: Path, pairs: int = 48, seed: int = 3) -> Path:
    """Render a small synthetic dataset and pair it; returns the folder with paired_{train,val,test}.csv."""
    settings = folder / "data.yaml"
    settings.write_text(yaml.safe_dump(DATA_SETTINGS), encoding="utf-8")
    config = load_data_config(settings)
    plans = plan_sessions(config.synthetic, config.ph_classes, pairs, seed)
    annotations = write_synthetic_dataset(folder / "raw", plans, config.synthetic, seed)
    run_pairing(annotations, folder / "paired", config.pairing, config.ph_classes)
    return folder / "paired"


def fast_config(paired: Path, output: Path, **changes: Any) -> Path:
    """A YAML training config for the `paired` folder that trains in seconds; `changes` are merged over it."""
    body = {
        "data": {
            "root": str(paired),
            "settings": str(paired.parent / "data.yaml"),
            "image_size": TRAIN_SIZE,
            "samples_per_epoch": 16,
            "max_val_samples": 8,
        },
        "batch_size": 4,
        "epochs": 3,
        "output_dir": str(output),
        "checkpoint_every": 2,
        "logging": {"overlay_samples": 2},
    }
    path = output.parent / f"{output.name}.yaml"
    path.write_text(yaml.safe_dump(merge(body, changes)), encoding="utf-8")
    return path
