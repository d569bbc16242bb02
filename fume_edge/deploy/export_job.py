"""`fume-edge export`: export, then prove parity with PyTorch before the file takes its final name.

A graph that fails the parity check never appears at the output path, so a broken export cannot reach a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fume_edge.console import console
from fume_edge.deploy.check_pairs import csv_check_pairs, synthetic_check_pairs
from fume_edge.deploy.onnx_export import ExportResult, export_onnx
from fume_edge.deploy.parity import ParityReport, check_parity
from fume_edge.runtime.contract import ModelContract
from fume_edge.runtime.pre import Preprocessing


@dataclass
class ExportJob:
    export: ExportResult
    parity: ParityReport


def export_and_check(
    checkpoint: Path,
    output: Path,
    size: tuple[int, int] | None = None,
    with_logits: bool = False,
    fp16: bool = False,
    simplify: bool = True,
    check_data: Path | None = None,
    check_count: int = 6,
    seed: int = 0,
    mask_scale: int = 1,
) -> ExportJob:
    staging = output.with_name(output.stem + ".checking.onnx")
    try:
        with console.status("exporting (trace, onnxsim, checker)…"):
            result = export_onnx(checkpoint, staging, size=size, with_logits=with_logits, fp16=fp16, simplify=simplify,
                                 mask_scale=mask_scale)
        preprocessing = _graph_preprocessing(staging)
        with console.status(f"checking parity with PyTorch on {check_count} pairs…"):
            pairs = (csv_check_pairs(check_data, check_count, preprocessing) if check_data
                     else synthetic_check_pairs(check_count, preprocessing, seed))
            parity = check_parity(checkpoint, staging, pairs)
        if parity.passed:
            staging.replace(output)
            result.path = output
        return ExportJob(export=result, parity=parity)
    finally:
        staging.unlink(missing_ok=True)


def _graph_preprocessing(path: Path) -> Preprocessing:
    """The preprocessing the export declares: the parity pairs are made the way the device will make them."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return ModelContract.from_metadata({p.key: p.value for p in model.metadata_props}, str(path)).preprocessing
