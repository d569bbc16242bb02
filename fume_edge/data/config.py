"""Typed data settings, filled from `fume_edge/configs/data.yaml` (the only place their default values live).

The models have no defaults on purpose: a value stated twice drifts apart, so the packaged YAML is the single
source and a user file only overrides keys. `PhClasses` is where a pH becomes a class for every part of fume-edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from fume_edge.config import (
    MAX_SECONDS,
    ConfigModel,
    Fps,
    Fraction,
    Override,
    PositiveSeconds,
    Seconds,
    Seed,
    TopConfig,
    load_config,
)
from fume_edge.labels import PH_CLASS_NAMES, Gas
from fume_edge.runtime.pre import Preprocessing

HEALTHY, TRANSITIONAL, ACIDOTIC = (PH_CLASS_NAMES.index(n) for n in ("Healthy", "Transitional", "Acidotic"))

Ph = Annotated[float, Field(ge=0, le=14)]
# The chance a paired training sample loses one gas. Below 1: at 1 the model would never see both gases together.
DropoutProbability = Annotated[float, Field(ge=0, lt=1)]
PhClassName = Literal[PH_CLASS_NAMES]  # type: ignore[valid-type]  # one of the names, as a type


def _ordered(pair: tuple[float, float], name: str, low: float) -> None:
    if not low <= pair[0] <= pair[1]:
        raise ValueError(f"{name}: expected [low, high] with {low:g} <= low <= high, got {list(pair)}")


class PhClasses(ConfigModel):
    """pH thresholds: Acidotic < acidotic_below <= Transitional < healthy_from <= Healthy."""

    acidotic_below: Ph
    healthy_from: Ph

    @model_validator(mode="after")
    def _ordered(self) -> PhClasses:
        if not self.acidotic_below < self.healthy_from:
            raise ValueError("acidotic_below: must be below healthy_from")
        return self

    def classify(self, ph: float) -> int:
        """Class id (index into `PH_CLASS_NAMES`) of one pH value."""
        if ph < self.acidotic_below:
            return ACIDOTIC
        return TRANSITIONAL if ph < self.healthy_from else HEALTHY


class SplitFractions(ConfigModel):
    train: Fraction
    val: Fraction
    test: Fraction

    @model_validator(mode="after")
    def _sum(self) -> SplitFractions:
        if abs(sum(self.as_tuple()) - 1.0) >= 1e-6:
            raise ValueError(f"fractions must sum to 1, got {sum(self.as_tuple()):g}")
        return self

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.train, self.val, self.test)


class PairingConfig(ConfigModel):
    tolerance_s: Seconds
    seed: Seed
    split: SplitFractions


class ImageConfig(ConfigModel):
    uint16_range: tuple[Annotated[float, Field(ge=0, le=65535)], Annotated[float, Field(ge=0, le=65535)]]

    @model_validator(mode="after")
    def _ordered(self) -> ImageConfig:
        if not self.uint16_range[0] < self.uint16_range[1]:
            raise ValueError(f"uint16_range: expected [low, high] with low < high, got {list(self.uint16_range)}")
        return self

    def preprocessing(self, size: tuple[int, int]) -> Preprocessing:
        """The preprocessing contract these data settings make at a model input size (recorded in checkpoints)."""
        return Preprocessing(input_size=(int(size[0]), int(size[1])), uint16_range=self.uint16_range)


class DatasetConfig(ConfigModel):
    modality_dropout: DropoutProbability


OddKernel = Annotated[int, Field(ge=3, le=99)]


class AugmentConfig(ConfigModel):
    hflip_p: Fraction
    shift_scale_rotate_p: Fraction
    shift_limit: Fraction
    scale_limit: Annotated[float, Field(ge=0, lt=1)]
    rotate_limit_deg: Annotated[float, Field(ge=0, le=180)]
    brightness_contrast_p: Fraction
    brightness_limit: Fraction
    contrast_limit: Fraction
    gamma_p: Fraction
    gamma_range: tuple[Annotated[float, Field(le=10)], Annotated[float, Field(le=10)]]
    noise_p: Fraction
    noise_std_range: tuple[Fraction, Fraction]
    blur_p: Fraction
    blur_kernel_range: tuple[OddKernel, OddKernel]

    @model_validator(mode="after")
    def _ranges(self) -> AugmentConfig:
        _ordered(self.gamma_range, "gamma_range", low=1e-3)
        _ordered(self.noise_std_range, "noise_std_range", low=0.0)
        lo, hi = self.blur_kernel_range
        if not (lo <= hi and lo % 2 == 1 and hi % 2 == 1):
            raise ValueError(f"blur_kernel_range: expected odd sizes [low, high] with low <= high, got {[lo, hi]}")
        return self


class GasResponse(ConfigModel):
    """How much of each gas a sample releases at a pH (see data.yaml)."""

    center_ph: Ph
    steepness: Annotated[float, Field(ge=0, le=1000)]
    floor: Annotated[float, Field(ge=0, le=100)]
    span: Annotated[float, Field(ge=0, le=100)]

    def amounts(self, ph: float, activity: float) -> tuple[float, float]:
        """(co2, ch4) gas amounts: lower pH releases more CO2 and less CH4."""
        s = 1.0 / (1.0 + math.exp(-self.steepness * (self.center_ph - ph)))
        return activity * (self.floor + self.span * s), activity * (self.floor + self.span * (1.0 - s))


class Outage(ConfigModel):
    gas: Gas
    start_s: Seconds
    seconds: PositiveSeconds


class Segment(ConfigModel):
    ph: Ph
    seconds: PositiveSeconds


class VideoConfig(ConfigModel):
    fps: Fps
    segments: Annotated[tuple[Segment, ...], Field(min_length=1)]
    clock_offset_s: Annotated[float, Field(ge=-MAX_SECONDS, le=MAX_SECONDS)]
    jitter_s: Seconds
    drop_rate: Annotated[float, Field(ge=0, lt=1)]
    outage: Outage | None

    @model_validator(mode="after")
    def _jitter(self) -> VideoConfig:
        if not self.jitter_s < 0.5 / self.fps:
            raise ValueError(f"jitter_s: must be under half a frame ({0.5 / self.fps:g} s at {self.fps:g} FPS)")
        return self


class SyntheticConfig(ConfigModel):
    width: Annotated[int, Field(ge=64, le=4096)]
    height: Annotated[int, Field(ge=64, le=4096)]
    animals: Annotated[int, Field(ge=1, le=100_000)]
    sessions_per_animal: Annotated[int, Field(ge=1, le=10_000)]
    class_frequencies: dict[PhClassName, Annotated[float, Field(ge=0, le=1e6)]]
    min_sessions_per_class: Annotated[int, Field(ge=0, le=100_000)]
    co2_share: Annotated[float, Field(ge=0.5, lt=1)]  # every CH4 frame is paired
    ph_levels: Annotated[tuple[Ph, ...], Field(min_length=1)]
    capture_interval_s: PositiveSeconds
    pair_jitter_s: Seconds
    activity_range: tuple[Annotated[float, Field(le=1000)], Annotated[float, Field(le=1000)]]
    response: GasResponse
    video: VideoConfig

    @model_validator(mode="after")
    def _consistent(self) -> SyntheticConfig:
        if sum(self.class_frequencies.values()) <= 0:
            raise ValueError("class_frequencies: need a weight above 0")
        if not self.pair_jitter_s < self.capture_interval_s / 2:
            raise ValueError("pair_jitter_s: must be under half of capture_interval_s")
        _ordered(self.activity_range, "activity_range", low=1e-3)
        return self


class DataConfig(TopConfig):
    defaults_name = "data"

    ph_classes: PhClasses
    pairing: PairingConfig
    images: ImageConfig
    dataset: DatasetConfig
    augment: AugmentConfig
    synthetic: SyntheticConfig


def load_data_config(path: str | Path | None = None, overrides: Iterable[Override] = ()) -> DataConfig:
    """Packaged data settings, overridden by the YAML file at `path` when given, then by command-line options."""
    return load_config(DataConfig, path, overrides)
