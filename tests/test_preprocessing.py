"""One preprocessing contract: the model file carries it and every path makes bit-identical inputs with it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from data_support import write_png

from fume_edge.config import replace
from fume_edge.data.calibration import labelled_input
from fume_edge.data.config import load_data_config
from fume_edge.data.dataset import PairedFrameDataset
from fume_edge.data.records import read_samples
from fume_edge.deploy.onnx.check_pairs import csv_check_pairs
from fume_edge.errors import FumeEdgeError
from fume_edge.model.checkpoint import Checkpoint, checkpoint_from_dict
from fume_edge.pipeline.prepare import ModelInputs, camera_preprocessing
from fume_edge.pipeline.sources import ImageFolder
from fume_edge.runtime.contract import ModelContract
from fume_edge.runtime.pre import Preprocessing

MODEL_SIZE = (64, 48)
FRAME_SIZES = [(64, 48), (160, 120), (40, 30), (100, 75)]  # native, larger, smaller, not a multiple
PAIRED_COLUMNS = "animal_id,session_id,ph,ph_class,co2_image,co2_mask,co2_timestamp,ch4_image,ch4_mask,ch4_timestamp"


def _frames(dtype: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A CO2 and a CH4 frame with structure (gradients, edges) and noise, as a camera would deliver them."""
    width, height = size
    rng = np.random.default_rng(width * height)
    ramp = np.linspace(0.0, 1.0, width)[None, :] * np.linspace(0.3, 1.0, height)[:, None]
    frames = []
    for offset in (0.0, 0.4):
        value = np.clip(
            ramp + offset * (rng.random((height, width)) > 0.7) + 0.05 * rng.standard_normal((height, width)), 0, 1
        )
        if dtype == "uint8":
            frames.append((value * 255).astype(np.uint8))
        else:  # thermal counts that spill past the configured range on both ends
            frames.append((15000 + value * 30000).astype(np.uint16))
    return frames[0], frames[1]


def _paired_csv(folder: Path, co2: np.ndarray, ch4: np.ndarray) -> Path:
    mask = np.zeros(co2.shape[:2], np.uint8)
    for gas, image in (("co2", co2), ("ch4", ch4)):
        write_png(folder / "cam" / gas / "0001.png", image)
        write_png(folder / f"{gas}_mask.png", mask)
    row = "a1,s1,6.2,Healthy,cam/co2/0001.png,co2_mask.png,0.0,cam/ch4/0001.png,ch4_mask.png,0.01"
    path = folder / "paired_test.csv"
    path.write_text(f"{PAIRED_COLUMNS}\n{row}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("frame_size", FRAME_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_training_calibration_parity_and_device_paths_make_identical_inputs(
    dtype: str, frame_size: tuple[int, int], tmp_path: Path
) -> None:
    data_config = load_data_config()
    data_config = replace(data_config, images=replace(data_config.images, uint16_range=(20000.0, 40000.0)))
    co2, ch4 = _frames(dtype, frame_size)
    csv_path = _paired_csv(tmp_path, co2, ch4)
    recorded = data_config.images.preprocessing(MODEL_SIZE)  # what `train` writes into the checkpoint

    training = PairedFrameDataset(csv_path, train=False, config=data_config, size=MODEL_SIZE)[0]
    calibration = labelled_input(read_samples(csv_path)[0], recorded)
    parity = csv_check_pairs(csv_path, 1, recorded)[0]  # the pair is checked in the "both" case
    cameras = {gas: ImageFolder(f"--{gas}", tmp_path / "cam" / gas, fps=10.0, loop=False) for gas in ("co2", "ch4")}
    images = tuple(cameras[gas].read()[0] for gas in ("co2", "ch4"))  # type: ignore[index]
    device = ModelInputs(("co2", "ch4"), {gas: camera_preprocessing(recorded, None, gas) for gas in ("co2", "ch4")})
    device_co2, device_ch4, _ = device.prepare(images)

    for gas, device_input in (("co2", device_co2), ("ch4", device_ch4)):
        expected = training[gas].numpy()[None]
        assert expected.shape == (1, 1, MODEL_SIZE[1], MODEL_SIZE[0])
        np.testing.assert_array_equal(device_input, expected)
        np.testing.assert_array_equal(getattr(calibration, gas), expected)
        np.testing.assert_array_equal(parity[0 if gas == "co2" else 1], expected)


def test_sixteen_bit_range_is_applied_and_clipped() -> None:
    pre = Preprocessing((4, 1), uint16_range=(7000.0, 8000.0))
    counts = np.array([[7000, 7500, 8000, 9000]], np.uint16)
    np.testing.assert_allclose(pre.to_input(counts)[0, 0], [[0.0, 0.5, 1.0, 1.0]])
    np.testing.assert_allclose(
        Preprocessing((4, 1), uint8_scale=200.0).to_input(np.array([[0, 100, 200, 255]], np.uint8))[0, 0],
        [[0.0, 0.5, 1.0, 1.0]],
    )


def test_a_run_yaml_range_that_contradicts_the_model_is_one_clear_error() -> None:
    model = Preprocessing(MODEL_SIZE, uint16_range=(20000.0, 40000.0))
    assert camera_preprocessing(model, (20000, 40000), "co2") is model  # saying the same thing is fine
    with pytest.raises(
        FumeEdgeError,
        match=r"sources.ch4.value_range \[0, 65535\] contradicts the model, trained on "
        r"16-bit counts \[20000, 40000\]",
    ):
        camera_preprocessing(model, (0, 65535), "ch4")


def test_preprocessing_travels_from_checkpoint_to_onnx_metadata_to_backend() -> None:
    pre = Preprocessing((320, 256), uint8_scale=255.0, uint16_range=(1000.0, 9000.0), resize="linear")
    ckpt = Checkpoint(architecture="seg_only", arch_kwargs={}, state_dict={}, preprocessing=pre)
    assert checkpoint_from_dict(ckpt.to_dict(), "x.pt").preprocessing == pre
    contract = ckpt.contract("x.pt")
    meta = contract.to_metadata()
    assert json.loads(meta["fume_edge.preprocessing"])["uint16_range"] == [1000.0, 9000.0]
    assert ModelContract.from_metadata(meta, "x.onnx") == dataclasses.replace(contract, source="x.onnx")
    assert ModelContract.from_metadata(meta, "x.onnx").heads == ("co2_seg", "ch4_seg")


def test_older_model_files_without_a_preprocessing_record_get_the_documented_defaults() -> None:
    legacy = {"fume_edge.input_size": "[320, 256]", "fume_edge.normalization": '{"offset": 0.0, "scale": 255.0}'}
    assert ModelContract.from_metadata(legacy, "old.onnx").preprocessing == Preprocessing((320, 256))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("uint16_range", [9000, 1000], "preprocessing.uint16_range: expected \\[low, high\\]"),
        ("resize", "cubic", "preprocessing.resize: expected one of area, linear"),
    ],
)
def test_a_malformed_preprocessing_record_names_the_file_and_field(field: str, value: object, message: str) -> None:
    record = Preprocessing().to_dict() | {field: value}
    with pytest.raises(FumeEdgeError, match=f"model.onnx: {message}"):
        Preprocessing.from_dict(record, "model.onnx")
