"""The bundle's manifest: what a bundle holds (each member's sha256 and size), the metrics it was measured to
reach and who signed it. Its exact bytes are what the Ed25519 signature covers."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from fume_edge.errors import FumeEdgeError

FORMAT = 1
DEFAULT_MAX_MB = 512  # the size cap of a bundle a device accepts
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
MODEL_NAME = "model/fume.onnx"
INT8_MODEL_NAME = "model/fume.int8.onnx"
CARD_NAME = "MODEL_CARD.md"
THRESHOLDS_NAME = "thresholds.yaml"
VAL_CSV_NAME = "val/paired_val.csv"
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Member:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    version: str  # the folder name under models/ and what `bundle list` shows
    created: str  # UTC ISO-8601
    key_id: str  # the signing key (keys.key_id)
    model_sha256: str  # of the FP32 ONNX: what alert events name as model_sha
    metrics: dict[str, float | None]  # FP32 metrics on the bundled validation set (None: undefined there)
    members: dict[str, Member]
    metadata: dict[str, str] = field(default_factory=dict)  # the ONNX's metadata (contract, preprocessing, classes)
    format: int = FORMAT

    def to_bytes(self) -> bytes:
        body = asdict(self)
        return json.dumps(body, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")

    def has(self, name: str) -> bool:
        return name in self.members

    def metric(self, name: str) -> float | None:
        value = self.metrics.get(name)
        return None if value is None or not math.isfinite(value) else float(value)

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> Manifest:
        try:
            body: dict[str, Any] = json.loads(data.decode("utf-8"))
            if body.get("format") != FORMAT:
                raise ValueError(f"format {body.get('format')!r}, this fume-edge reads {FORMAT}")
            members = {str(k): Member(str(v["sha256"]), int(v["size"])) for k, v in body.pop("members").items()}
            manifest = cls(members=members, **body)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise FumeEdgeError(
                f"{source}: unreadable manifest ({exc}); make the bundle again with `fume-edge bundle make`"
            ) from None
        if not VERSION_PATTERN.fullmatch(manifest.version):
            raise FumeEdgeError(f"{source}: version {manifest.version!r} is not a safe folder name")
        if MODEL_NAME not in manifest.members or manifest.members[MODEL_NAME].sha256 != manifest.model_sha256:
            raise FumeEdgeError(f"{source}: the manifest does not list its model {MODEL_NAME}")
        return manifest
