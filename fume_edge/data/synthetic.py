"""Synthetic optical-gas-imaging (OGI) scenes: a rumen-fluid tube and the gas leaving it, one camera per gas.

fume-edge needs paired CO2/CH4 frames with exact masks to train and test without the real FUME data, and the edge
pipeline needs a camera it can run without hardware. Both use this module, which therefore imports no torch.

Live API, what a camera source calls once per frame (about 1.5 ms per camera at 640x480 on one core):

    scene = SyntheticScene(seed=7)                  # precomputes backgrounds, noise and turbulence (~35 ms)
    co2, ch4, co2_mask, ch4_mask = scene.render_pair(ph=5.6, t=frame_index / fps)
    frame, mask = scene.render("ch4", scene.amounts(5.6)[1], t)    # one camera alone (e.g. one thread each)

Frames are uint8 (H, W); masks uint8 (H, W) with `SEG_CLASS_NAMES` ids (0 background, 1 tube, 2 gas). A render is
a pure function of (scene, gas, amount, t), so two threads may render the two cameras of one scene, a frame can be
rendered again identically, and the plume's turbulence evolves smoothly as `t` (seconds) advances.

Image model, per camera:
- a static thermal scene computed once: background gradient and a warm patch, the warm tube (class 1) with
  cylindrical shading, optical blur and vignetting, column and pixel fixed-pattern noise;
- the plume (class 2): a meandering jet rising from the tube mouth whose width grows with height and whose density
  decays with height, modulated and displaced by two vertically periodic turbulence fields that scroll upward over
  time. The mask is exactly `density > GAS_THRESHOLD`; the rendered opacity is zero outside that set and at least
  `EDGE_OPACITY` of the full opacity inside it, so the plume is semi-transparent but always clearly above noise;
- temporal sensor noise (windows into a precomputed noise field) and a slow global drift.
The gas amount sets the plume's density and extent; `GasResponse` (configs/data.yaml) maps pH to the amount of each
gas (lower pH: more CO2, less CH4) and the scene's `activity` scales both, so a single gas alone cannot tell the pH.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from fume_edge.data.config import GasResponse, load_data_config
from fume_edge.labels import GAS_CLASS_ID, GASES, INPUT_HEIGHT, INPUT_WIDTH, SEG_CLASS_NAMES

TUBE_CLASS_ID = SEG_CLASS_NAMES.index("Tube")
GAS_THRESHOLD = 0.15  # plume density at the mask edge
EDGE_OPACITY = 0.4  # share of full opacity right at the edge; rises to 1 at density GAS_THRESHOLD + EDGE_RAMP
EDGE_RAMP = 0.5
_NOISE_PAD = 32  # the sensor-noise field is larger than a frame by this much; frames take random windows of it
_FIELD_LIMIT = 5.0  # turbulence fields are clipped to +-5 standard deviations, which bounds the plume's extent


@dataclass(frozen=True)
class PlumeStyle:
    """How one gas's plume moves; distances scale with the frame height."""

    spread: float  # half-width growth per pixel risen, at unit amount
    length: float  # density decay height per unit amount, as a fraction of the frame height
    rise: float  # turbulence rise speed, frame heights per second
    sway: float  # meander amplitude per pixel risen
    sway_hz: float
    turbulence: float  # density modulation depth (per unit of the unit-variance turbulence field)
    warp: float  # boundary displacement, in plume half-widths
    eddy_px: float  # turbulence eddy size at INPUT_HEIGHT rows


# CO2 is heavier than air: a wide, low, slow plume. CH4 is lighter: narrow, tall, fast.
PLUME_STYLES: dict[str, PlumeStyle] = {
    "co2": PlumeStyle(
        spread=0.32, length=0.22, rise=0.10, sway=0.12, sway_hz=0.21, turbulence=0.22, warp=0.3, eddy_px=34.0
    ),
    "ch4": PlumeStyle(
        spread=0.16, length=0.36, rise=0.22, sway=0.08, sway_hz=0.33, turbulence=0.22, warp=0.25, eddy_px=26.0
    ),
}


class RenderedPair(NamedTuple):
    co2: np.ndarray
    ch4: np.ndarray
    co2_mask: np.ndarray
    ch4_mask: np.ndarray


