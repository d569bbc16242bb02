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
