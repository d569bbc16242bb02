"""`python -m fume_edge` runs the CLI."""

from fume_edge.cli import main

main()
