"""Typed data settings, filled from `fume_edge/configs/data.yaml` (the only place their default values live).

The dataclasses have no defaults on purpose: a value stated twice drifts apart, so the packaged YAML is the single
source and a user file only overrides keys. `PhClasses` is where a pH becomes a class for every part of fume-edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from fume_edge.config import load_config
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import GASES, PH_CLASS_NAMES
from fume_edge.runtime.pre import Preprocessing

HEALTHY, TRANSITIONAL, ACIDOTIC = (PH_CLASS_NAMES.index(n) for n in ("Healthy", "Transitional", "Acidotic"))


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise FumeEdgeError(f"{where}: {message}")


def _check_range(pair: tuple[float, float], where: str, low: float) -> None:
    _require(low <= pair[0] <= pair[1], where, f"expected [low, high] with {low} <= low <= high, got {list(pair)}")


@dataclass(frozen=True)
class PhClasses:
    """pH thresholds: Acidotic < acidotic_below <= Transitional < healthy_from <= Healthy."""

    acidotic_below: float
    healthy_from: float

    def validate(self, where: str) -> None:
        _require(self.acidotic_below < self.healthy_from, where, "acidotic_below must be below healthy_from")

    def classify(self, ph: float) -> int:
        """Class id (index into `PH_CLASS_NAMES`) of one pH value."""
        if ph < self.acidotic_below:
            return ACIDOTIC
        return TRANSITIONAL if ph < self.healthy_from else HEALTHY


@dataclass(frozen=True)
class SplitFractions:
    train: float
    val: float
    test: float

    def validate(self, where: str) -> None:
        values = self.as_tuple()
        _require(min(values) >= 0 and abs(sum(values) - 1.0) < 1e-6, where, "fractions must be >= 0 and sum to 1")

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.train, self.val, self.test)


@dataclass(frozen=True)
class PairingConfig:
    tolerance_s: float
    seed: int
    split: SplitFractions

    def validate(self, where: str) -> None:
        _require(self.tolerance_s >= 0, f"{where}.tolerance_s", "must be >= 0")


@dataclass(frozen=True)
class ImageConfig:
    uint16_range: tuple[float, float]

    def validate(self, where: str) -> None:
        lo, hi = self.uint16_range
        _require(0 <= lo < hi <= 65535, f"{where}.uint16_range", "expected [low, high] with 0 <= low < high <= 65535")

    def preprocessing(self, size: tuple[int, int]) -> Preprocessing:
        """The preprocessing contract these data settings make at a model input size (recorded in checkpoints)."""
        return Preprocessing(input_size=(int(size[0]), int(size[1])), uint16_range=self.uint16_range)


@dataclass(frozen=True)
class DatasetConfig:
    modality_dropout: float

    def validate(self, where: str) -> None:
        _require(0 <= self.modality_dropout <= 1, f"{where}.modality_dropout", "must be in [0, 1]")


@dataclass(frozen=True)
class AugmentConfig:
    hflip_p: float
    shift_scale_rotate_p: float
    shift_limit: float
    scale_limit: float
    rotate_limit_deg: float
    brightness_contrast_p: float
    brightness_limit: float
    contrast_limit: float
    gamma_p: float
    gamma_range: tuple[float, float]
    noise_p: float
    noise_std_range: tuple[float, float]
    blur_p: float
    blur_kernel_range: tuple[int, int]

    def validate(self, where: str) -> None:
        for name in ("hflip_p", "shift_scale_rotate_p", "brightness_contrast_p", "gamma_p", "noise_p", "blur_p"):
            _require(0 <= getattr(self, name) <= 1, f"{where}.{name}", "a probability must be in [0, 1]")
        _require(0 <= self.scale_limit < 1, f"{where}.scale_limit", "must be in [0, 1)")
        _check_range(self.gamma_range, f"{where}.gamma_range", low=1e-3)
        _check_range(self.noise_std_range, f"{where}.noise_std_range", low=0.0)
        lo, hi = self.blur_kernel_range
        _require(3 <= lo <= hi and lo % 2 == 1 and hi % 2 == 1, f"{where}.blur_kernel_range", "expected odd sizes >= 3")


@dataclass(frozen=True)
class GasResponse:
    """How much of each gas a sample releases at a pH (see data.yaml)."""

    center_ph: float
    steepness: float
    floor: float
    span: float

    def amounts(self, ph: float, activity: float) -> tuple[float, float]:
        """(co2, ch4) gas amounts: lower pH releases more CO2 and less CH4."""
        s = 1.0 / (1.0 + math.exp(-self.steepness * (self.center_ph - ph)))
        return activity * (self.floor + self.span * s), activity * (self.floor + self.span * (1.0 - s))


@dataclass(frozen=True)
class Outage:
    gas: str
    start_s: float
    seconds: float

    def validate(self, where: str) -> None:
        _require(self.gas in GASES, f"{where}.gas", f"expected one of {', '.join(GASES)}, got {self.gas!r}")
        _require(self.start_s >= 0 and self.seconds > 0, where, "start_s must be >= 0 and seconds > 0")


@dataclass(frozen=True)
class Segment:
    ph: float
    seconds: float

    def validate(self, where: str) -> None:
        _require(self.seconds > 0, f"{where}.seconds", "must be > 0")


@dataclass(frozen=True)
class VideoConfig:
    fps: float
    segments: tuple[Segment, ...]
    clock_offset_s: float
    jitter_s: float
    drop_rate: float
    outage: Outage | None

    def validate(self, where: str) -> None:
        _require(self.fps > 0, f"{where}.fps", "must be > 0")
        _require(len(self.segments) > 0, f"{where}.segments", "list at least one {ph, seconds} segment")
        _require(0 <= self.jitter_s < 0.5 / self.fps, f"{where}.jitter_s", "must be >= 0 and under half a frame")
        _require(0 <= self.drop_rate < 1, f"{where}.drop_rate", "must be in [0, 1)")


@dataclass(frozen=True)
class SyntheticConfig:
    width: int
    height: int
    animals: int
    sessions_per_animal: int
    class_frequencies: dict[str, float]
    min_sessions_per_class: int
    co2_share: float
    ph_levels: tuple[float, ...]
    capture_interval_s: float
    pair_jitter_s: float
    activity_range: tuple[float, float]
    response: GasResponse
    video: VideoConfig

    def validate(self, where: str) -> None:
        _require(self.width >= 64 and self.height >= 64, where, "width and height must be at least 64")
        _require(self.animals >= 1 and self.sessions_per_animal >= 1, where, "need at least one animal and session")
        unknown = set(self.class_frequencies) - set(PH_CLASS_NAMES)
        _require(not unknown, f"{where}.class_frequencies", f"unknown class {sorted(unknown)}; use {PH_CLASS_NAMES}")
        freqs = list(self.class_frequencies.values())
        _require(min(freqs) >= 0 and sum(freqs) > 0, f"{where}.class_frequencies", "need non-negative weights")
        _require(0.5 <= self.co2_share < 1, f"{where}.co2_share", "must be in [0.5, 1): every CH4 frame is paired")
        _require(len(self.ph_levels) > 0, f"{where}.ph_levels", "list at least one pH level")
        _require(0 <= self.pair_jitter_s < self.capture_interval_s / 2, where, "pair_jitter_s must be under half "
                 "of capture_interval_s")
        _check_range(self.activity_range, f"{where}.activity_range", low=1e-3)


@dataclass(frozen=True)
class DataConfig:
    ph_classes: PhClasses
    pairing: PairingConfig
    images: ImageConfig
    dataset: DatasetConfig
    augment: AugmentConfig
    synthetic: SyntheticConfig


def load_data_config(path: str | Path | None = None) -> DataConfig:
    """Packaged data settings, overridden by the YAML file at `path` when given."""
    return load_config(DataConfig, "data", path)
