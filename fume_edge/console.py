"""The one rich console fume-edge prints through (stdout), so output and progress bars share a terminal."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(highlight=False)


def print_next(*commands: str, out: Console = console) -> None:
    """The obvious next command(s) of a workflow step, unwrapped so they can be copied whole."""
    for command in commands:
        out.print(f"[bold]next:[/] {escape(command)}", soft_wrap=True)


COMPACT_BELOW = 100  # terminal columns below which report tables drop their borders and use short row names


def report_table(title: str, width: int) -> Table:
    """A bordered table on a wide terminal; below COMPACT_BELOW columns a borderless one with tight padding."""
    if width >= COMPACT_BELOW:
        return Table(title=title, title_justify="left")
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False)
