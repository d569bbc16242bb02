"""Synthetic OGI data: class frequencies near the request, masks exactly on the rendered plume, gas areas that move
with pH, seeded determinism, the real on-disk format, all-or-nothing output, and paired videos with faults."""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from data_support import small_config

from fume_edge.config import replace
from fume_edge.data import synth_dataset
from fume_edge.data.config import Outage, Segment
from fume_edge.data.pairing import pair_frames
from fume_edge.data.records import read_annotations
from fume_edge.data.synth_dataset import plan_sessions, write_synthetic_dataset
from fume_edge.data.synth_video import VIDEO_COLUMNS, video_frame_count, write_paired_videos
from fume_edge.data.synthetic import SyntheticScene
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import GAS_CLASS_ID, PH_CLASS_NAMES

CONFIG = small_config()


def gas_area(mask: np.ndarray) -> float:
    return float(np.mean(mask == GAS_CLASS_ID))


def test_plan_follows_class_frequencies_and_co2_share() -> None:
    plans = plan_sessions(CONFIG.synthetic, CONFIG.ph_classes, pairs=2000, seed=0)
    pairs = Counter()
    for plan in plans:
        pairs[PH_CLASS_NAMES[CONFIG.ph_classes.classify(plan.ph)]] += plan.pairs
    assert sum(pairs.values()) == 2000
    for name, share in CONFIG.synthetic.class_frequencies.items():
        assert abs(pairs[name] / 2000 - share) < 0.002, name
    frames = sum(p.frames for p in plans)
    co2 = sum(p.pairs + p.extra_co2 for p in plans)
    assert abs(co2 / frames - CONFIG.synthetic.co2_share) < 0.002
    rare = [p.animal_id for p in plans if CONFIG.ph_classes.classify(p.ph) == PH_CLASS_NAMES.index("Transitional")]
    assert len(set(rare)) == len(rare) == CONFIG.synthetic.min_sessions_per_class
    assert len({(p.animal_id, p.session_id) for p in plans}) == len(plans)
    assert plans == plan_sessions(CONFIG.synthetic, CONFIG.ph_classes, pairs=2000, seed=0)


@pytest.mark.parametrize("gas", ["co2", "ch4"])
def test_mask_is_exactly_the_rendered_plume(gas: str) -> None:
    for seed in range(4):
        scene = SyntheticScene(seed, 320, 240)
        for t in (0.0, 2.5, 11.0):
            with_gas, mask = scene.render(gas, 1.2, t)
            without, tube_only = scene.render(gas, 0.0, t)  # same time: same noise, same drift
            diff = np.abs(with_gas.astype(int) - without.astype(int))
            plume = mask == GAS_CLASS_ID
            assert plume.mean() > 0.01
            assert np.all(diff[~plume] == 0), "gas drawn outside its mask"
            assert np.percentile(diff[plume], 1) >= 5, "mask pixels without visible gas"
            assert set(np.unique(tube_only)) == {0, 1} and np.all(mask[~plume] == tube_only[~plume])


def test_gas_areas_move_with_ph() -> None:
    low, high = [], []
    for seed in range(6):
        scene = SyntheticScene(seed, 160, 120, activity=1.0)
        for t in (1.0, 7.0):
            low.append([gas_area(m) for m in scene.render_pair(5.3, t)[2:]])
            high.append([gas_area(m) for m in scene.render_pair(6.4, t)[2:]])
    low_a, high_a = np.array(low), np.array(high)
    assert np.all(low_a[:, 0] > high_a[:, 0]), "less CO2 at high pH"
    assert np.all(low_a[:, 1] < high_a[:, 1]), "more CH4 at high pH"


def test_render_is_deterministic_and_evolves_over_time() -> None:
    a, b = SyntheticScene(5, 160, 120), SyntheticScene(5, 160, 120)
    first, again = a.render_pair(5.9, 3.0), b.render_pair(5.9, 3.0)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    later = a.render_pair(5.9, 4.0)
    assert not np.array_equal(first.co2_mask, later.co2_mask)
    assert first.co2.dtype == np.uint8 and first.co2.shape == (120, 160) and first.co2_mask.dtype == np.uint8


def _dataset(tmp_path: Path, name: str, workers: int = 1) -> Path:
    plans = plan_sessions(CONFIG.synthetic, CONFIG.ph_classes, pairs=40, seed=4)
    return write_synthetic_dataset(tmp_path / name, plans, CONFIG.synthetic, seed=4, workers=workers)


