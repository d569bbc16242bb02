"""The `fume-edge serve` command: parses its options and hands over to `web.archive` (which needs the web extra)."""

from __future__ import annotations

from pathlib import Path

import typer


def serve_command(
    db: Path = typer.Argument(..., help="Alert database to show, e.g. a copy of a device's alerts.db."),
    listen: str = typer.Option(
        "127.0.0.1:8080",
        "--listen",
        help="HOST:PORT to serve on; beyond this machine the "
        "page needs a token ($FUME_EDGE_TOKEN, else one is generated and printed).",
    ),
    snapshots: Path | None = typer.Option(
        None,
        "--snapshots",
        help="The snapshots folder copied with the database \\[default: snapshots/ beside DB, when present].",
    ),
    hostname: list[str] | None = typer.Option(
        None,
        "--hostname",
        help="A name the page is opened by besides localhost and this machine's; repeatable \\[default: none].",
    ),
) -> None:
    """Serve the device page on a stored alert database, read-only: history, trend and snapshots."""
    from fume_edge.console import console
    from fume_edge.web.archive import serve_archive

    serve_archive(db, listen, snapshots, tuple(hostname or ()), console)
