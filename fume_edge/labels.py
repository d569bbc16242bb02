"""Names and sizes every part of fume-edge agrees on (model heads, data, runtime, alerts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

PH_CLASS_NAMES: tuple[str, ...] = ("Healthy", "Transitional", "Acidotic")
SEG_CLASS_NAMES: tuple[str, ...] = ("Background", "Tube", "Gas")
GAS_CLASS_ID = 2
Gas = Literal["co2", "ch4"]
GASES: tuple[str, ...] = get_args(Gas)
INPUT_WIDTH = 640
INPUT_HEIGHT = 480
INPUT_SIZE_TEXT = f"{INPUT_WIDTH}x{INPUT_HEIGHT}"  # as WIDTHxHEIGHT options write it

# Keys of a model's forward() output. A model without a head (a baseline) omits that key.
PH_LOGITS = "ph_logits"
CO2_SEG_LOGITS = "co2_seg_logits"
CH4_SEG_LOGITS = "ch4_seg_logits"
SEG_LOGITS: Mapping[str, str] = {"co2": CO2_SEG_LOGITS, "ch4": CH4_SEG_LOGITS}  # forward() key of each gas's logits
