"""`python -m fume_edge` runs the CLI."""

from fume_edge.entry import main

main()
