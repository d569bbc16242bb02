"""Dataset: sample shapes and dtypes, frame/mask alignment under augmentation, modality dropout, 16-bit frames,
mask checks, and the class-balanced sampler."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from data_support import write_png

from fume_edge.config import replace
from fume_edge.data.config import load_data_config
from fume_edge.data.csvio import write_tables
from fume_edge.data.dataset import PairedFrameDataset, class_balanced_sampler
from fume_edge.data.images import load_frame, load_mask
from fume_edge.data.records import Frame, Sample, sample_table
from fume_edge.data.transforms import Geometry, PairedAugment
from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.pre import Preprocessing
from fume_edge.labels import GAS_CLASS_ID

CONFIG = load_data_config()
W, H = 64, 48


def square_scene(folder: Path, name: str) -> tuple[Path, Path]:
    """A dark frame with a bright off-centre rectangle that the mask marks as gas."""
    frame = np.full((H, W), 40, np.uint8)
    mask = np.zeros((H, W), np.uint8)
    frame[10:22, 8:30] = 220
    mask[10:22, 8:30] = GAS_CLASS_ID
    return write_png(folder / f"{name}.png", frame), write_png(folder / f"{name}_mask.png", mask)


def paired_csv(folder: Path, n_pairs: int, singles: tuple[str, ...] = (), ph_classes: tuple[int, ...] = (0,)) -> Path:
    image, mask = square_scene(folder, "square")
    samples = []
    for i in range(n_pairs + len(singles)):
        gases = ("co2", "ch4") if i < n_pairs else (singles[i - n_pairs],)
        frames = {g: Frame(image, mask, g, 6.2, "A1", "S1", float(i)) for g in gases}
        samples.append(Sample("A1", "S1", 6.2, ph_classes[i % len(ph_classes)], frames.get("co2"), frames.get("ch4")))
    path = folder / "paired.csv"
    write_tables({path: sample_table(samples, folder)})
    return path


def test_eval_sample_shapes_dtypes_and_single_gas(tmp_path: Path) -> None:
    dataset = PairedFrameDataset(paired_csv(tmp_path, 1, singles=("ch4",)), train=False, size=(W, H))
    pair, single = dataset[0], dataset[1]
    assert pair["co2"].shape == pair["ch4"].shape == (1, H, W) and pair["co2"].dtype == torch.float32
    assert pair["co2_mask"].shape == (H, W) and pair["co2_mask"].dtype == torch.int64
    assert pair["modality_mask"].tolist() == [1.0, 1.0] and pair["modality_mask"].dtype == torch.float32
    assert pair["ph_class"].dtype == torch.int64 and pair["ph_class"].shape == ()
    assert pair["ph"].item() == pytest.approx(6.2)
    assert pair["co2"].min() >= 0.0 and pair["co2"].max() <= 1.0
    assert pair["co2"][0, 15, 15].item() == pytest.approx(220 / 255)
    assert single["modality_mask"].tolist() == [0.0, 1.0]
    assert single["co2"].abs().sum() == 0 and single["co2_mask"].sum() == 0
    batch = torch.utils.data.default_collate([pair, single])
    assert batch["co2"].shape == (2, 1, H, W) and batch["modality_mask"].shape == (2, 2)


def test_resizes_frames_and_masks_to_the_requested_size(tmp_path: Path) -> None:
    item = PairedFrameDataset(paired_csv(tmp_path, 1), train=False, size=(32, 24))[0]
    assert item["co2"].shape == (1, 24, 32) and item["ch4_mask"].shape == (24, 32)
    assert set(item["ch4_mask"].unique().tolist()) == {0, GAS_CLASS_ID}


def test_geometric_augmentation_keeps_frame_and_mask_aligned(tmp_path: Path) -> None:
    image, mask_path = square_scene(tmp_path, "sq")
    frame, mask = load_frame(image, Preprocessing((W, H))), load_mask(mask_path)
    geometric_only = replace(
        CONFIG.augment, hflip_p=0.5, shift_scale_rotate_p=1.0, brightness_contrast_p=0, gamma_p=0, noise_p=0, blur_p=0
    )
    augment = PairedAugment(geometric_only)
    moved = 0
    for seed in range(30):
        frames, masks = augment(
            {"co2": frame, "ch4": frame.copy()}, {"co2": mask, "ch4": mask.copy()}, np.random.default_rng(seed)
        )
        assert np.array_equal(masks["co2"], masks["ch4"]) and np.allclose(frames["co2"], frames["ch4"])
        bright, gas = frames["co2"] > 0.5, masks["co2"] == GAS_CLASS_ID
        iou = (bright & gas).sum() / (bright | gas).sum()
        assert iou > 0.9, f"seed {seed}: frame and mask drifted apart (IoU {iou:.2f})"
        moved += not np.array_equal(gas, mask == GAS_CLASS_ID)
    assert moved >= 25  # the augmentation really moved the content


def test_flip_mirrors_exactly() -> None:
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(Geometry(flip=True).apply(image, nearest=False), image[:, ::-1])
    matrix = Geometry(flip=True).matrix(4, 3)
    assert np.allclose(matrix, [[-1, 0, 3], [0, 1, 0]])


def test_photometric_augmentation_changes_frames_independently(tmp_path: Path) -> None:
    frame = np.full((H, W), 0.5, np.float32)
    mask = np.zeros((H, W), np.uint8)
    photometric_only = replace(
        CONFIG.augment, hflip_p=0, shift_scale_rotate_p=0, brightness_contrast_p=1.0, noise_p=1.0
    )
    frames, masks = PairedAugment(photometric_only)(
        {"co2": frame, "ch4": frame}, {"co2": mask, "ch4": mask}, np.random.default_rng(0)
    )
    assert not np.allclose(frames["co2"], frames["ch4"])
    assert frames["co2"].dtype == np.float32 and frames["co2"].min() >= 0 and frames["co2"].max() <= 1
    assert np.array_equal(masks["co2"], mask)


def test_modality_dropout_rate_and_never_both(tmp_path: Path) -> None:
    torch.manual_seed(0)
    dataset = PairedFrameDataset(
        paired_csv(tmp_path, 4, singles=("co2", "ch4")), train=True, size=(W, H), modality_dropout=0.3
    )
    dropped = Counter()
    for _ in range(150):
        for index in range(len(dataset)):
            item = dataset[index]
            present = item["modality_mask"].tolist()
            assert sum(present) >= 1, "both gases dropped"
            for column, gas in enumerate(("co2", "ch4")):
                if present[column] == 0:
                    assert item[gas].abs().sum() == 0 and item[f"{gas}_mask"].sum() == 0
            if index < 4:
                dropped[tuple(present)] += 1
            else:  # single-gas samples keep their one gas
                assert present == ([1.0, 0.0] if index == 4 else [0.0, 1.0])
    rate = (dropped[(1.0, 0.0)] + dropped[(0.0, 1.0)]) / 600
    assert 0.24 < rate < 0.36
    assert dropped[(1.0, 0.0)] > 50 and dropped[(0.0, 1.0)] > 50  # either gas can go
    evaluation = PairedFrameDataset(paired_csv(tmp_path / "eval", 4), train=False, size=(W, H), modality_dropout=0.9)
    assert all(evaluation[i]["modality_mask"].tolist() == [1.0, 1.0] for i in range(4))


def test_sixteen_bit_frames_use_the_configured_range(tmp_path: Path) -> None:
    raw = np.array([[7000, 7500, 8000, 9000]], np.uint16)
    path = write_png(tmp_path / "thermal.png", raw)
    assert np.allclose(load_frame(path, Preprocessing((4, 1), uint16_range=(7000, 8000))), [[0.0, 0.5, 1.0, 1.0]])
    assert np.allclose(load_frame(path, Preprocessing((4, 1))), raw / 65535, atol=1e-6)


def test_bad_masks_and_images_are_clear_errors(tmp_path: Path) -> None:
    bad = write_png(tmp_path / "bad_mask.png", np.full((4, 4), 7, np.uint8))
    with pytest.raises(FumeEdgeError, match="mask value 7 is not a class id"):
        load_mask(bad)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(FumeEdgeError, match="cannot read the image"):
        load_frame(tmp_path / "broken.png", Preprocessing())


def test_class_balanced_sampler_draws_classes_equally() -> None:
    labels = [0] * 450 + [1] * 26 + [2] * 524
    sampler = class_balanced_sampler(labels, num_samples=6000, generator=torch.Generator().manual_seed(0))
    drawn = Counter(labels[i] for i in sampler)
    assert all(abs(drawn[c] / 6000 - 1 / 3) < 0.03 for c in range(3))
