"""Rich renderings of model files for the CLI (`info`, `import`)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from fume_edge.console import console, print_next
from fume_edge.deploy.model_info import ModelInfo

if TYPE_CHECKING:  # both import torch; `info` on a device renders without it
    from fume_edge.deploy.onnx.commands import ExportJob
    from fume_edge.deploy.upstream_import import ImportResult


def _shape(shape: tuple[int | str, ...]) -> str:
    return "×".join(str(d) for d in shape)


def print_model_info(info: ModelInfo) -> None:
    table = Table(title=f"{info.path.name} ({info.kind})", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("architecture", info.architecture)
    if info.parameters is not None:
        table.add_row("parameters", f"{info.parameters:,} ({info.parameters / 1e6:.2f} M)")
    if info.gflops is not None:
        table.add_row("GFLOPs", f"{info.gflops:.2f} at {info.input_size[0]}×{info.input_size[1]}")
    table.add_row("input size", f"{info.input_size[0]}×{info.input_size[1]} (width×height)")
    for spec in info.inputs:
        table.add_row(f"input {spec.name}", f"{spec.dtype} [{_shape(spec.shape)}]")
    for spec in info.outputs:
        table.add_row(f"output {spec.name}", f"{spec.dtype} [{_shape(spec.shape)}]")
    table.add_row("pH classes", ", ".join(info.class_names))
    table.add_row("seg classes", ", ".join(info.seg_class_names), end_section=bool(info.details))
    for key, value in info.details.items():
        table.add_row(key, str(value))
    console.print(table)


def print_import_summary(result: ImportResult, output: Path) -> None:
    ckpt = result.checkpoint
    table = Table(title="Imported FUME research checkpoint", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    encoder = "shared" if ckpt.arch_kwargs["shared_encoder"] else "separate"
    table.add_row("architecture", f"{ckpt.architecture} ({encoder} encoder)")
    table.add_row("parameters", f"{result.parameters:,} ({result.parameters / 1e6:.2f} M)")
    table.add_row("pH classes", ", ".join(ckpt.class_names))
    table.add_row("seg classes", ", ".join(ckpt.seg_class_names))
    table.add_row("input size", f"{ckpt.input_size[0]}×{ckpt.input_size[1]}")
    table.add_row("source epoch", "—" if result.source_epoch is None else str(result.source_epoch))
    table.add_row("source best metric", "—" if result.source_metric is None else f"{result.source_metric:.4f}")
    table.add_row("source sha256", ckpt.provenance["source_sha256"][:16] + "…")
    table.add_row("written", str(output))
    console.print(table)
    for field, flag in result.assumed.items():
        console.print(
            f"[yellow]assumed:[/] {field} not in the research checkpoint; the fume-edge default is "
            f"recorded (state it with {flag})",
            soft_wrap=True,
        )
    onnx = shlex.quote(f"engines/{output.name.split('.')[0]}.onnx")
    print_next(f"fume-edge info {shlex.quote(str(output))}", f"fume-edge export {shlex.quote(str(output))} -o {onnx}")


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def print_export(job: ExportJob) -> None:
    result, parity = job.export, job.parity
    simplified = (
        f"{result.nodes_before} → {result.nodes_after} nodes (onnxsim)"
        if result.simplified
        else f"{result.nodes_after} nodes, not simplified: {result.simplify_error}"
    )
    console.print(f"[bold]graph[/]: {simplified}; outputs {', '.join(result.output_names)}")
    table = Table(title=f"Parity with PyTorch ({'fp16' if parity.fp16 else 'fp32'} graph)", title_justify="left")
    for column in ("pair", "gases", "|Δ| pH logit", "|Δ| seg logit", "labels equal", "ties", "differ", "pH"):
        table.add_column(column, justify="right")
    for row in parity.rows:
        table.add_row(
            str(row.pair),
            row.modality,
            _fmt(row.ph_logit_delta, ".2e"),
            _fmt(row.seg_logit_delta, ".2e"),
            _fmt(row.label_agreement, ".3%"),
            str(row.undecided_disagreements),
            str(row.decided_disagreements),
            "—" if row.ph_class_equal is None else ("same" if row.ph_class_equal else "[red]differs[/]"),
        )
    console.print(table)
    console.print("[dim]ties: differing pixels whose top two PyTorch logits are within 1e-4 (either label is right)[/]")
    if job.size_note:
        console.print(f"[yellow]note:[/] {job.size_note}", soft_wrap=True)
    if parity.passed:
        console.print(f"[green]parity ok[/]: wrote {result.path} ({job.size[0]}×{job.size[1]})")
        size = f"{job.size[0]}x{job.size[1]}"
        print_next(
            f"fume-edge calibrate --data DATA/paired_train.csv -o calibration/NAME --size {size}",
            f"fume-edge quantize {result.path} --calib calibration/NAME --target cpu   (or --target tensorrt "
            "for a Jetson)",
            f"fume-edge run --co2 SRC --ch4 SRC --model {result.path}",
        )
    else:
        for failure in parity.failures:
            console.print(f"[red]parity failed[/]: {failure}")
        console.print("[red]nothing written[/]: the export does not match the PyTorch model")
