"""Logging for every command, set up once by the console entry point: warnings from libraries, and fume-edge's own
notices (a run.yaml reload, a model swap) at info, each a timestamped line on stderr (the journal, for the service)."""

from __future__ import annotations

import logging


def setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("fume_edge").setLevel(logging.INFO)
