"""Helpers for the data tests: tiny annotation CSVs and a small synthetic config."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from fume_edge.config import replace
from fume_edge.data.config import DataConfig, SyntheticConfig, load_data_config
from fume_edge.data.records import ANNOTATION_COLUMNS


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def dummy_images(folder: Path, width: int = 16, height: int = 12) -> tuple[str, str]:
    """One frame and one mask file that many annotation rows may share (relative names)."""
    write_png(folder / "frame.png", np.full((height, width), 100, np.uint8))
    write_png(folder / "mask.png", np.zeros((height, width), np.uint8))
    return "frame.png", "mask.png"


def write_annotations(
    path: Path, rows: Iterable[Sequence[object]], columns: Sequence[str] = ANNOTATION_COLUMNS
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def small_config(width: int = 96, height: int = 72, **synthetic: object) -> DataConfig:
    """Packaged settings with a small synthetic frame size (and any other synthetic overrides)."""
    config = load_data_config()
    small: SyntheticConfig = replace(config.synthetic, width=width, height=height, **synthetic)
    return replace(config, synthetic=small)
