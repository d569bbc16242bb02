"""Helpers for the capture-loop tests: a small real ONNX model, run configs in a temp folder, synthetic paired
videos with their ground truth, and tiny frame readers for faults that real files cannot produce on demand."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import numpy as np
import pytest

from fume_edge.config import Override, merge, replace
from fume_edge.data.config import Outage, Segment, load_data_config
from fume_edge.data.synth_video import write_paired_videos
from fume_edge.pipeline.config import RunConfig, load_run_config
from fume_edge.pipeline.sources import SourceLost

UPSTREAM = Path(__file__).parent / "fixtures" / "upstream_fume" / "upstream_fume_fastscnn_shared.pth"
MODEL_SIZE = (128, 96)  # (width, height): small, so the loop tests stay fast on two CPU cores
FRAME_SIZE = (160, 120)  # synthetic camera frames, resized to the model size like real ones


def make_small_onnx(folder: Path) -> Path:
    """The research fixture imported and exported at MODEL_SIZE (made once per test session and folder)."""
    onnx_path = folder / "fume_small.onnx"
    if onnx_path.is_file():
        return onnx_path
    from fume_edge.model.checkpoint import save_checkpoint
    from fume_edge.deploy.onnx.onnx_export import export_onnx
    from fume_edge.deploy.upstream_import import import_research_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = save_checkpoint(import_research_checkpoint(UPSTREAM).checkpoint, folder / "fume_small.pt")
    export_onnx(checkpoint, onnx_path, size=MODEL_SIZE)
    return onnx_path


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_small_onnx(tmp_path_factory.getbasetemp() / "pipeline_model")


def run_config(tmp_path: Path, overrides: dict[str, Any] | None = None, synthetic: bool = False) -> RunConfig:
    """The packaged run.yaml with the alert database in `tmp_path`, small synthetic frames, and `overrides`."""
    base = {
        "sinks": {"sqlite": {"path": str(tmp_path / "alerts.db")}},
        "sources": {gas: {"width": FRAME_SIZE[0], "height": FRAME_SIZE[1]} for gas in ("co2", "ch4")},
    }
    config, _ = load_run_config(None, as_overrides(merge(base, overrides or {})), synthetic=synthetic)
    return config


def as_overrides(data: dict[str, Any], prefix: str = "") -> list[Override]:
    """A nested mapping of run.yaml keys as command-line style overrides (one per leaf key)."""
    out: list[Override] = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += as_overrides(value, dotted + ".")
        else:
            out.append(Override(dotted, value, f"test override {dotted}"))
    return out


def write_run_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def synthetic_videos(
    folder: Path,
    *,
    fps: float,
    seconds: float,
    clock_offset_s: float,
    jitter_s: float,
    drop_rate: float,
    outage: Outage | None = None,
    seed: int = 3,
) -> dict[str, Path]:
    """`fume-edge synth --videos` output (small frames): {gas}.avi and {gas}.csv per camera."""
    data = load_data_config()
    video = replace(
        data.synthetic.video,
        fps=fps,
        segments=(Segment(ph=6.2, seconds=seconds),),
        clock_offset_s=clock_offset_s,
        jitter_s=jitter_s,
        drop_rate=drop_rate,
        outage=outage,
    )
    synthetic = replace(data.synthetic, width=FRAME_SIZE[0], height=FRAME_SIZE[1], video=video)
    return write_paired_videos(folder, synthetic, data.ph_classes, seed=seed)


def ground_truth(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def true_pairs(folder: Path) -> set[tuple[int, int]]:
    """(co2 video frame, ch4 video frame) of every capture both cameras delivered."""
    delivered = {
        gas: {
            row["frame_index"]: int(row["video_frame"])
            for row in ground_truth(folder / f"{gas}.csv")
            if row["dropped"] == "0"
        }
        for gas in ("co2", "ch4")
    }
    return {(delivered["co2"][k], delivered["ch4"][k]) for k in delivered["co2"].keys() & delivered["ch4"].keys()}


class ScriptedCamera:
    """A live `FrameReader` that plays a script of frames (arrays or garbage) at `fps`, then dies (SourceLost)
    after `die_after` frames; used where no real device can be made to fail on cue."""

    live = True
    fps: float | None

    def __init__(self, name: str, frames: Iterator[Any], fps: float, die_after: int | None = None) -> None:
        self.name, self.fps, self._frames, self._die_after = name, fps, frames, die_after
        self._count = 0
        self._next = time.monotonic()

    def read(self) -> tuple[np.ndarray, float] | None:
        if self._die_after is not None and self._count >= self._die_after:
            raise SourceLost(f"{self.name}: unplugged")
        self._next += 1.0 / (self.fps or 30.0)
        time.sleep(max(0.0, self._next - time.monotonic()))
        self._count += 1
        return next(self._frames), time.monotonic()

    def close(self) -> None:
        pass


def noise_frames(shape: tuple[int, ...] = (FRAME_SIZE[1], FRAME_SIZE[0]), seed: int = 0) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    while True:
        yield rng.integers(0, 256, shape, dtype=np.uint8)
