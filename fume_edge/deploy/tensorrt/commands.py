"""The TensorRT commands behind the CLI.

`fume-edge check MODEL.onnx [--trt VERSION]`: the TensorRT graph rules as a table per TensorRT version.
`fume-edge build-engine`: checks that need no TensorRT first, then the build, then a summary.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.table import Table

from fume_edge.console import console
from fume_edge.deploy.tensorrt.engine_onnx import is_qdq
from fume_edge.deploy.onnx.quant_graph import load_fp32
from fume_edge.deploy.onnx.trt_rules import VERSIONS, RuleReport, check_onnx, version_key
from fume_edge.deploy.tensorrt.tensorrt_build import build_engine, tensorrt_available
from fume_edge.deploy.tensorrt.trt_settings import EngineBuildOptions
from fume_edge.errors import FumeEdgeError


def _findings_table(path: Path, report: RuleReport) -> Table:
    table = Table(title=f"{path}: TensorRT {report.version} would refuse it", title_justify="left")
    table.add_column("rule")
    table.add_column("where and what", overflow="fold")
    table.add_column("fix", overflow="fold")
    for finding in report.findings:
        table.add_row(finding.rule, finding.message, finding.fix)
    return table


def check_command(model: Path, versions: list[str] | None) -> None:
    """Check `model` for each TensorRT version (default: all fume-edge knows); exit 1 when any refuses it."""
    keys = [version_key(v) for v in versions] if versions else list(VERSIONS)
    graph = load_fp32(model)
    failed = False
    for key in keys:
        report = check_onnx(graph, key)
        if report.ok:
            console.print(
                f"[green]ok[/] TensorRT {key}: {model} passes the parser rules "
                f"({len(graph.graph.node)} nodes, opset {graph.opset_import[0].version})"
            )
        else:
            console.print(_findings_table(model, report))
            failed = True
    if failed:
        raise typer.Exit(code=1)
    precision = "--int8" if is_qdq(graph) else "--fp16"
    console.print(f"next: fume-edge build-engine {shlex.quote(str(model))} {precision}   (on the device)")


def build_command(
    model: Path, output: Path, options: EngineBuildOptions, calib: Path | None, data: Path | None, verbose: bool
) -> None:
    options.validate()
    if not model.is_file():
        raise FumeEdgeError(f"{model}: ONNX file not found; export one with `fume-edge export`")
    missing = tensorrt_available()
    if missing:
        raise FumeEdgeError(f"build-engine: {missing}")
    result = build_engine(model, output, options, calib=calib, data=data, verbose=verbose)
    info = result.info
    console.print(
        f"wrote {result.engine} ({result.engine.stat().st_size / 1e6:.1f} MB, {info.precision}, TensorRT "
        f"{info.tensorrt_version}, {info.gpu_name} sm{info.compute_capability}) in {result.seconds:.0f} s "
        f"and its sidecar {result.sidecar}"
    )
    console.print(
        f"next: fume-edge run --co2 CAM --ch4 CAM --model {shlex.quote(str(result.engine))}   "
        f"(or: trtexec --loadEngine={result.engine})"
    )
