"""The one rich console fume-edge prints through (stdout), so output and progress bars share a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)


def print_next(*commands: str, out: Console = console) -> None:
    """The obvious next command(s) of a workflow step, unwrapped so they can be copied whole."""
    for command in commands:
        out.print(f"[bold]next:[/] {escape(command)}", soft_wrap=True)
