"""`fume-edge export`: export, then prove parity with PyTorch before the file takes its final name.

A graph that fails the parity check never appears at the output path, so a broken export cannot reach a device.
The size rule: a graph is exported at the deployment size, `--size` or else 640×480 (the cameras' resolution in the
export contract), whatever size the model was trained at; the network is fully convolutional, so a model trained
at 320×240 runs at 640×480, and the export says so, because its accuracy there is what `eval` should confirm.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fume_edge.console import console
from fume_edge.deploy.onnx.check_pairs import csv_check_pairs, synthetic_check_pairs
from fume_edge.deploy.onnx.onnx_export import ExportResult, export_onnx
from fume_edge.deploy.onnx.parity import ParityReport, check_parity
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import INPUT_HEIGHT, INPUT_WIDTH
from fume_edge.model.checkpoint import load_checkpoint
from fume_edge.runtime.contract import ModelContract
from fume_edge.runtime.pre import Preprocessing

DEPLOY_SIZE = (INPUT_WIDTH, INPUT_HEIGHT)
SIZE_MULTIPLE = 32  # the encoder downsamples by 32; the pyramid pooling needs whole cells


@dataclass
class ExportJob:
    export: ExportResult
    parity: ParityReport
    size: tuple[int, int]
    trained_size: tuple[int, int]

    @property
    def size_note(self) -> str | None:
        """Why the export size differs from the training size, and what to check; None when they agree."""
        if self.size == self.trained_size:
            return None
        return (
            f"exported at {self.size[0]}×{self.size[1]}, the model was trained at "
            f"{self.trained_size[0]}×{self.trained_size[1]}: check its accuracy at this size with "
            f"`fume-edge eval {self.export.path} --data PAIRED.csv`"
        )


def export_size(requested: tuple[int, int] | None) -> tuple[int, int]:
    """The size to export at: `--size`, else the deployment size; both sides multiples of 32."""
    width, height = requested or DEPLOY_SIZE
    if width % SIZE_MULTIPLE or height % SIZE_MULTIPLE or width <= 0 or height <= 0:
        raise FumeEdgeError(
            f"--size {width}x{height}: width and height must be positive multiples of "
            f"{SIZE_MULTIPLE}, e.g. 640x480 or 320x256"
        )
    return width, height


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
    batch: int = 1,
    dynamic_batch: bool = False,
) -> ExportJob:
    """Export at `size` (None: the deployment size) and check parity; the file appears only when parity holds."""
    width, height = size = export_size(size)
    trained_size = load_checkpoint(checkpoint).input_size
    staging = output.with_name(output.stem + ".checking.onnx")
    try:
        kind = f"batch 1..{batch}" if dynamic_batch else f"batch {batch}"
        with console.status(f"exporting at {width}×{height}, {kind} (trace, onnxsim, checker)…"):
            result = export_onnx(
                checkpoint,
                staging,
                size=size,
                with_logits=with_logits,
                fp16=fp16,
                simplify=simplify,
                mask_scale=mask_scale,
                batch=batch,
                dynamic_batch=dynamic_batch,
            )
        preprocessing = _graph_preprocessing(staging)
        with console.status(f"checking parity with PyTorch on {check_count} pairs…"):
            pairs = (
                csv_check_pairs(check_data, check_count, preprocessing)
                if check_data
                else synthetic_check_pairs(check_count, preprocessing, seed)
            )
            parity = check_parity(checkpoint, staging, pairs)
        if parity.passed:
            staging.replace(output)
            result.path = output
        return ExportJob(export=result, parity=parity, size=size, trained_size=trained_size)
    finally:
        staging.unlink(missing_ok=True)


def _graph_preprocessing(path: Path) -> Preprocessing:
    """The preprocessing the export declares: the parity pairs are made the way the device will make them."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return ModelContract.from_metadata({p.key: p.value for p in model.metadata_props}, str(path)).preprocessing
