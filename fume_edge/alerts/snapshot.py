"""PNG snapshots: the paired frames side by side with their mask overlays and a banner, referenced by an alert.

A snapshot is what a farmer or vet looks at to trust (or dismiss) an alert, so it shows exactly what the model saw:
both gas frames, tube and gas pixels tinted, and a banner with the alert, the smoothed pH probabilities and the
time. Files are written atomically (temporary file, fsync, rename), so a crash never leaves a half PNG under an
alert's path; retention keeps the folder within count, byte and age limits, oldest first, and never removes a
snapshot whose alert is still waiting in the MQTT outbox.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
from pydantic import Field

from fume_edge.alerts.event import AlertEvent, AlertState
from fume_edge.config import Bytes, ConfigModel, Count, Days
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import GAS_CLASS_ID, INPUT_HEIGHT, INPUT_WIDTH, SEG_CLASS_NAMES
from fume_edge.runtime.base import Prediction

TUBE_CLASS_ID = SEG_CLASS_NAMES.index("Tube")
TUBE_BGR = (255, 200, 0)  # light blue
GAS_BGR = (0, 64, 255)  # orange-red
OVERLAY_ALPHA = 0.45
BANNER_H = 84
BANNER_BGR = {"risk": (40, 40, 200), "camera": (0, 120, 220), "gas": (0, 160, 160)}


class SnapshotConfig(ConfigModel):
    """`sinks.snapshots` in run.yaml; `dir: null` disables snapshots."""

    dir: str | None
    states: list[AlertState]
    max_count: Count
    max_bytes: Bytes
    max_age_days: Days
    max_pending: Annotated[int, Field(ge=0, le=1000)]


@dataclass(frozen=True)
class SnapshotFrames:
    """The pair an event was raised on. Any frame layout the pipeline holds: (H,W), (H,W,3) BGR or model input
    (1,1,H,W); uint8, uint16 or float in [0,1]. None for a silent camera. The sink thread reads these arrays later,
    so the caller must not modify them after handing them over."""

    co2: np.ndarray | None
    ch4: np.ndarray | None
    prediction: Prediction | None


def to_gray_u8(frame: np.ndarray) -> np.ndarray:
    """A displayable 8-bit grayscale image from any supported frame layout and dtype."""
    image = np.asarray(frame)
    while image.ndim > 2 and image.shape[0] == 1:
        image = image[0]
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY) if image.shape[-1] >= 3 else image[..., 0]
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        return np.asarray(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0).astype(np.uint8)
    low, high = float(image.min()), float(image.max())  # integer sensors (16-bit thermal): stretch the range
    return ((image.astype(np.float64) - low) * (255.0 / max(high - low, 1.0))).astype(np.uint8)


_PALETTE = np.zeros((256, 3), np.uint8)
_PALETTE[TUBE_CLASS_ID], _PALETTE[GAS_CLASS_ID] = TUBE_BGR, GAS_BGR


def overlay_panel(frame: np.ndarray | None, seg: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    """One camera as BGR uint8 at `size` = (width, height), tube and gas pixels tinted; NO SIGNAL when silent.

    Shared by snapshots and the live view (`--display`, `--record`), so both show the same picture.
    """
    width, height = size
    if frame is None:
        panel: np.ndarray = np.full((height, width, 3), 48, np.uint8)
        scale = 1.2 * max(width / INPUT_WIDTH, 0.5)
        cv2.putText(
            panel,
            "NO SIGNAL",
            (width // 2 - int(92 * scale), height // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (200, 200, 200),
            2,
            cv2.LINE_AA,
        )
        return panel
    gray = cv2.resize(to_gray_u8(frame), (width, height), interpolation=cv2.INTER_AREA)
    panel = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if seg is not None:
        labels = cv2.resize(np.asarray(seg, np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        tinted = cv2.addWeighted(panel, 1.0 - OVERLAY_ALPHA, _PALETTE[labels], OVERLAY_ALPHA, 0.0)
        np.copyto(panel, tinted, where=(labels > 0)[..., None])
    return panel


def _panel(frame: np.ndarray | None, seg: np.ndarray | None, title: str) -> np.ndarray:
    panel = overlay_panel(frame, seg, (INPUT_WIDTH, INPUT_HEIGHT))
    cv2.putText(panel, title, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return panel


def render_snapshot(frames: SnapshotFrames, event: AlertEvent) -> np.ndarray:
    """The snapshot image (BGR uint8): banner on top, CO2 panel left, CH4 panel right."""
    pred = frames.prediction
    segs = {} if pred is None else pred.seg
    panels = []
    for gas, frame in (("co2", frames.co2), ("ch4", frames.ch4)):
        area = event.gas_areas.get(gas)
        title = gas.upper() + ("" if area is None else f"  gas {area * 100:.1f}%")
        panels.append(_panel(frame, segs.get(gas), title))
    body = np.hstack(panels)
    kind = "risk" if event.type.endswith("_risk") else "camera" if event.type.startswith("camera") else "gas"
    banner = np.full((BANNER_H, body.shape[1], 3), BANNER_BGR[kind], np.uint8)
    probs = "  ".join(f"{name} {p:.2f}" for name, p in (event.probs or {}).items()) or "no pH yet"
    lines = (
        f"{event.type} {event.state}{'' if event.reason is None else ' (' + event.reason + ')'}   {event.time}",
        f"pH (smoothed): {probs}",
        f"device {event.device_id}   cameras {', '.join(event.camera_ids)}   frames {event.frames}",
    )
    for row, text in enumerate(lines):
        cv2.putText(banner, text, (10, 24 + 26 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.62, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([banner, body])


def encode_png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


class SnapshotDir:
    """The snapshot folder: names files after their event, writes them atomically, applies retention."""

    def __init__(self, config: SnapshotConfig) -> None:
        if config.dir is None:
            raise ValueError("SnapshotDir needs a dir")
        self.config = config
        self.dir = Path(config.dir).resolve()  # alerts reference snapshots by absolute path
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FumeEdgeError(
                f"{self.dir}: cannot create the snapshot folder ({exc.strerror}); pass a writable --snapshots path"
            ) from None

    def wants(self, event: AlertEvent) -> bool:
        return event.state in self.config.states

    def path_for(self, event: AlertEvent) -> Path:
        """`<dir>/<UTC time>_<type>_<state>_<event id prefix>.png`: sorts by time, unique per event."""
        stamp = event.time[:23].replace("-", "").replace(":", "")
        return self.dir / f"{stamp}Z_{event.type}_{event.state}_{event.event_id[:8]}.png"

    def write(self, path: Path, data: bytes) -> None:
        """Write atomically: readers see the whole PNG or no file, even after a crash. A failed write (a full
        disk) removes its temporary file at once, so it cannot keep the disk full."""
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def prune(self, keep: set[str], now: float | None = None) -> int:
        """Delete leftover temporary files and the oldest snapshots beyond the limits, except paths in `keep`.
        Returns how many snapshots were deleted."""
        now = time.time() if now is None else now
        for tmp in self.dir.glob("*.png.tmp"):
            tmp.unlink(missing_ok=True)
        files = sorted((p.stat().st_mtime, p.name, p) for p in self.dir.glob("*.png"))
        keep_resolved = {str(Path(k).resolve()) for k in keep}
        count, total = len(files), sum(p.stat().st_size for _, _, p in files)
        oldest_allowed = now - self.config.max_age_days * 86400
        deleted = 0
        for mtime, _, path in files:
            over = count > self.config.max_count or total > self.config.max_bytes or mtime < oldest_allowed
            if not over:
                break
            if str(path.resolve()) in keep_resolved:
                continue
            size = path.stat().st_size
            path.unlink()
            count, total, deleted = count - 1, total - size, deleted + 1
        return deleted
