"""Checkpoint → deployable ONNX (the model contract, runtime/contract.py): static shape, argmax inside the graph,
simplified, checked, labelled.

The graph is what TensorRT 8.5+ and ONNX Runtime both take: inputs `co2`, `ch4` (1,1,H,W) float32 and
`modality_mask` (1,2); outputs `ph_logits` (1,C) float32 and `co2_seg`/`ch4_seg` (1,H,W) int32 class ids, so a
device never copies full-resolution logits back. `--logits` adds the raw seg logits for parity checks; `--fp16`
computes in half precision inside the graph with float32 I/O (the form strongly typed TensorRT ≥ 11 builds need).
`--mask-scale N` (N > 1) upsamples the seg heads' logits only to 1/N of the input size and takes the argmax there:
the full-resolution Resize and ArgMax are most of the output path's time and memory traffic; masks are then
(H/N, W/N), and whatever draws them full size (snapshots, the live view) scales labels by nearest neighbour.
"""

from __future__ import annotations

import functools
import io
import json
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import onnx
import torch
from torch import nn

from fume_edge import __version__
from fume_edge.model.checkpoint import Checkpoint, load_checkpoint
from fume_edge.deploy.model_info import profile_forward
from fume_edge.errors import FumeEdgeError
from fume_edge.hashing import sha256_file
from fume_edge.labels import PH_LOGITS, SEG_LOGITS
from fume_edge.model.fastscnn import SegHead
from fume_edge.model.registry import count_parameters
from fume_edge.runtime.contract import DYNAMIC, INPUT_NAMES, SEG_OUTPUTS

# Opset 17: the newest TensorRT 8.6 parses fully (LayerNormalization-era), also read by TensorRT 10/11 and ORT.
OPSET = 17


MASK_SCALES = (1, 2, 4, 8)


def _scaled_head_size(scale: int, module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook of a SegHead: its output size (the input size) divided by the mask scale."""
    low, high, (height, width) = args
    return low, high, (height // scale, width // scale)


class DeploymentWrapper(nn.Module):
    """The deployed form of any registered model: named outputs, int32 argmax masks, optional half compute.

    `mask_scale` N > 1 makes the model's seg heads output 1/N of the input size (hooks on its `SegHead`s, so the
    weights and the rest of the graph are untouched); 1 is the exact full-size output.
    """

    def __init__(self, model: nn.Module, with_logits: bool = False, fp16: bool = False, mask_scale: int = 1) -> None:
        super().__init__()
        self.model = model.half() if fp16 else model
        self.with_logits = with_logits
        self.fp16 = fp16
        if mask_scale not in MASK_SCALES:
            raise FumeEdgeError(f"--mask-scale {mask_scale}: choose one of {', '.join(map(str, MASK_SCALES))}")
        if mask_scale > 1:
            heads = [m for m in model.modules() if isinstance(m, SegHead)]
            if not heads:
                raise FumeEdgeError(
                    f"--mask-scale {mask_scale}: {type(model).__name__} has no Fast-SCNN seg head "
                    "to scale; export it with --mask-scale 1"
                )
            for head in heads:
                head.register_forward_pre_hook(functools.partial(_scaled_head_size, mask_scale))

    def forward(self, co2: torch.Tensor, ch4: torch.Tensor, modality_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.fp16:
            co2, ch4, modality_mask = co2.half(), ch4.half(), modality_mask.half()
        out = self.model(co2, ch4, modality_mask)
        result: dict[str, torch.Tensor] = {}
        if PH_LOGITS in out:
            result["ph_logits"] = out[PH_LOGITS].float()
        for gas, name in SEG_OUTPUTS.items():
            if SEG_LOGITS[gas] in out:
                result[name] = out[SEG_LOGITS[gas]].argmax(dim=1).to(torch.int32)
        if self.with_logits:
            for key in SEG_LOGITS.values():
                if key in out:
                    result[key] = out[key].float()
        return result


@dataclass
class ExportResult:
    path: Path
    nodes_before: int
    nodes_after: int
    simplified: bool
    simplify_error: str | None
    output_names: list[str]


def _trace_to_onnx(
    wrapper: DeploymentWrapper, size: tuple[int, int], batch: int = 1, dynamic_batch: bool = False
) -> onnx.ModelProto:
    """The traced graph; `dynamic_batch`: dim 0 of every input and output is the symbolic `DYNAMIC` (traced at
    `batch` rows, so reshapes and resizes that read the batch take it from the input's shape, not a constant)."""
    width, height = size
    frame = torch.rand(batch, 1, height, width)
    example = (frame, frame.clone(), torch.ones(batch, 2))
    with torch.no_grad():
        traced = {name: tuple(value.shape) for name, value in wrapper(*example).items()}
    output_names = list(traced)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Shapes become constants on purpose: the contract is a static-shape graph.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            wrapper,
            example,
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects too
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=list(INPUT_NAMES),
            output_names=output_names,
            dynamic_axes={name: {0: DYNAMIC} for name in (*INPUT_NAMES, *output_names)} if dynamic_batch else None,
        )
    model = onnx.load_from_string(buffer.getvalue())
    if dynamic_batch:
        _declare_output_dims(model, traced)
    return model


