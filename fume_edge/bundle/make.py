"""`fume-edge bundle make`: one signed file holding a model, its card, a small validation set and the FP32
metrics measured on that set, so the device can check the model it builds against what the trainer saw."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from fume_edge.alerts.event import iso_utc
from fume_edge.bundle.gate import score
from fume_edge.bundle.keys import key_id, load_private_key
from fume_edge.bundle.manifest import (
    CARD_NAME,
    INT8_MODEL_NAME,
    MANIFEST_NAME,
    MODEL_NAME,
    SIGNATURE_NAME,
    THRESHOLDS_NAME,
    VAL_CSV_NAME,
    VERSION_PATTERN,
    Manifest,
    Member,
)
from fume_edge.data.csvio import write_tables
from fume_edge.data.records import Frame, Sample, read_samples, sample_table
from fume_edge.errors import FumeEdgeError
from fume_edge.hashing import sha256_file
from fume_edge.runtime.base import load_backend
from fume_edge.runtime.onnx_backend import open_session


@dataclass(frozen=True)
class MakeOptions:
    model: Path
    val: Path
    key: Path
    output: Path
    int8: Path | None = None
    card: Path | None = None
    thresholds: Path | None = None
    metrics: Path | None = None  # an eval JSON to record instead of measuring (the gate checks it either way)
    version: str | None = None
    val_count: int = 16
    val_max_mb: float = 32.0
    overwrite: bool = False


def _card(options: MakeOptions) -> Path:
    card = options.card or options.model.with_name("MODEL_CARD.md")
    if not card.is_file():
        raise FumeEdgeError(
            f"{card}: model card not found; pass --card CARD.md (what the model is, its data, its limits)"
        )
    return card


def _thresholds(path: Path) -> None:
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FumeEdgeError(f"{path}: unreadable thresholds YAML ({exc})") from None
    if not isinstance(body, dict):
        raise FumeEdgeError(f"{path}: thresholds must be a YAML mapping (the `alerts:` section of run.yaml)")


def pick_samples(samples: list[Sample], count: int) -> list[Sample]:
    """`count` samples spread evenly over the split (it is ordered by animal and session)."""
    if len(samples) <= count:
        return samples
    return [samples[int(i)] for i in np.linspace(0, len(samples) - 1, count).round()]


def copy_validation_set(val: Path, folder: Path, count: int, max_mb: float) -> int:
    """The chosen samples' frames and masks copied under `folder/val/frames`, with their paired CSV; returns the
    number of samples."""
    chosen = pick_samples(read_samples(val), count)
    frames_dir = folder / "val" / "frames"
    frames_dir.mkdir(parents=True)
    copied: list[Sample] = []
    total = 0
    for index, sample in enumerate(chosen):
        frames: dict[str, Frame | None] = {}
        for gas in ("co2", "ch4"):
            frame = sample.frame(gas)
            if frame is None:
                frames[gas] = None
                continue
            image = frames_dir / f"{index:04d}_{gas}{frame.image.suffix}"
            mask = frames_dir / f"{index:04d}_{gas}_mask{frame.mask.suffix}"
            shutil.copyfile(frame.image, image)
            shutil.copyfile(frame.mask, mask)
            total += image.stat().st_size + mask.stat().st_size
            frames[gas] = dataclasses.replace(frame, image=image, mask=mask)
        copied.append(dataclasses.replace(sample, co2=frames["co2"], ch4=frames["ch4"]))
    if total > max_mb * 1e6:
        raise FumeEdgeError(
            f"{val}: {len(chosen)} validation samples take {total / 1e6:.1f} MB, over --val-max-mb "
            f"{max_mb:g}; pass a smaller --val-count"
        )
    csv_path = folder / VAL_CSV_NAME
    write_tables({csv_path: sample_table(copied, csv_path.parent)})
    return len(copied)


def _metrics(options: MakeOptions, folder: Path) -> dict[str, float | None]:
    """The FP32 metrics on the bundled set: from `--metrics` (an eval JSON) or measured now, as the gate will."""
    if options.metrics is not None:
        try:
            raw = json.loads(options.metrics.read_text(encoding="utf-8"))["metrics"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FumeEdgeError(
                f"{options.metrics}: not an eval JSON with `metrics` ({exc}); write one with "
                "`fume-edge eval MODEL --data VAL --json FILE`"
            ) from None
    else:
        with load_backend(folder / MODEL_NAME, device="cpu") as backend:
            raw = score(backend, folder / VAL_CSV_NAME).metrics
    return {k: None if v is None or not math.isfinite(float(v)) else float(v) for k, v in raw.items()}


def _write_tar(output: Path, manifest_bytes: bytes, signature: bytes, folder: Path, names: list[str]) -> None:
    """Manifest and signature first (a reader checks them before anything else), then the members; written to a
    temporary name and renamed, so a half-written bundle never carries the final name."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temp = output.with_name(f".{output.name}.partial-{os.getpid()}")
    try:
        with tarfile.open(temp, "w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in ((MANIFEST_NAME, manifest_bytes), (SIGNATURE_NAME, signature)):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
                tar.addfile(info, fileobj=io.BytesIO(data))
            for name in names:
                tar.add(folder / name, arcname=name, recursive=False, filter=_plain)
        os.replace(temp, output)
    finally:
        temp.unlink(missing_ok=True)


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    return info


def make_bundle(options: MakeOptions) -> Manifest:
    """Write the signed bundle `options.output`; returns its manifest."""
    if options.output.exists() and not options.overwrite:
        raise FumeEdgeError(f"{options.output}: exists; choose another -o or pass --overwrite")
    for label, path in (("model", options.model), ("--int8", options.int8), ("--thresholds", options.thresholds)):
        if path is not None and not path.is_file():
            raise FumeEdgeError(f"{path}: {label} file not found")
    key = load_private_key(options.key)
    card = _card(options)
    if options.thresholds is not None:
        _thresholds(options.thresholds)
    metadata = dict(open_session(options.model, "cpu").get_modelmeta().custom_metadata_map)
    version = options.version or f"{options.model.stem}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    if not VERSION_PATTERN.fullmatch(version):
        raise FumeEdgeError(f"--version {version!r}: use letters, digits, '.', '_' and '-' (at most 64)")
    with tempfile.TemporaryDirectory(prefix="fume-bundle-") as temp:
        folder = Path(temp)
        (folder / "model").mkdir()
        shutil.copyfile(options.model, folder / MODEL_NAME)
        if options.int8 is not None:
            shutil.copyfile(options.int8, folder / INT8_MODEL_NAME)
        shutil.copyfile(card, folder / CARD_NAME)
        if options.thresholds is not None:
            shutil.copyfile(options.thresholds, folder / THRESHOLDS_NAME)
        copy_validation_set(options.val, folder, options.val_count, options.val_max_mb)
        metrics = _metrics(options, folder)
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        members = {name: Member(sha256_file(folder / name), (folder / name).stat().st_size) for name in names}
        manifest = Manifest(
            version=version,
            created=iso_utc(time.time()),
            key_id=key_id(key.public_key()),
            model_sha256=members[MODEL_NAME].sha256,
            metrics=metrics,
            members=members,
            metadata=metadata,
        )
        manifest_bytes = manifest.to_bytes()
        _write_tar(options.output, manifest_bytes, key.sign(manifest_bytes), folder, names)
    return manifest
