"""Loading OGI frames and masks from disk, without torch (calibration and tools use it too).

Frames become model input through `runtime.pre.Preprocessing.to_input`, the function the device calls on camera
frames: training, eval, calibration and parity checks see exactly what a device sees, at any size. The 16-bit
range comes from configs/data.yaml `images.uint16_range` and is recorded in the checkpoint. Colour images (a
viewer's export) are converted to grayscale. Masks must be single-channel class ids.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fume_edge.errors import FumeEdgeError
from fume_edge.labels import SEG_CLASS_NAMES
from fume_edge.runtime.pre import InvalidFrame, Preprocessing


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FumeEdgeError(f"{path}: cannot read the image (missing or corrupt); replace the file")
    return image


def load_frame(path: str | Path, preprocessing: Preprocessing) -> np.ndarray:
    """A frame as the model's float32 (H, W) input in [0, 1], at `preprocessing.input_size`."""
    path = Path(path)
    image = _read(path)
    if image.dtype not in (np.uint8, np.uint16):
        raise FumeEdgeError(f"{path}: unsupported pixel type {image.dtype}; save frames as 8- or 16-bit")
    try:
        return preprocessing.to_input(image)[0, 0]
    except InvalidFrame as exc:
        raise FumeEdgeError(f"{path}: {exc}; save frames as grayscale or BGR images") from None


def load_mask(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """A mask as uint8 (H, W) class ids, resized (nearest neighbour) to `size` = (width, height) when given."""
    path = Path(path)
    mask = _read(path)
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise FumeEdgeError(f"{path}: a mask must be a single-channel 8-bit image of class ids")
    if int(mask.max()) >= len(SEG_CLASS_NAMES):
        raise FumeEdgeError(
            f"{path}: mask value {int(mask.max())} is not a class id; use 0..{len(SEG_CLASS_NAMES) - 1} "
            f"({', '.join(SEG_CLASS_NAMES)})"
        )
    if size is not None and mask.shape[::-1] != tuple(size):
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    return mask
