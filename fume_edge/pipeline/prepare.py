"""Camera frames → model inputs inside the loop, written into buffers allocated once.

The arithmetic is `runtime.pre`'s own (`to_gray`, `normalize`: same gray conversion, interpolation choice, range and
clipping, so the live loop feeds the model what training and calibration fed it); only the destination differs:
each camera owns one resize buffer and one (1,1,H,W) float32 input, reused every frame. That is safe because
every backend reads its inputs before `infer` returns, and snapshots get the camera's own frame, never these.
8-bit frames, the common case, take one table lookup per pixel: the 256 normalised values are computed once with
the same float32 arithmetic, so the result is bit for bit the same as computing each pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

from fume_edge.runtime.pre import modality_mask, normalize, to_gray

class InputBuffer:
    """One camera's preprocessing: `fill(image)` returns the model input for it (the same array every call)."""

    def __init__(self, size: tuple[int, int], value_range: tuple[float, float] | None) -> None:
        self.size = size
        self.value_range = value_range
        width, height = size
        self.input = np.zeros((1, 1, height, width), np.float32)
        self._plane = self.input[0, 0]
        self._resized: dict[np.dtype, np.ndarray] = {}
        self._table = normalize(np.arange(256, dtype=np.uint8), value_range)  # 8-bit value -> model input

    def fill(self, image: np.ndarray) -> np.ndarray:
        gray = to_gray(image)
        width, height = self.size
        if gray.shape != (height, width):
            out = self._resized.get(gray.dtype)
            if out is None:
                out = self._resized[gray.dtype] = np.empty((height, width), gray.dtype)
            interpolation = cv2.INTER_AREA if gray.shape[0] > height else cv2.INTER_LINEAR
            gray = cv2.resize(gray, (width, height), dst=out, interpolation=interpolation)
        if gray.dtype == np.uint8:
            cv2.LUT(gray, self._table, dst=self._plane)
        else:
            normalize(gray, self.value_range, out=self._plane)
        return self.input


class ModelInputs:
    """Both cameras' buffers, a zero input for a silent camera, and the three modality masks, made once."""

    def __init__(self, cameras: tuple[str, ...], size: tuple[int, int],
                 value_ranges: dict[str, tuple[float, float] | None]) -> None:
        self.cameras = cameras
        self.buffers = {cam: InputBuffer(size, value_ranges.get(cam)) for cam in cameras}
        self._blank = np.zeros_like(self.buffers[cameras[0]].input)
        self._masks = {(a, b): modality_mask(a, b) for a in (True, False) for b in (True, False)}

    def prepare(self, images: tuple[np.ndarray | None, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first camera input, second camera input, modality mask) for one pair; None marks a silent camera."""
        first, second = (self._blank if image is None else self.buffers[cam].fill(image)
                         for cam, image in zip(self.cameras, images))
        return first, second, self._masks[(images[0] is not None, images[1] is not None)]
