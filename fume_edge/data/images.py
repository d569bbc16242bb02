"""Loading OGI frames and masks from disk, without torch (calibration and tools use it too).

Frames become float32 in [0, 1]: 8-bit images are divided by 255; 16-bit thermal frames are mapped from a raw
count range (configs/data.yaml `images.uint16_range`) and clipped, since raw counts rarely span 0..65535. Colour
images (a viewer's export) are converted to grayscale. Masks must be single-channel class ids.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fume_edge.errors import FumeEdgeError
from fume_edge.labels import SEG_CLASS_NAMES


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FumeEdgeError(f"{path}: cannot read the image (missing or corrupt); replace the file")
    return image


def load_frame(path: str | Path, uint16_range: tuple[float, float], size: tuple[int, int] | None = None) -> np.ndarray:
    """A grayscale frame as float32 (H, W) in [0, 1], resized to `size` = (width, height) when given."""
    path = Path(path)
    image = _read(path)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if image.dtype == np.uint8:
        frame = image.astype(np.float32) * (1.0 / 255.0)
    elif image.dtype == np.uint16:
        lo, hi = uint16_range
        frame = np.clip((image.astype(np.float32) - lo) * (1.0 / (hi - lo)), 0.0, 1.0)
    else:
        raise FumeEdgeError(f"{path}: unsupported pixel type {image.dtype}; save frames as 8- or 16-bit")
    if size is not None and frame.shape[::-1] != tuple(size):
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return frame


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
