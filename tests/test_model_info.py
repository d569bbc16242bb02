"""`fume-edge info`: one tidy table for a checkpoint and an ONNX file, details sorted, nothing shown twice."""

from __future__ import annotations

from pathlib import Path

from fume_edge.assets import default_model_path
from fume_edge.deploy.model_info import model_info, tidy_details


def test_details_are_flat_sorted_and_readable() -> None:
    tidy = tidy_details({"b": {"y": 0.123456, "x": [1, 2]}, "a": None, "c": "text"})
    assert tidy == {"b.x": "1, 2", "b.y": "0.1235", "c": "text"}
    assert list(tidy) == sorted(tidy)


def test_onnx_details_skip_what_has_its_own_row() -> None:
    info = model_info(default_model_path())
    assert list(info.details) == sorted(info.details)
    for shown in ("input_size", "class_names", "seg_class_names", "parameters", "gflops", "architecture"):
        assert shown not in info.details
    assert all(isinstance(v, str) and not v.startswith(("{", "[")) for v in info.details.values())


def test_checkpoint_details_are_the_provenance_not_raw_dicts(imported_checkpoint: Path) -> None:
    info = model_info(imported_checkpoint)
    assert list(info.details) == sorted(info.details)
    assert info.details["source"] == "fume-research" and "metrics.best_metric" in info.details
    assert not any(v.startswith("{") for v in info.details.values())
