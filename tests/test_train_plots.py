"""Plots: overlays tint only labelled pixels, and every plot writes a PNG even for awkward inputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fume_edge.train.plots import overlay, ph_label, plot_confusion, plot_curves, plot_overlays

PNG = b"\x89PNG\r\n\x1a\n"


def test_overlay_tints_only_labelled_pixels() -> None:
    frame = np.full((4, 5), 0.5, np.float32)
    mask = np.zeros((4, 5), np.int64)
    mask[1, 2], mask[2, 3] = 1, 2
    rgb = overlay(frame, mask)
    assert rgb.shape == (4, 5, 3)
    np.testing.assert_allclose(rgb[0, 0], [0.5, 0.5, 0.5])
    assert rgb[1, 2, 2] > rgb[1, 2, 0]  # tube: blue
    assert rgb[2, 3, 0] > rgb[2, 3, 2]  # gas: orange


def test_plots_write_png_files(tmp_path: Path) -> None:
    history = [
        {"epoch": 1.0, "train_loss": 2.0, "val_loss": 1.5, "val_balanced_accuracy": math.nan},
        {"epoch": 2.0, "train_loss": 1.0, "val_loss": 1.2, "val_balanced_accuracy": 0.5},
    ]
    cm = np.array([[3, 1, 0], [0, 0, 0], [1, 0, 4]])  # a class absent from the split: an all-zero row
    frame, mask = np.random.default_rng(0).random((6, 8)), np.ones((6, 8), np.int64)
    sample = {
        "co2": frame,
        "co2_true": mask,
        "co2_pred": mask,
        "co2_present": np.array(True),
        "ch4": frame,
        "ch4_true": mask,
        "ch4_pred": mask,
        "ch4_present": np.array(False),
        "ph_true": np.array(2),
        "ph_pred": np.array(0),
    }
    for path in (
        plot_curves(history, tmp_path / "curves.png"),
        plot_confusion(cm, tmp_path / "cm.png"),
        plot_overlays([sample, sample], tmp_path / "overlays.png"),
    ):
        assert path.read_bytes()[:8] == PNG


def test_overlay_rows_are_labelled_with_true_and_predicted_ph() -> None:
    assert ph_label({"ph_true": np.array(2), "ph_pred": np.array(0)}) == "pH true Acidotic\npred Healthy"
    assert ph_label({"ph_true": np.array(1)}) == "pH true Transitional"  # a model without a pH head
