"""The trainer on a few dozen tiny synthetic pairs: it learns, writes its run folder, resumes exactly, and the
eval command scores its checkpoint like the trainer's own validation did."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from fume_edge.model.checkpoint import load_checkpoint
from fume_edge.train.config import load_train_config
from fume_edge.data.records import read_samples
from fume_edge.train.evaluate import evaluate_file, modality_inputs
from fume_edge.train.state import Progress
from fume_edge.train.tracking import epoch_summary
from fume_edge.train.trainer import command_config, train

from train_support import fast_config, make_paired_dataset

QUIET = Console(quiet=True)


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_paired_dataset(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def unbroken(paired: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four epochs in one go (periodic checkpoint at epoch 2)."""
    output = tmp_path_factory.mktemp("runs")
    config = load_train_config(
        fast_config(paired, output / "unbroken", epochs=4, run_name="unbroken", data={"max_val_samples": None})
    )
    return train(config, console=QUIET, show_progress=False)


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_short_run_lowers_the_loss_and_fills_the_run_folder(unbroken: Path) -> None:
    rows = _rows(unbroken)
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]  # whole epochs, written as integers
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    for name in (
        "config.yaml",
        "best.pt",
        "last.pt",
        "epoch_002.pt",
        "epoch_004.pt",
        "curves.png",
        "confusion_latest.png",
        "overlays_latest.png",
        "confusion_best.png",
        "overlays_best.png",
    ):
        assert (unbroken / name).is_file(), name
    assert (unbroken / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = load_checkpoint(unbroken / "best.pt")
    assert best.architecture == "fume_fastscnn" and best.input_size == (64, 48)
    assert "resume" not in best.extra  # deployable weights only
    shared = [k for k in best.state_dict if k.startswith("co2_encoder.")]
    assert shared and all(  # the shared encoder is stored once, under both prefixes
        best.state_dict[k].data_ptr() == best.state_dict[k.replace("co2_", "ch4_", 1)].data_ptr() for k in shared
    )
    assert "resume" in load_checkpoint(unbroken / "last.pt").extra
    assert load_train_config(unbroken / "config.yaml").epochs == 4  # the resolved config reloads


def test_resume_continues_bit_for_bit(unbroken: Path, tmp_path: Path) -> None:
    """Restart from the epoch-2 checkpoint in a fresh folder: epochs 3-4 repeat the unbroken run exactly."""
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(unbroken / "epoch_002.pt", broken / "last.pt")
    torch.manual_seed(12345)  # disturb every RNG: resume must restore them
    resumed = train(
        command_config(None, broken / "last.pt", None, None),
        resume=broken / "last.pt",
        console=QUIET,
        show_progress=False,
    )
    assert resumed == broken
    expected = _rows(unbroken)[2:]
    got = _rows(broken)
    assert [r["epoch"] for r in got] == [r["epoch"] for r in expected]
    for column in ("train_loss", "train_ph", "train_co2_seg", "val_loss", "val_balanced_accuracy"):
        assert [r[column] for r in got] == [r[column] for r in expected], column
    a = load_checkpoint(unbroken / "last.pt").state_dict
    b = load_checkpoint(broken / "last.pt").state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_eval_scores_best_checkpoint_like_validation(unbroken: Path, paired: Path, tmp_path: Path) -> None:
    best_epoch = load_checkpoint(unbroken / "best.pt").provenance["epoch"]
    row = _rows(unbroken)[best_epoch - 1]
    report = evaluate_file(unbroken / "best.pt", paired / "paired_val.csv", data_settings=paired.parent / "data.yaml")
    assert report.backend == "torch" and report.input_size == (64, 48)
    assert report.confusion_matrix is not None and sum(map(sum, report.confusion_matrix)) == report.samples
    # one pair at a time through the runtime backend vs batches in the trainer: the same numbers
    for key in ("balanced_accuracy", "accuracy", "gas_iou", "co2_miou", "ch4_iou_gas"):
        assert report.metrics[key] == pytest.approx(float(row[f"val_{key}"]), abs=1e-4), key
    body = json.loads(report.to_json())
    assert body["samples"] == report.samples and set(body["metrics"]) == set(report.metrics)
    # every pair is also scored with one camera masked out; a single-gas sample only in its own case
    samples = read_samples(paired / "paired_val.csv")
    pairs = sum(s.co2 is not None and s.ch4 is not None for s in samples)
    co2_singles = sum(s.ch4 is None for s in samples)
    assert pairs and co2_singles, "the split has pairs and CO2-only samples"
    assert report.modality_samples == {
        "both": pairs,
        "co2 only": pairs + co2_singles,
        "ch4 only": pairs + sum(s.co2 is None for s in samples),
    }
    assert math.isnan(report.by_modality["co2 only"].get("ch4_iou_gas", math.nan))
    assert set(body["by_modality"]) == set(report.by_modality)


def test_modality_inputs_mask_out_each_camera_of_a_pair_and_keep_a_single_gas_as_recorded() -> None:
    frame = np.ones((1, 4, 4), np.float32)
    pair = {"co2": frame, "ch4": 2 * frame, "modality_mask": np.ones(2, np.float32), "ph_class": 0}
    cases = modality_inputs(pair)
    assert list(cases) == ["both", "co2 only", "ch4 only"]
    assert not cases["co2 only"]["ch4"].any() and cases["co2 only"]["co2"].all()
    assert cases["ch4 only"]["modality_mask"].tolist() == [0.0, 1.0] and not cases["ch4 only"]["co2"].any()
    single = {**pair, "ch4": 0 * frame, "modality_mask": np.array([1.0, 0.0], np.float32)}
    assert list(modality_inputs(single)) == ["co2 only"]


@pytest.mark.parametrize("model", ["seg_only", "cls_only", "gas_aware", "early_fusion", "single_stream"])
def test_every_baseline_trains_with_model_flag(model: str, paired: Path, tmp_path: Path) -> None:
    path = fast_config(paired, tmp_path / "runs", epochs=1, data={"samples_per_epoch": 4, "max_val_samples": 4})
    run = train(command_config(path, None, None, model), console=QUIET, show_progress=False)
    assert load_checkpoint(run / "best.pt").architecture == model
    assert len(_rows(run)) == 1


def test_progress_counts_epochs_without_a_new_best() -> None:
    progress = Progress()
    seen = []
    for epoch, value in enumerate([0.5, 0.4, float("nan"), 0.5, 0.6], start=1):
        progress.epoch = epoch
        seen.append((progress.observe(value), progress.bad_epochs))
    assert seen == [(True, 0), (False, 1), (False, 2), (False, 3), (True, 0)]  # ties and NaN never improve
    assert (progress.best, progress.best_epoch) == (0.6, 5)


def test_eval_command_prints_percent_writes_plots_and_its_next_step(
    unbroken: Path, paired: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval" / "best.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fume_edge",
            "eval",
            str(unbroken / "best.pt"),
            "--data",
            str(paired / "paired_val.csv"),
            "--data-config",
            str(paired.parent / "data.yaml"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    body = json.loads(out.read_text())
    accuracy = body["metrics"]["balanced_accuracy"]
    row = next(line for line in done.stdout.splitlines() if line.strip("│ ").startswith("balanced_accuracy "))
    assert f"{100 * accuracy:.2f}%" in row  # percent points, as the quantize report and train print them
    assert not re.search(r"\b0\.\d{4}\b", done.stdout)  # no four-decimal fractions left
    for name in ("best.confusion.png", "best.modalities.png"):
        assert (out.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert f"next: fume-edge export {unbroken / 'best.pt'} -o engines/unbroken.onnx" in " ".join(done.stdout.split())


def test_an_epoch_line_fits_80_columns() -> None:
    row = {
        "epoch": 100.0,
        "train_loss": 12.345678,
        "val_loss": 10.5,
        "val_balanced_accuracy": 0.8333,
        "val_gas_iou": 0.9123,
        "val_joint": 0.8728,
    }
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(epoch_summary(row, best=True))
    lines = console.export_text().splitlines()
    assert lines == ["epoch 100: loss 12.35 (val 10.50), bal.acc 83.3%, IoU 91.2%, joint 87.3%, best"]
