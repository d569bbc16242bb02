"""The `fume-edge` console script: a Ctrl-C at any moment, even while the CLI's own modules are still importing,
ends with one line and exit code 130 instead of a `KeyboardInterrupt` traceback.

This module imports nothing heavy itself, so the handler is in place before typer, rich or numpy load.
"""

from __future__ import annotations

import sys

from fume_edge.errors import INTERRUPTED_EXIT_CODE


def main() -> None:
    try:
        from fume_edge.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        sys.exit(INTERRUPTED_EXIT_CODE)
