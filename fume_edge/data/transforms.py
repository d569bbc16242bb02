"""Paired augmentations for one training sample (numpy/OpenCV, so DataLoader workers need no torch ops).

Geometric transforms (horizontal flip, shift-scale-rotate) are drawn once per sample and applied identically to
both gas frames and both masks: a mask must stay on its plume, and the two cameras' views of one tube must stay
aligned for the fusion's cross-attention. Frames interpolate bilinearly, masks by nearest neighbour, and both
reflect at the border, so frame and mask see the same content. Photometric transforms (brightness/contrast,
gamma, noise, blur) are drawn per frame, because the two cameras have independent sensors and gains. There is no
vertical flip: gas rises, and a model should be able to rely on that.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fume_edge.data.config import AugmentConfig


@dataclass(frozen=True)
class Geometry:
    """One draw of the geometric augmentation, independent of the frame size."""

    flip: bool
    angle_deg: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)  # fractions of width and height

    @property
    def is_flip_only(self) -> bool:
        return self.angle_deg == 0.0 and self.scale == 1.0 and self.shift == (0.0, 0.0)

    def matrix(self, width: int, height: int) -> np.ndarray:
        """The 2x3 affine matrix (flip first, then rotate/scale about the centre, then shift) for this size."""
        flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if self.flip else np.eye(3)
        center = ((width - 1) / 2.0, (height - 1) / 2.0)
        rotate = np.vstack([cv2.getRotationMatrix2D(center, self.angle_deg, self.scale), [0.0, 0.0, 1.0]])
        rotate[0, 2] += self.shift[0] * width
        rotate[1, 2] += self.shift[1] * height
        return (rotate @ flip)[:2]

    def apply(self, image: np.ndarray, nearest: bool) -> np.ndarray:
        if self.is_flip_only:
            return cv2.flip(image, 1) if self.flip else image
        height, width = image.shape
        flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.warpAffine(
            image, self.matrix(width, height), (width, height), flags=flags, borderMode=cv2.BORDER_REFLECT_101
        )


class PairedAugment:
    """Augment a sample's frames (float32 in [0, 1]) and masks (uint8), keyed by gas; absent gases are skipped."""

    def __init__(self, config: AugmentConfig):
        self.config = config

    def draw_geometry(self, rng: np.random.Generator) -> Geometry:
        c = self.config
        flip = bool(rng.random() < c.hflip_p)
        if rng.random() >= c.shift_scale_rotate_p:
            return Geometry(flip)
        return Geometry(
            flip,
            angle_deg=float(rng.uniform(-c.rotate_limit_deg, c.rotate_limit_deg)),
            scale=float(rng.uniform(1.0 - c.scale_limit, 1.0 + c.scale_limit)),
            shift=tuple(float(v) for v in rng.uniform(-c.shift_limit, c.shift_limit, 2)),  # type: ignore[arg-type]
        )

    def photometric(self, frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One frame's photometric augmentation; the result is float32 clipped to [0, 1]."""
        c = self.config
        if rng.random() < c.brightness_contrast_p:
            contrast = 1.0 + rng.uniform(-c.contrast_limit, c.contrast_limit)
            frame = frame * np.float32(contrast) + np.float32(rng.uniform(-c.brightness_limit, c.brightness_limit))
        if rng.random() < c.gamma_p:
            frame = np.power(np.clip(frame, 0.0, 1.0), np.float32(rng.uniform(*c.gamma_range)))
        if rng.random() < c.noise_p:
            std = np.float32(rng.uniform(*c.noise_std_range))
            frame = frame + rng.standard_normal(frame.shape, dtype=np.float32) * std
        if rng.random() < c.blur_p:
            k = int(rng.choice(np.arange(c.blur_kernel_range[0], c.blur_kernel_range[1] + 1, 2)))
            frame = cv2.GaussianBlur(frame, (k, k), 0)
        return np.clip(frame, 0.0, 1.0).astype(np.float32, copy=False)

    def __call__(
        self, frames: dict[str, np.ndarray], masks: dict[str, np.ndarray], rng: np.random.Generator
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        geometry = self.draw_geometry(rng)
        frames = {gas: self.photometric(geometry.apply(f, nearest=False), rng) for gas, f in frames.items()}
        masks = {gas: geometry.apply(m, nearest=True) for gas, m in masks.items()}
        return frames, masks
