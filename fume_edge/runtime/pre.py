"""Camera frame → model input: the one preprocessing contract, carried by the model file.

A model is trained on inputs made one way (8-bit scale, 16-bit counts range, resize method, input size); the device
must make them the same way or it silently computes something that was never validated. `Preprocessing` holds those
settings; the checkpoint (`train`, `import`), the ONNX metadata and the engine sidecar carry it, and its
`to_input` is the one function training, eval, calibration, parity checks and the capture loop call.

Order: to gray in the frame's own type, scale to float32 [0, 1] (clipped), then resize the float image, so no
integer rounding happens between the camera and the model at any size.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from fume_edge.errors import FumeEdgeError
from fume_edge.labels import INPUT_HEIGHT, INPUT_WIDTH


class InvalidFrame(ValueError):
    """A frame that cannot be a camera image (empty, wrong rank/channels/dtype); the pipeline skips and counts it."""


# Resize rules by name. `area`: OpenCV's advice, INTER_AREA when shrinking, INTER_LINEAR when enlarging.
RESIZE_METHODS = ("area", "linear")


def to_gray(frame: np.ndarray) -> np.ndarray:
    """(H,W), (H,W,1), (H,W,3) BGR or (H,W,4) BGRA → (H,W) of the same dtype."""
    if not isinstance(frame, np.ndarray) or frame.size == 0:
        raise InvalidFrame("empty frame")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    raise InvalidFrame(f"unsupported frame shape {frame.shape}")


def normalize(gray: np.ndarray, value_range: tuple[float, float], out: np.ndarray | None = None) -> np.ndarray:
    """(gray - low) / (high - low) as float32, clipped to [0, 1]; `out` (float32, gray's shape) is reused if given."""
    low, high = value_range
    out = np.empty(gray.shape, np.float32) if out is None else out
    np.subtract(gray, np.float32(low), out=out, casting="unsafe")
    np.multiply(out, np.float32(1.0 / (high - low)), out=out)
    return np.clip(out, 0.0, 1.0, out=out)


@functools.lru_cache(maxsize=8)
def _uint8_table(scale: float) -> np.ndarray:
    """The 256 normalised 8-bit values, computed by `normalize` itself: a lookup gives bit-identical results."""
    table = normalize(np.arange(256, dtype=np.uint8), (0.0, scale))
    table.flags.writeable = False
    return table


@dataclass(frozen=True)
class Preprocessing:
    """How a raw frame becomes the model's (1,1,H,W) float32 input in [0, 1]."""

    input_size: tuple[int, int] = (INPUT_WIDTH, INPUT_HEIGHT)  # (width, height)
    uint8_scale: float = 255.0  # 8-bit frames: value / uint8_scale
    uint16_range: tuple[float, float] = (0.0, 65535.0)  # 16-bit thermal counts mapped to [0, 1]
    resize: str = "area"  # one of RESIZE_METHODS

    def __post_init__(self) -> None:
        width, height = self.input_size
        low, high = self.uint16_range
        problems = [
            (width > 0 and height > 0, "input_size", f"expected positive (width, height), got {self.input_size}"),
            (self.uint8_scale > 0, "uint8_scale", f"expected a positive number, got {self.uint8_scale}"),
            (
                0 <= low < high <= 65535,
                "uint16_range",
                f"expected [low, high] with 0 <= low < high <= 65535, got {list(self.uint16_range)}",
            ),
            (
                self.resize in RESIZE_METHODS,
                "resize",
                f"expected one of {', '.join(RESIZE_METHODS)}, got {self.resize!r}",
            ),
        ]
        for ok, name, message in problems:
            if not ok:
                raise FumeEdgeError(f"preprocessing.{name}: {message}")

    def value_range(self, dtype: np.dtype) -> tuple[float, float]:
        """The raw (low, high) that maps to [0, 1] for frames of this type."""
        dtype = np.dtype(dtype)
        if dtype == np.uint8:
            return 0.0, self.uint8_scale
        if dtype == np.uint16:
            return self.uint16_range
        if dtype == np.float32:
            return 0.0, 1.0
        raise InvalidFrame(f"unsupported frame dtype {dtype}")

    def to_input(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Any camera frame → float32 (1,1,H,W) in [0,1] at the model's size; `out` is reused when given."""
        gray = to_gray(frame)
        width, height = self.input_size
        out = np.empty((1, 1, height, width), np.float32) if out is None else out
        plane = out[0, 0]
        native = gray.shape == (height, width)
        target = plane if native else None
        if gray.dtype == np.uint8:
            scaled = cv2.LUT(gray, _uint8_table(float(self.uint8_scale)), dst=target)
        else:
            scaled = normalize(gray, self.value_range(gray.dtype), out=target)
        if not native:
            shrinking = gray.shape[0] > height
            interpolation = cv2.INTER_AREA if self.resize == "area" and shrinking else cv2.INTER_LINEAR
            cv2.resize(scaled, (width, height), dst=plane, interpolation=interpolation)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> Preprocessing:
        """Read what `to_dict` wrote; a malformed entry is one error naming `source` and the field."""
        try:
            width, height = (int(v) for v in data["input_size"])
            low, high = (float(v) for v in data["uint16_range"])
            return cls((width, height), float(data["uint8_scale"]), (low, high), str(data["resize"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise FumeEdgeError(
                f"{source}: malformed preprocessing record ({type(exc).__name__}: {exc}); "
                "re-export the model with `fume-edge export`"
            ) from None
        except FumeEdgeError as exc:
            raise FumeEdgeError(f"{source}: {exc}") from None


def modality_mask(use_co2: bool, use_ch4: bool) -> np.ndarray:
    """The (1,2) float32 mask the model takes: [use_co2, use_ch4]."""
    return np.array([[float(use_co2), float(use_ch4)]], dtype=np.float32)
