"""Camera frame → model input. Pure functions on arrays, shared by every backend, the pipeline and calibration."""

from __future__ import annotations

import cv2
import numpy as np


class InvalidFrame(ValueError):
    """A frame that cannot be a camera image (empty, wrong rank/channels/dtype); the pipeline skips and counts it."""


# The value range a frame type spans when no range is configured (16-bit thermal usually sets one).
FULL_RANGE = {np.dtype(np.uint8): (0.0, 255.0), np.dtype(np.uint16): (0.0, 65535.0), np.dtype(np.float32): (0.0, 1.0)}


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


def normalize(
    gray: np.ndarray, value_range: tuple[float, float] | None = None, out: np.ndarray | None = None
) -> np.ndarray:
    """Scale to float32 [0,1]: by the frame type's full range unless a (low, high) range is given (16-bit thermal).

    `out` (float32, gray's shape) lets the capture loop reuse one buffer per camera.
    """
    value_range = value_range or FULL_RANGE.get(gray.dtype)
    if value_range is None:
        raise InvalidFrame(f"unsupported frame dtype {gray.dtype}")
    low, high = value_range
    out = np.empty(gray.shape, np.float32) if out is None else out
    np.subtract(gray, np.float32(low), out=out, casting="unsafe")
    np.multiply(out, np.float32(1.0 / (high - low)), out=out)
    return np.clip(out, 0.0, 1.0, out=out)


def frame_to_input(
    frame: np.ndarray, size: tuple[int, int], value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Any camera frame → float32 (1,1,H,W) in [0,1] at the model's (width, height)."""
    gray = to_gray(frame)
    width, height = size
    if gray.shape != (height, width):
        interpolation = cv2.INTER_AREA if gray.shape[0] > height else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (width, height), interpolation=interpolation)
    return normalize(gray, value_range)[None, None]


def modality_mask(use_co2: bool, use_ch4: bool) -> np.ndarray:
    """The (1,2) float32 mask the model takes: [use_co2, use_ch4]."""
    return np.array([[float(use_co2), float(use_ch4)]], dtype=np.float32)
