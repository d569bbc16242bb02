"""The `fume-edge` command line: parse, validate, delegate. No logic lives here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from fume_edge import __version__
from fume_edge.errors import FumeEdgeError

app = typer.Typer(
    name="fume-edge",
    help="Train, export and run FUME gas-imaging models (CO2 + CH4 OGI) on edge devices.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def main() -> None:
    """Console entry point: a user error becomes one red line and exit code 2, never a traceback."""
    try:
        app()
    except FumeEdgeError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the fume-edge version and exit."),
) -> None:
    if version:
        typer.echo(f"fume-edge {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


@app.command("import")
def import_cmd(
    path: Path = typer.Argument(..., help="FUME research checkpoint (.pth/.pt): model_state_dict, state_dict or bare."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="fume-edge checkpoint to write [default: PATH with .fume.pt]."),
) -> None:
    """Import a FUME research checkpoint into a fume-edge checkpoint (weights-only loading, strict keys)."""
    from fume_edge.deploy.checkpoint import save_checkpoint
    from fume_edge.deploy.reports import print_import_summary
    from fume_edge.deploy.upstream_import import import_research_checkpoint

    result = import_research_checkpoint(path)
    out = output or path.with_name(path.stem + ".fume.pt")
    save_checkpoint(result.checkpoint, out)
    print_import_summary(result, out)


@app.command()
def info(
    model: Optional[Path] = typer.Argument(None, help="Model file (.pt, .onnx, .engine) [default: the bundled model]."),
) -> None:
    """Describe a model: parameters, GFLOPs, inputs/outputs, classes and provenance."""
    from fume_edge.deploy.model_info import model_info
    from fume_edge.deploy.reports import print_model_info
    from fume_edge.assets import default_model_path

    print_model_info(model_info(model or default_model_path()))
