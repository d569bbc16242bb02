"""`fume-edge check MODEL.onnx [--trt VERSION]`: the TensorRT graph rules as a table per TensorRT version."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.table import Table

from fume_edge.console import console
from fume_edge.deploy.tensorrt.engine_onnx import is_qdq
from fume_edge.deploy.onnx.quant_graph import load_fp32
from fume_edge.deploy.onnx.trt_rules import VERSIONS, RuleReport, check_onnx, version_key


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
            console.print(f"[green]ok[/] TensorRT {key}: {model} passes the parser rules "
                          f"({len(graph.graph.node)} nodes, opset {graph.opset_import[0].version})")
        else:
            console.print(_findings_table(model, report))
            failed = True
    if failed:
        raise typer.Exit(code=1)
    precision = "--int8" if is_qdq(graph) else "--fp16"
    console.print(f"next: fume-edge build-engine {shlex.quote(str(model))} {precision}   (on the device)")
