"""Helpers for the calibration and quantization tests: a small synthetic paired dataset and calibration set, and
the `dataset` / `calib` fixtures the quantization tests share (a module may define its own instead)."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_support import small_config

from fume_edge.data.calibration import CalibrationRequest, build_calibration_set
from fume_edge.data.pairing import run_pairing
from fume_edge.data.synth_dataset import plan_sessions, write_synthetic_dataset

SIZE = (128, 96)  # small, a multiple of 32: every test here is about graphs and files, not full-size accuracy


def make_paired_dataset(folder: Path, pairs: int = 120) -> Path:
    """Synthetic frames at SIZE, paired and split by animal; returns the folder of paired_{train,val,test}.csv."""
    config = small_config(*SIZE, animals=6, sessions_per_animal=2, min_sessions_per_class=2)
    plans = plan_sessions(config.synthetic, config.ph_classes, pairs, seed=0)
    annotations = write_synthetic_dataset(folder, plans, config.synthetic, seed=0)
    run_pairing(annotations, folder, config.pairing, config.ph_classes)
    return folder


def make_calibration(dataset: Path, output: Path, count: int = 30, seed: int = 0) -> Path:
    build_calibration_set(CalibrationRequest(dataset / "paired_train.csv", output, count, seed, SIZE))
    return output


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_paired_dataset(tmp_path_factory.mktemp("data") / "synth")


@pytest.fixture(scope="module")
def calib(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_calibration(dataset, tmp_path_factory.mktemp("calib") / "small", count=20)
