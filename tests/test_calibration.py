"""Calibration sets: stratified choice of pairs, manifest and cached tensors, and a loader that names every problem."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from calibration_support import SIZE, make_calibration, make_paired_dataset

from fume_edge.data.calibration import (
    MANIFEST,
    TENSORS,
    CalibrationRequest,
    allocate,
    build_calibration_set,
    load_calibration,
    select_stratified,
)
from fume_edge.data.images import load_mask
from fume_edge.data.records import read_samples
from fume_edge.errors import FumeEdgeError
from fume_edge.hashing import sha256_file
from fume_edge.runtime.pre import Preprocessing


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_paired_dataset(tmp_path_factory.mktemp("data") / "synth")


@pytest.fixture(scope="module")
def calib(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_calibration(dataset, tmp_path_factory.mktemp("calib") / "small")


def test_allocate_gives_small_strata_everything_and_shares_the_rest() -> None:
    assert allocate([2, 100, 100], 40) == [2, 19, 19]
    assert allocate([0, 5, 50], 9) == [0, 4, 5]  # equal shares; the rounding remainder goes to the larger stratum
    assert allocate([3, 4], 100) == [3, 4]
    assert sum(allocate([7, 8, 9], 10)) == 10
    rng = np.random.default_rng(0)
    for _ in range(500):
        sizes = rng.integers(0, 40, size=rng.integers(1, 7)).tolist()
        count = int(rng.integers(0, 150))
        quotas = allocate(sizes, count)
        assert sum(quotas) == min(count, sum(sizes)) and all(0 <= q <= n for q, n in zip(quotas, sizes, strict=True))
        uncapped = [q for q, n in zip(quotas, sizes, strict=True) if q < n]
        assert not uncapped or max(quotas) - min(uncapped) <= 1  # equal shares, up to rounding


def test_select_stratified_is_seeded_and_balanced() -> None:
    strata = ["rare"] * 3 + ["common"] * 60 + ["other"] * 40
    chosen = select_stratified(strata, 21, seed=1)
    assert chosen == select_stratified(strata, 21, seed=1) != select_stratified(strata, 21, seed=2)
    assert sorted(strata[i] for i in chosen).count("rare") == 3
    assert sorted(strata[i] for i in chosen).count("common") == 9
    assert len(set(chosen)) == 21


def test_manifest_records_pairs_hashes_counts_and_command(dataset: Path, calib: Path) -> None:
    manifest = json.loads((calib / MANIFEST).read_text())
    assert manifest["count"] == len(manifest["frames"]) == 30
    assert manifest["input_size"] == list(SIZE) and manifest["seed"] == 0
    assert sum(manifest["counts"]["ph_class"].values()) == sum(manifest["counts"]["strata"].values()) == 30
    assert "Transitional" in manifest["counts"]["ph_class"]  # the rare class is taken whole, not 2.6 % of 30
    for frame in manifest["frames"]:
        for gas in ("co2", "ch4"):  # both modalities, paths relative to the CSV's folder, hashes of the images
            assert sha256_file(dataset / frame[f"{gas}_image"]) == frame[f"{gas}_sha256"]
    assert manifest["command"].startswith("fume-edge calibrate --data ") and "--size 128x96" in manifest["command"]
    assert manifest["tensors"]["sha256"] == sha256_file(calib / TENSORS)


def test_cached_tensors_are_the_listed_frames_scaled_to_unit_range(dataset: Path, calib: Path) -> None:
    cset = load_calibration(calib, Preprocessing(SIZE))
    assert cset.arrays["co2"].shape == (30, 1, SIZE[1], SIZE[0]) and cset.arrays["co2"].dtype == np.float32
    for index in (0, 17):
        frame = cset.manifest["frames"][index]
        for gas in ("co2", "ch4"):
            raw = cv2.imread(str(dataset / frame[f"{gas}_image"]), cv2.IMREAD_UNCHANGED)  # 8-bit, at SIZE already
            assert raw.dtype == np.uint8 and raw.shape == SIZE[::-1]
            np.testing.assert_allclose(cset.arrays[gas][index, 0], raw / 255.0, atol=1e-6)
            np.testing.assert_array_equal(
                cset.arrays[f"{gas}_mask"][index], load_mask(dataset / frame[f"{gas}_mask"], SIZE)
            )


def test_items_zero_the_absent_camera_and_split_holds_back_a_fifth(calib: Path) -> None:
    cset = load_calibration(calib)
    item = cset.item(3, "co2 only")
    assert item.modality_mask.tolist() == [[1.0, 0.0]] and not item.ch4.any() and item.ch4_mask is None
    assert item.co2_mask is not None and item.co2.any()
    kept, held = cset.split(0.2)
    assert len(held) == 6 and not set(kept) & set(held) and len(kept) + len(held) == 30


def test_same_seed_same_set(dataset: Path, calib: Path, tmp_path: Path) -> None:
    again = make_calibration(dataset, tmp_path / "again")
    assert json.loads((again / MANIFEST).read_text())["frames"] == json.loads((calib / MANIFEST).read_text())["frames"]


def _one_line_error(folder: Path, preprocessing: Preprocessing | None = None) -> str:
    with pytest.raises(FumeEdgeError) as info:
        load_calibration(folder, preprocessing)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_loader_names_each_problem(calib: Path, tmp_path: Path) -> None:
    assert "not found" in _one_line_error(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert "is empty" in _one_line_error(tmp_path / "empty")
    (tmp_path / "stray").mkdir()
    (tmp_path / "stray" / "notes.txt").write_text("x")
    assert "no manifest.json" in _one_line_error(tmp_path / "stray")
    assert (
        "made with input_size [128, 96] (model: [640, 480]); calibrate with the model's preprocessing"
        in _one_line_error(calib, Preprocessing((640, 480)))
    )
    assert "uint16_range [0.0, 65535.0] (model: [1000.0, 9000.0])" in _one_line_error(
        calib, Preprocessing(SIZE, uint16_range=(1000.0, 9000.0))
    )

    copy = shutil.copytree(calib, tmp_path / "copy")
    (copy / TENSORS).unlink()
    assert "missing (tensors are git-ignored" in _one_line_error(copy)
    np.savez(copy / TENSORS, co2=np.zeros(1, np.float32))
    assert "does not belong to this manifest" in _one_line_error(copy)


def test_a_csv_without_pairs_or_a_bad_size_is_refused(dataset: Path, tmp_path: Path) -> None:
    with (dataset / "paired_train.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    singles = [r for r in rows if not r["ch4_image"]]
    assert singles, "the synthetic data has single-CO2 samples"
    path = dataset / "singles.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(singles)
    assert all(s.ch4 is None for s in read_samples(path))
    with pytest.raises(FumeEdgeError, match="no sample has both a CO2 and a CH4 image"):
        build_calibration_set(CalibrationRequest(path, tmp_path / "out", 10, 0, SIZE))
    with pytest.raises(FumeEdgeError, match="--size 320x240: width and height must be positive multiples of 32"):
        build_calibration_set(CalibrationRequest(dataset / "paired_train.csv", tmp_path / "out", 10, 0, (320, 240)))
    assert not (tmp_path / "out").exists()


def test_calibrate_command(dataset: Path, tmp_path: Path) -> None:
    cli = [
        sys.executable,
        "-m",
        "fume_edge",
        "calibrate",
        "--data",
        str(dataset / "paired_train.csv"),
        "--size",
        "128x96",
    ]
    done = subprocess.run([*cli, "-o", str(tmp_path / "cal"), "--count", "12"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Calibration set: 12 pairs" in done.stdout and (tmp_path / "cal" / TENSORS).is_file()
    again = subprocess.run([*cli, "-o", str(tmp_path / "cal")], capture_output=True, text=True)
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr
