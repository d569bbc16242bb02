"""Camera frames → model inputs inside the loop, by the model's own preprocessing, into buffers allocated once.

The arithmetic is `runtime.pre.Preprocessing.to_input`, the function training, calibration and parity checks use,
so the live loop feeds the model what it was validated on; only the destination differs: each camera owns one
(1,1,H,W) float32 input, reused every frame, or (`prepare_into`) a station writes its pair straight into its row of
the loop's batch buffers. That is safe because every backend reads its inputs before `infer` returns, and
snapshots get the camera's own frame, never these.
"""

from __future__ import annotations

import numpy as np

from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.pre import Preprocessing, modality_mask


def camera_preprocessing(model: Preprocessing, value_range: tuple[float, float] | None, camera: str) -> Preprocessing:
    """The model's preprocessing for one camera; a run.yaml 16-bit range must agree with what the model was trained on.

    A different range would feed the model inputs it was never validated on, so it is refused, not applied.
    """
    if value_range is None or tuple(map(float, value_range)) == model.uint16_range:
        return model
    low, high = model.uint16_range
    raise FumeEdgeError(
        f"run.yaml sources.{camera}.value_range {list(value_range)} contradicts the model, trained on 16-bit counts "
        f"[{low:g}, {high:g}]; remove the setting (the model's range is used), or retrain/import the model with the "
        "camera's range (data.yaml images.uint16_range, `fume-edge import --uint16-range`)"
    )


class ModelInputs:
    """Both cameras' input buffers, a zero input for a silent camera, and the three modality masks, made once."""

    def __init__(self, cameras: tuple[str, ...], preprocessing: dict[str, Preprocessing]) -> None:
        self.cameras = cameras
        self.preprocessing = preprocessing
        self.buffers = {cam: np.zeros((1, 1, *preprocessing[cam].input_size[::-1]), np.float32) for cam in cameras}
        self._blank = np.zeros_like(self.buffers[cameras[0]])
        self._masks = {(a, b): modality_mask(a, b) for a in (True, False) for b in (True, False)}

    def prepare(self, images: tuple[np.ndarray | None, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first camera input, second camera input, modality mask) for one pair; None marks a silent camera."""
        first, second = (
            self._blank if image is None else self.preprocessing[cam].to_input(image, out=self.buffers[cam])
            for cam, image in zip(self.cameras, images, strict=True)
        )
        return first, second, self._masks[(images[0] is not None, images[1] is not None)]

    def prepare_into(
        self, images: tuple[np.ndarray | None, ...], first: np.ndarray, second: np.ndarray, mask: np.ndarray
    ) -> None:
        """One pair into one row of batch buffers: (1,1,H,W) views of the two inputs and a (1,2) view of the mask."""
        for cam, image, out in zip(self.cameras, images, (first, second), strict=True):
            if image is None:
                out.fill(0.0)
            else:
                self.preprocessing[cam].to_input(image, out=out)
        mask[...] = self._masks[(images[0] is not None, images[1] is not None)]