def _declare_output_dims(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> None:
    """Every output dim but the batch as traced: Resize targets computed from a dynamic input shape leave ONNX
    shape inference unable to tell the mask size, which the model contract (and TensorRT's buffers) need fixed."""
    for output in model.graph.output:
        for dim, value in zip(output.type.tensor_type.shape.dim[1:], shapes[output.name][1:], strict=True):
            dim.dim_value = value


def _simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool, str | None]:
    """onnxsim when it works; the unsimplified (still valid) model and the reason when it does not."""
    try:
        import onnxsim

        simplified, ok = onnxsim.simplify(model)
    except Exception as exc:  # onnxsim raises plain RuntimeErrors from its C++ core
        return model, False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not ok:
        return model, False, "onnxsim could not validate the simplified model"
    # onnxsim records its own change log (hundreds of node names) as metadata; the deployed file does not need it.
    kept = [p for p in simplified.metadata_props if not p.key.startswith("onnxsim.")]
    del simplified.metadata_props[:]
    simplified.metadata_props.extend(kept)
    return simplified, True, None


def metadata_props(
    ckpt: Checkpoint, model: nn.Module, checkpoint_path: Path, size: tuple[int, int], fp16: bool
) -> dict[str, str]:
    """Everything a runtime (or `info`) needs to interpret the graph without the checkpoint (runtime/contract.py)."""
    gflops, _ = profile_forward(model, size)
    contract = replace(
        ckpt.contract(str(checkpoint_path), model), preprocessing=replace(ckpt.preprocessing, input_size=size)
    )
    return {
        **contract.to_metadata(),
        "fume_edge.architecture": ckpt.architecture,
        "fume_edge.arch_kwargs": json.dumps(ckpt.arch_kwargs),
        "fume_edge.source_checkpoint_sha256": sha256_file(checkpoint_path),
        "fume_edge.precision": "fp16" if fp16 else "fp32",
        "fume_edge.parameters": str(count_parameters(model)),
        "fume_edge.gflops": f"{gflops:.3f}",
        "fume_edge.opset": str(OPSET),
        "fume_edge.version": __version__,
    }


def export_onnx(
    checkpoint_path: str | Path,
    output: str | Path,
    size: tuple[int, int] | None = None,
    with_logits: bool = False,
    fp16: bool = False,
    simplify: bool = True,
    mask_scale: int = 1,
    batch: int = 1,
    dynamic_batch: bool = False,
) -> ExportResult:
    """Export a fume-edge checkpoint to a checked, simplified, labelled static-shape ONNX file (written atomically);
    `batch` N > 1: every input and output has N rows, one call for N stations (recorded as `fume_edge.batch`);
    `dynamic_batch`: 1 to N rows, so a short tick runs only its pairs (recorded as `fume_edge.dynamic_batch`)."""
    checkpoint_path, output = Path(checkpoint_path), Path(output)
    ckpt = load_checkpoint(checkpoint_path)
    size = size or ckpt.input_size
    if size[0] % 32 or size[1] % 32:
        raise FumeEdgeError(f"--size {size[0]}x{size[1]}: width and height must be multiples of 32")
    torch_model = ckpt.build_model()
    props = metadata_props(ckpt, torch_model, checkpoint_path, size, fp16)
    wrapper = DeploymentWrapper(torch_model, with_logits=with_logits, fp16=fp16, mask_scale=mask_scale).eval()
    if mask_scale > 1:
        props["fume_edge.mask_scale"] = str(mask_scale)
    if batch < 1:
        raise FumeEdgeError(f"--batch {batch}: must be >= 1 (the number of stations one call serves)")
    if dynamic_batch and batch < 2:
        raise FumeEdgeError(
            "--dynamic-batch: give the most pairs a call takes with --batch N (N >= 2, the number of stations)"
        )
    if batch > 1:
        props["fume_edge.batch"] = str(batch)
    if dynamic_batch:
        props["fume_edge.dynamic_batch"] = "true"
    model = _trace_to_onnx(wrapper, size, batch, dynamic_batch)
    nodes_before = len(model.graph.node)
    if simplify:
        model, simplified, reason = _simplify(model)
    else:
        simplified, reason = False, "skipped (--no-simplify)"
    for key, value in props.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    model.producer_name, model.producer_version = "fume-edge", __version__
    onnx.checker.check_model(model, full_check=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    onnx.save(model, tmp)
    tmp.replace(output)
    return ExportResult(
        path=output,
        nodes_before=nodes_before,
        nodes_after=len(model.graph.node),
        simplified=simplified,
        simplify_error=reason,
        output_names=[o.name for o in model.graph.output],
    )
