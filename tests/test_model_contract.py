"""A model that does not meet the contract (DESIGN §4) is refused at load, by name, on every path that loads one."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from data_support import write_png
from onnx import TensorProto, helper

from fume_edge.errors import FumeEdgeError
from fume_edge.labels import GAS_CLASS_ID, PH_CLASS_NAMES
from fume_edge.runtime.base import load_backend
from fume_edge.runtime.pre import modality_mask

Surgery = Callable[[onnx.ModelProto], None]


def _after(model: onnx.ModelProto, output: str, make: Callable[[str, str], list[onnx.NodeProto]]) -> None:
    """Put the nodes `make(raw, output)` between the node producing `output` and the graph output."""
    raw = output + "_raw"
    for node in model.graph.node:
        node.output[:] = [raw if name == output else name for name in node.output]
    model.graph.node.extend(make(raw, output))


def _set_output(model: onnx.ModelProto, name: str, elem_type: int, shape: list[int]) -> None:
    outputs = list(model.graph.output)
    index = next(i for i, o in enumerate(outputs) if o.name == name)
    outputs[index] = helper.make_tensor_value_info(name, elem_type, shape)
    del model.graph.output[:]
    model.graph.output.extend(outputs)


def drop_ph_logits(model: onnx.ModelProto) -> None:
    kept = [o for o in model.graph.output if o.name != "ph_logits"]
    del model.graph.output[:]
    model.graph.output.extend(kept)


def five_ph_logits(model: onnx.ModelProto) -> None:
    model.graph.initializer.append(helper.make_tensor("two_more", TensorProto.FLOAT, [1, 2], [0.0, 0.0]))
    _after(model, "ph_logits", lambda raw, out: [helper.make_node("Concat", [raw, "two_more"], [out], axis=1)])
    _set_output(model, "ph_logits", TensorProto.FLOAT, [1, 5])


def float_masks(model: onnx.ModelProto) -> None:
    _after(model, "co2_seg", lambda raw, out: [helper.make_node("Cast", [raw], [out], to=TensorProto.FLOAT)])
    _set_output(model, "co2_seg", TensorProto.FLOAT, [1, 96, 128])


def nan_logits(model: onnx.ModelProto) -> None:
    model.graph.initializer.append(helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")]))
    _after(model, "ph_logits", lambda raw, out: [helper.make_node("Mul", [raw, "nan"], [out])])


def _set_meta(model: onnx.ModelProto, key: str, value: list[str]) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = json.dumps(value)


def _variant(base: Path, folder: Path, name: str, surgery: Surgery) -> Path:
    model = onnx.load(str(base))
    surgery(model)
    path = folder / f"{name}.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    "surgery, message",
    [
        (drop_ph_logits, r"output 'ph_logits' is missing \(has co2_seg, ch4_seg\)"),
        (five_ph_logits, r"output 'ph_logits' is float32\[1,5\], expected float32\[1,3\]"),
        (float_masks, r"output 'co2_seg' is float32\[1,96,128\], expected int32\[1,96,128\]"),
        (nan_logits, r"output 'ph_logits' is not finite on a plain test input"),
    ],
    ids=["missing output", "five pH logits", "float masks", "NaN logits"],
)
def test_a_model_that_breaks_the_contract_is_refused_at_load(
    surgery: Surgery, message: str, small_onnx: Path, tmp_path: Path
) -> None:
    broken = _variant(small_onnx, tmp_path, surgery.__name__, surgery)
    with pytest.raises(FumeEdgeError, match=message) as info:
        load_backend(broken, device="cpu")
    assert str(info.value).startswith(str(broken)) and "\n" not in str(info.value)


def test_run_and_eval_refuse_a_broken_model_with_one_line_and_exit_2(small_onnx: Path, tmp_path: Path) -> None:
    broken = _variant(small_onnx, tmp_path, "nan", nan_logits)
    frame = write_png(tmp_path / "frame.png", np.full((96, 128), 90, np.uint8))
    write_png(tmp_path / "mask.png", np.zeros((96, 128), np.uint8))
    paired = tmp_path / "paired_test.csv"
    paired.write_text(
        "animal_id,session_id,ph,ph_class,co2_image,co2_mask,co2_timestamp,ch4_image,ch4_mask,"
        f"ch4_timestamp\na1,s1,6.2,Healthy,{frame.name},mask.png,0,{frame.name},mask.png,0\n"
    )
    for args in (
        [
            "run",
            "--co2",
            "synthetic",
            "--ch4",
            "synthetic",
            "--model",
            str(broken),
            "--duration",
            "5",
            "--quiet",
            "--alerts",
            str(tmp_path / "a.db"),
        ],
        ["eval", str(broken), "--data", str(paired)],
    ):
        done = subprocess.run([sys.executable, "-m", "fume_edge", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert "output 'ph_logits' is not finite" in done.stderr and "Traceback" not in done.stderr


def test_class_names_in_the_metadata_decide_which_logit_is_acidotic_and_which_id_is_gas(
    small_onnx: Path, tmp_path: Path
) -> None:
    model_order = ["Acidotic", "Healthy", "Transitional"]  # the model's logit 0 is Acidotic
    seg_order = ["Gas", "Background", "Tube"]  # the model's class id 0 is gas

    def relabel(model: onnx.ModelProto) -> None:
        _set_meta(model, "fume_edge.class_names", model_order)
        _set_meta(model, "fume_edge.seg_class_names", seg_order)

    relabelled = _variant(small_onnx, tmp_path, "relabelled", relabel)
    rng = np.random.default_rng(0)
    co2, ch4 = (rng.random((1, 1, 96, 128), dtype=np.float32) for _ in range(2))
    with load_backend(small_onnx, device="cpu") as plain, load_backend(relabelled, device="cpu") as other:
        raw = plain.infer(co2, ch4, modality_mask(True, True))
        mapped = other.infer(co2, ch4, modality_mask(True, True))
    for ours, name in enumerate(PH_CLASS_NAMES):
        assert mapped.ph_logits[ours] == raw.ph_logits[model_order.index(name)]
    assert np.array_equal(mapped.seg["co2"] == GAS_CLASS_ID, raw.seg["co2"] == 0)
    assert mapped.gas_area["co2"] == pytest.approx(float(np.mean(raw.seg["co2"] == 0)))


def test_class_names_the_policy_cannot_map_are_refused(small_onnx: Path, tmp_path: Path) -> None:
    renamed = _variant(
        small_onnx, tmp_path, "renamed", lambda m: _set_meta(m, "fume_edge.class_names", ["low", "mid", "high"])
    )
    with pytest.raises(
        FumeEdgeError,
        match=r"pH class names \['low', 'mid', 'high'\] cannot be mapped onto "
        r"\['Healthy', 'Transitional', 'Acidotic'\]",
    ):
        load_backend(renamed, device="cpu")


def test_a_checkpoint_asked_to_run_on_tensorrt_says_how(imported_checkpoint: Path) -> None:
    for device, hint in (("tensorrt", "export"), ("gpu", "CUDA is not available"), ("npu", "auto, cpu or cuda")):
        with pytest.raises(FumeEdgeError, match=f"--device {device}: .*{hint}"):
            load_backend(imported_checkpoint, device=device)
