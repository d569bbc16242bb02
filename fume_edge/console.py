"""The one rich console fume-edge prints through (stdout), so output and progress bars share a terminal."""

from __future__ import annotations

from rich.console import Console

console = Console(highlight=False)