def test_dataset_is_in_the_real_format_and_pairs_as_planned(tmp_path: Path) -> None:
    frames = read_annotations(_dataset(tmp_path, "ds"))
    plans = plan_sessions(CONFIG.synthetic, CONFIG.ph_classes, pairs=40, seed=4)
    assert len(frames) == sum(p.frames for p in plans)
    samples, warnings = pair_frames(frames, CONFIG.pairing.tolerance_s, CONFIG.ph_classes)
    assert sum(s.co2 is not None and s.ch4 is not None for s in samples) == 40
    assert sum(s.ch4 is None for s in samples) == sum(p.extra_co2 for p in plans)
    assert warnings == []
    image = cv2.imread(str(frames[0].image), cv2.IMREAD_UNCHANGED)
    mask = cv2.imread(str(frames[0].mask), cv2.IMREAD_UNCHANGED)
    assert image.shape == mask.shape == (72, 96) and image.dtype == mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1, 2}


def test_dataset_is_identical_for_a_seed_and_any_worker_count(tmp_path: Path) -> None:
    one, two = _dataset(tmp_path, "one", workers=1), _dataset(tmp_path, "two", workers=2)
    assert one.read_text() == two.read_text()
    names = sorted(p.relative_to(one.parent) for p in one.parent.rglob("*.png"))
    assert names == sorted(p.relative_to(two.parent) for p in two.parent.rglob("*.png"))
    for name in names[::7]:
        assert (one.parent / name).read_bytes() == (two.parent / name).read_bytes()


def test_failed_generation_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fail_on_third(*args: object) -> list:
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(*args)

    real = synth_dataset.render_session
    monkeypatch.setattr(synth_dataset, "render_session", fail_on_third)
    with pytest.raises(OSError):
        _dataset(tmp_path, "ds")
    assert list(tmp_path.iterdir()) == []


def test_non_empty_output_needs_overwrite(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("mine")
    with pytest.raises(FumeEdgeError, match="not empty"):
        _dataset(tmp_path, "ds")
    assert (tmp_path / "ds" / "keep.txt").read_text() == "mine"


def _read_video(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def test_paired_videos_carry_offset_jitter_drops_and_outage(tmp_path: Path) -> None:
    video = replace(
        CONFIG.synthetic.video,
        fps=10.0,
        clock_offset_s=0.25,
        jitter_s=0.004,
        drop_rate=0.1,
        outage=Outage(gas="ch4", start_s=1.0, seconds=0.5),
        segments=(Segment(ph=6.3, seconds=1.5), Segment(ph=5.4, seconds=1.5)),
    )
    synthetic = replace(CONFIG.synthetic, video=video)
    paths = write_paired_videos(tmp_path / "vid", synthetic, CONFIG.ph_classes, seed=2)
    n = video_frame_count(video)
    assert n == 30
    for gas, path in paths.items():
        with (tmp_path / "vid" / f"{gas}.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert tuple(rows[0]) == VIDEO_COLUMNS and len(rows) == n
        delivered = [r for r in rows if r["dropped"] == "0"]
        frames = _read_video(path)
        assert len(frames) == len(delivered) and frames[0].shape[:2] == (72, 96)
        assert [int(r["video_frame"]) for r in delivered] == list(range(len(delivered)))
        offset = 0.25 if gas == "ch4" else 0.0
        for r in rows:
            k, stamp, true_time = int(r["frame_index"]), float(r["timestamp_s"]), float(r["true_time_s"])
            assert stamp - true_time == pytest.approx(offset, abs=2e-6)
            assert abs(true_time - k / 10.0) <= 0.004 + 1e-6
        lost = {int(r["frame_index"]) for r in rows if r["outage"] == "1"}
        assert lost == (set(range(10, 15)) if gas == "ch4" else set())
        assert all(rows[k]["dropped"] == "1" for k in lost)
        assert {r["ph_class"] for r in rows[:15]} == {"Healthy"} and {r["ph_class"] for r in rows[15:]} == {"Acidotic"}
    rerun = write_paired_videos(tmp_path / "again", synthetic, CONFIG.ph_classes, seed=2)
    assert (tmp_path / "vid" / "ch4.csv").read_text() == (tmp_path / "again" / "ch4.csv").read_text()
    assert len(_read_video(rerun["co2"])) == len(_read_video(paths["co2"]))


def test_synthetic_module_imports_without_torch() -> None:
    import subprocess

    code = (
        "import sys; import fume_edge.data.synthetic, fume_edge.data.pairing, fume_edge.data.synth_video; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
