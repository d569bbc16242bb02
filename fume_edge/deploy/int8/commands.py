"""The `calibrate` and `quantize` commands behind the CLI: progress bars, tables, exit status.

The library functions (`data.calibration`, `deploy.int8.quantize`) take progress callbacks and print nothing, so tests
and the lead's bundled-model checks call them directly; what a person watches in a terminal lives here.
"""

from __future__ import annotations

import contextlib
import io
import math
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from fume_edge.console import console, print_next
from fume_edge.data.calibration import CalibrationRequest, build_calibration_set
from fume_edge.data.config import load_data_config
from fume_edge.deploy.int8.int8_report import report_table
from fume_edge.deploy.int8.quantize import QuantizeOptions, QuantizeResult, quantize_onnx
from fume_edge.errors import FumeEdgeError

Callback = Callable[[int, int], None]


@contextlib.contextmanager
def stage_bars() -> Iterator[Callable[[str], Callback]]:
    """A rich progress display whose bars appear stage by stage: `stage(name)` returns that bar's callback."""
    bars = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    tasks: dict[str, TaskID] = {}

    def stage(name: str) -> Callback:
        def update(done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=total)
            bars.update(tasks[name], completed=done, total=total)

        return update

    with bars:
        yield stage


class _Discard(io.TextIOBase):
    """A stdout that drops what is printed to it (ORT's histogram calibrators print per batch) while rich, which
    writes to `rich_proxied_file`, keeps drawing the progress bars on the real terminal."""

    def __init__(self, real: object) -> None:
        super().__init__()
        self.rich_proxied_file = getattr(real, "rich_proxied_file", real)

    def write(self, text: str) -> int:
        return len(text)


def _counts_table(manifest: dict) -> Table:
    table = Table(title=f"Calibration set: {manifest['count']} pairs (seed {manifest['seed']})", title_justify="left")
    for column in ("stratum (pH class, gas)", "chosen", "available"):
        table.add_column(column, justify="left" if column.startswith("stratum") else "right")
    for name, available in manifest["available"]["strata"].items():
        table.add_row(name, str(manifest["counts"]["strata"].get(name, 0)), str(available))
    return table


def calibrate_command(
    data: Path, output: Path, count: int, seed: int, size: tuple[int, int], config_path: Path | None, overwrite: bool
) -> None:
    uint16_range = load_data_config(config_path).images.uint16_range
    request = CalibrationRequest(data, output, count, seed, size, uint16_range)
    with stage_bars() as stage:
        manifest = build_calibration_set(request, overwrite=overwrite, progress=stage)
    console.print(_counts_table(manifest))
    if manifest["count"] < count:
        console.print(f"[yellow]warning:[/] only {manifest['count']} pairs available, fewer than --count {count}")
    console.print(
        f"wrote {output / 'manifest.json'} (commit it) and {output / manifest['tensors']['file']} (git-ignored)"
    )
    print_next(
        f"fume-edge quantize MODEL.onnx --calib {shlex.quote(str(output))} --target cpu   "
        "(or --target tensorrt for a Jetson)"
    )


def _sensitivity_tables(result: QuantizeResult, top: int = 10) -> list[Table]:
    search = result.sensitivity
    if search is None:
        return []
    ranking = Table(
        title=f"Most sensitive nodes (of {len(search.ranking)}): output noise/signal, only that node INT8",
        title_justify="left",
    )
    ranking.add_column("node", overflow="fold")
    ranking.add_column("op")
    ranking.add_column("noise/signal", justify="right")
    ranking.add_column("kept float")
    for node in search.ranking[:top]:
        ranking.add_row(node.name, node.op_type, f"{node.error:.2e}", "yes" if node.name in search.kept_float else "")
    steps = Table(title="Keeping the top nodes in float", title_justify="left")
    for column in ("float nodes", "gas IoU drop (points)", "pH agreement", "within limits"):
        steps.add_column(column, justify="right")
    for step in search.steps:
        agreement = "n/a" if math.isnan(step.ph_agreement) else f"{step.ph_agreement:.2%}"
        steps.add_row(str(step.kept_float), f"{step.gas_iou_drop:.2f}", agreement, "yes" if step.passed else "no")
    return [ranking, steps]


def int8_path(model: Path, target: str) -> Path:
    """The default output: beside the FP32 model, named by target (`fume.onnx` → `fume.cpu.int8.onnx`), so the
    TensorRT and CPU models of one export never overwrite each other."""
    return model.with_name(f"{model.stem}.{target}.int8.onnx")


def quantize_command(
    model: Path, calib: Path, output: Path | None, options: QuantizeOptions, val: Path | None, overwrite: bool = False
) -> None:
    options.validate()
    output = output or int8_path(model, options.target)
    if output.exists() and not overwrite:
        raise FumeEdgeError(f"{output}: already exists; pass --overwrite to replace it, or -o another file")
    with stage_bars() as stage, contextlib.redirect_stdout(_Discard(sys.stdout)):
        result = quantize_onnx(model, calib, output, options, val_csv=val, progress=stage)
    for table in _sensitivity_tables(result):
        console.print(table)
    console.print(f"accuracy report data: {result.report.source}", soft_wrap=True)
    console.print(report_table(result.report))
    console.print(
        f"{result.quantized_nodes} nodes run in INT8 ({options.target} target, {options.method} calibration); "
        f"{len(result.excluded)} kept in float (the model's metadata fume_edge.quant.excluded_nodes lists them)"
    )
    if not result.written:
        console.print(
            f"[red]not written:[/] {'; '.join(result.report.failures())}. Try --sensitivity, --exclude NODE or "
            "another --method; --force writes it anyway."
        )
        raise typer.Exit(code=1)
    note = " [yellow](written with --force, outside the limits)[/]" if not result.report.passed else ""
    console.print(f"wrote {result.output}{note}")
    written = shlex.quote(str(result.output))
    if options.target == "tensorrt":
        print_next(f"fume-edge build-engine {written} --int8   (on the Jetson that will run it)")
    else:
        print_next(f"fume-edge run --co2 SRC --ch4 SRC --model {written}")