def periodic_texture(rng: np.random.Generator, height: int, width: int, eddy_px: float) -> np.ndarray:
    """Unit-variance smooth noise (float32), periodic in y with period `height` rounded up to a multiple of 4.

    Made at a quarter of the resolution by filtering white noise in the Fourier domain (periodic by construction)
    and upsampled with wrapped borders, so it stays seamless when scrolled and costs about a millisecond.
    """
    h, w = -(-height // 4), -(-width // 4)
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    f2 = fy**2 + fx**2
    sigma = eddy_px / 4.0  # two octaves: eddies and their smaller children
    filt = np.exp(-2 * np.pi**2 * sigma**2 * f2) + 0.5 * np.exp(-2 * np.pi**2 * (sigma / 3) ** 2 * f2)
    field = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((h, w))) * filt, s=(h, w))
    field = (field - field.mean()) / (field.std() + 1e-12)
    padded = np.pad(field, 2, mode="wrap").astype(np.float32)
    up = cv2.resize(padded, ((w + 4) * 4, (h + 4) * 4), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(up[8 : 8 + 4 * h, 8 : 8 + width])


class _Camera:
    """One gas camera's precomputed scene: static image, gas contrast, tube mask, noise and turbulence fields."""

    def __init__(self, rng: np.random.Generator, gas: str, width: int, height: int, tube: tuple[int, int, int, int]):
        self.gas, self.width, self.height = gas, width, height
        self.style = PLUME_STYLES[gas]
        scale = height / INPUT_HEIGHT
        x0, y0, x1, y1 = tube
        self.mouth = ((x0 + x1) / 2.0, y0, (x1 - x0) / 2.0)  # centre x, y, half-width

        yn, xn = np.mgrid[-1 : 1 : height * 1j, -1 : 1 : width * 1j].astype(np.float32)
        base = rng.uniform(0.32, 0.5)
        angle = rng.uniform(0, 2 * np.pi)
        bx, by = rng.uniform(-0.8, 0.8, 2)
        scene = (
            base
            + rng.uniform(0.04, 0.1) * (np.cos(angle) * xn + np.sin(angle) * yn)
            + rng.uniform(0.03, 0.08) * np.exp(-((xn - bx) ** 2 + (yn - by) ** 2) / 0.5)
        )
        self.tube_mask = np.zeros((height, width), np.uint8)
        cv2.rectangle(self.tube_mask, (x0, y0), (x1, y1), TUBE_CLASS_ID, thickness=-1)
        inside = self.tube_mask > 0
        cols = np.arange(width, dtype=np.float32)
        shading = 0.75 + 0.25 * np.cos(np.clip((cols - self.mouth[0]) / self.mouth[2], -1, 1) * np.pi / 2)
        warm = rng.uniform(0.2, 0.3) * shading[None, :] + 0.04 * (np.arange(height)[:, None] > y0 + (y1 - y0) * 0.2)
        scene = np.where(inside, base + warm, scene).astype(np.float32)
        scene = cv2.GaussianBlur(scene, (0, 0), 1.0 * scale)
        vignette = 1.0 - rng.uniform(0.15, 0.3) * (xn**2 + yn**2) / 2.0
        optical = scene * vignette
        fixed_pattern = (rng.normal(0, 0.008, (1, width)) + rng.normal(0, 0.004, (height, width))).astype(np.float32)
        self.static = optical + fixed_pattern
        self.gas_delta = (rng.uniform(0.0, 0.1) * vignette - optical).astype(np.float32)
        self.opacity = rng.uniform(0.45, 0.65)
        self.noise = rng.normal(0, rng.uniform(0.008, 0.016), (height + _NOISE_PAD, width + _NOISE_PAD)).astype(
            np.float32
        )
        self.period = -(-height // 4) * 4
        eddy = self.style.eddy_px * scale
        self.density_field, self.warp_field = (
            np.tile(np.clip(periodic_texture(rng, height, width, size), -_FIELD_LIMIT, _FIELD_LIMIT), (2, 1))
            for size in (eddy, eddy * 1.5)
        )
        self.sway_phase, self.drift_phase = rng.uniform(0, 2 * np.pi, 2)

    def density(self, amount: float, t: float) -> tuple[slice, slice, np.ndarray]:
        """The plume density on its bounding box (rows, cols) at time `t`.

        The box provably holds every pixel above `GAS_THRESHOLD`: the density is at most
        amount * exp(-h / decay) * exp(-(u / sigma)^2) * (1 + turbulence * _FIELD_LIMIT).
        """
        style, (mx, my, half_width) = self.style, self.mouth
        decay = style.length * self.height * amount
        headroom = amount * (1.0 + style.turbulence * _FIELD_LIMIT) / GAS_THRESHOLD
        if headroom <= 1.0:
            return slice(0, 0), slice(0, 0), np.zeros((0, 0), np.float32)
        r0 = max(0, int(my - math.ceil(decay * math.log(headroom))) - 1)
        h = (my - np.arange(r0, my)).astype(np.float32)  # height risen, per row
        sigma = 0.9 * half_width + style.spread * h * (0.6 + 0.4 * amount)
        sway = style.sway * h * np.sin(2 * np.pi * style.sway_hz * t - h / (0.35 * self.height) + self.sway_phase)
        spread = math.sqrt(math.log(headroom)) + style.warp * _FIELD_LIMIT  # in plume half-widths
        margin = float(sigma[0]) * spread + style.sway * float(h[0]) + 2
        c0, c1 = max(0, int(mx - margin)), min(self.width, int(mx + margin) + 1)
        rows, cols = slice(r0, my), slice(c0, c1)
        rise = style.rise * self.height * t
        density_view = self.density_field[_scroll(rise, self.period, r0, my), cols]
        warp_view = self.warp_field[_scroll(0.7 * rise, self.period, r0, my), cols]
        u = np.arange(c0, c1, dtype=np.float32)[None, :] - (mx + sway)[:, None]
        u += (style.warp * sigma)[:, None] * warp_view
        u *= (1.0 / sigma)[:, None]
        np.multiply(u, u, out=u)
        np.negative(u, out=u)
        d = np.exp(u, out=u)
        profile = amount * (1.0 - np.exp(-h / (0.6 * half_width))) * np.exp(-h / decay)
        d *= profile[:, None]
        d *= 1.0 + style.turbulence * density_view
        return rows, cols, d

    def render(self, amount: float, t: float, noise_at: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        oy, ox = noise_at
        out = self.static + self.noise[oy : oy + self.height, ox : ox + self.width]
        out += 0.01 * math.sin(2 * math.pi * t / 37.0 + self.drift_phase)  # slow global drift
        mask = self.tube_mask.copy()
        if amount > 0:
            rows, cols, d = self.density(amount, t)
            gas = d > GAS_THRESHOLD
            opacity = np.clip(EDGE_OPACITY + (d - GAS_THRESHOLD) * ((1 - EDGE_OPACITY) / EDGE_RAMP), 0.0, 1.0)
            opacity *= gas
            out[rows, cols] += (self.opacity * opacity) * self.gas_delta[rows, cols]
            mask[rows, cols][gas] = GAS_CLASS_ID
        np.maximum(out, 0.0, out=out)
        return cv2.convertScaleAbs(out, alpha=255.0), mask


def _scroll(rise_px: float, period: int, r0: int, r1: int) -> slice:
    """Rows of a twice-tiled periodic field that show rows r0:r1 after the field has risen by `rise_px`."""
    offset = int(rise_px) % period
    return slice(offset + r0, offset + r1)


class SyntheticScene:
    """A tube seen by a CO2 and a CH4 camera (a few pixels of parallax apart), rendered at any time and gas amount.

    `activity` scales both gases (a livelier sample releases more of each); `response` maps pH to gas amounts and
    defaults to the packaged `synthetic.response` settings.
    """

    def __init__(
        self,
        seed: int,
        width: int = INPUT_WIDTH,
        height: int = INPUT_HEIGHT,
        response: GasResponse | None = None,
        activity: float = 1.0,
    ):
        self.seed, self.width, self.height, self.activity = seed, width, height, activity
        self.response = response or load_data_config().synthetic.response
        rng = np.random.default_rng(seed)
        scale = height / INPUT_HEIGHT
        tube_w = int(rng.uniform(50, 90) * scale)
        x0 = int(rng.uniform(0.35, 0.65) * width - tube_w / 2)
        y0 = int(rng.uniform(0.55, 0.7) * height)
        y1 = y0 + int(rng.uniform(0.3, 0.45) * height)
        self._cameras = {}
        for gas in GASES:
            dx, dy = (0, 0) if gas == "co2" else (int(rng.uniform(-15, 15) * scale), int(rng.uniform(-6, 6) * scale))
            box = (x0 + dx, y0 + dy, x0 + dx + tube_w, y1 + dy)
            self._cameras[gas] = _Camera(rng, gas, width, height, box)
        self._puff_phase = rng.uniform(0, 2 * np.pi)

    def amounts(self, ph: float) -> tuple[float, float]:
        """(co2, ch4) gas amounts this scene releases at `ph`."""
        return self.response.amounts(ph, self.activity)

    def render(self, gas: str, amount: float, t: float) -> tuple[np.ndarray, np.ndarray]:
        """One camera's uint8 frame and uint8 mask at time `t` seconds; `amount` 0 renders no plume."""
        frame_rng = np.random.default_rng((self.seed, GASES.index(gas), int(round(t * 1e4)) & 0x7FFFFFFF))
        noise_at = tuple(int(v) for v in frame_rng.integers(0, _NOISE_PAD, 2))
        puffing = 1.0 + 0.06 * math.sin(2 * math.pi * 0.23 * t + self._puff_phase)  # the sample bubbles; both gases
        return self._cameras[gas].render(amount * puffing, t, noise_at)  # type: ignore[arg-type]

    def render_pair(self, ph: float, t: float) -> RenderedPair:
        """Both cameras at time `t` for a sample at `ph`."""
        co2_amount, ch4_amount = self.amounts(ph)
        co2, co2_mask = self.render("co2", co2_amount, t)
        ch4, ch4_mask = self.render("ch4", ch4_amount, t)
        return RenderedPair(co2, ch4, co2_mask, ch4_mask)
