"""Does an exported graph compute what the PyTorch model computes? Checked on real or synthetic pairs.

A float32 export must match within 1e-4 on logits and agree on every pixel label the model decides by more than
that tolerance (where the top two logits are closer, either label is correct). A float16 export is held to label
agreement (≥ 99.9% of pixels, the same pH class): its logits legitimately move by ~1e-3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fume_edge.model.checkpoint import load_checkpoint
from fume_edge.deploy.onnx.onnx_export import DeploymentWrapper
from fume_edge.labels import SEG_LOGITS
from fume_edge.runtime.base import padded
from fume_edge.runtime.contract import SEG_OUTPUTS, ModelContract
from fume_edge.runtime.onnx_backend import open_session, run_session

LOGIT_TOLERANCE = 1e-4
_MODALITIES: dict[tuple[int, ...], str] = {(1, 1): "both", (1, 0): "co2 only", (0, 1): "ch4 only"}
FP16_LABEL_AGREEMENT = 0.999

Pair = tuple[np.ndarray, np.ndarray, np.ndarray]  # co2 (1,1,H,W), ch4 (1,1,H,W), modality_mask (1,2)


@dataclass
class ParityRow:
    pair: int
    modality: str
    ph_logit_delta: float | None
    seg_logit_delta: float | None
    label_agreement: float | None  # over all pixels of both masks
    undecided_disagreements: int  # disagreeing pixels whose top-2 torch logits are within tolerance
    decided_disagreements: int
    ph_class_equal: bool | None


@dataclass
class ParityReport:
    rows: list[ParityRow]
    fp16: bool
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def _decided(logits: np.ndarray, tolerance: float) -> np.ndarray:
    top2 = np.sort(logits, axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]) > tolerance


def _modality(mask: np.ndarray) -> str:
    return _MODALITIES.get(tuple(int(v) for v in mask.reshape(-1)), "none")


def compare_pair(
    index: int, pair: Pair, reference: dict[str, torch.Tensor], onnx_out: dict[str, np.ndarray]
) -> ParityRow:
    ph_delta = seg_delta = None
    ph_equal = None
    if "ph_logits" in onnx_out:
        ref_ph = reference["ph_logits"].numpy()
        ph_delta = float(np.abs(onnx_out["ph_logits"] - ref_ph).max())
        ph_equal = bool(np.argmax(onnx_out["ph_logits"]) == np.argmax(ref_ph))
    agree = total = undecided = decided = 0
    seg_deltas = []
    for gas, name in SEG_OUTPUTS.items():
        if name not in onnx_out:
            continue
        logits = reference[SEG_LOGITS[gas]].numpy()
        labels = logits.argmax(1)
        differs = onnx_out[name] != labels
        decided_mask = _decided(logits, LOGIT_TOLERANCE)
        agree += int((~differs).sum())
        total += differs.size
        decided += int((differs & decided_mask).sum())
        undecided += int((differs & ~decided_mask).sum())
        if SEG_LOGITS[gas] in onnx_out:
            seg_deltas.append(float(np.abs(onnx_out[SEG_LOGITS[gas]] - logits).max()))
    if seg_deltas:
        seg_delta = max(seg_deltas)
    return ParityRow(
        index, _modality(pair[2]), ph_delta, seg_delta, agree / total if total else None, undecided, decided, ph_equal
    )


def _failures(rows: list[ParityRow], fp16: bool) -> list[str]:
    failures = []
    for row in rows:
        if fp16:
            if row.label_agreement is not None and row.label_agreement < FP16_LABEL_AGREEMENT:
                failures.append(
                    f"pair {row.pair}: label agreement {row.label_agreement:.4%} < {FP16_LABEL_AGREEMENT:.1%}"
                )
            if row.ph_class_equal is False:
                failures.append(f"pair {row.pair}: pH class differs")
            continue
        for name, delta in (("ph_logits", row.ph_logit_delta), ("seg logits", row.seg_logit_delta)):
            if delta is not None and delta > LOGIT_TOLERANCE:
                failures.append(f"pair {row.pair}: max |Δ| {name} {delta:.2e} > {LOGIT_TOLERANCE:.0e}")
        if row.decided_disagreements:
            failures.append(f"pair {row.pair}: {row.decided_disagreements} decided pixel label(s) differ")
    return failures


def _calls(pairs: list[Pair], batch: int, dynamic: bool) -> list[list[int]]:
    """The pairs each call of a batch-`batch` graph holds, by index. Static: one pair per call (padded by repetition).
    Dynamic: every size 1..batch, the pairs cycled through the rows, so each row is checked against its own pair
    at every size (a batch baked into a reshape fails here, not on the device)."""
    if not dynamic:
        return [[i] for i in range(len(pairs))]
    return [[(size + row) % len(pairs) for row in range(size)] for size in range(1, batch + 1)]


def check_parity(checkpoint_path: str | Path, onnx_path: str | Path, pairs: list[Pair]) -> ParityReport:
    """Run every pair through the checkpoint (float32, reference) and the ONNX file (CPU) and compare."""
    ckpt = load_checkpoint(checkpoint_path)
    session = open_session(onnx_path, device="cpu")
    meta = session.get_modelmeta().custom_metadata_map
    contract = ModelContract.from_metadata(meta, str(onnx_path))
    reference_model = DeploymentWrapper(ckpt.build_model(), with_logits=True, mask_scale=contract.mask_scale).eval()
    fp16 = meta.get("fume_edge.precision") == "fp16"
    with torch.no_grad():
        references = [reference_model(*(torch.from_numpy(a) for a in pair)) for pair in pairs]
    rows = []
    for call in _calls(pairs, contract.batch, contract.dynamic_batch):
        stacked = (np.concatenate([pairs[i][k] for i in call]) for k in range(3))
        outputs = run_session(session, *padded(None if contract.dynamic_batch else contract.batch, *stacked))
        for row, index in enumerate(call):
            got = {k: v[row : row + 1] for k, v in outputs.items()}
            rows.append(compare_pair(index, pairs[index], references[index], got))
    return ParityReport(rows=rows, fp16=fp16, failures=_failures(rows, fp16))
