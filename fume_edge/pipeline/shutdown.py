"""SIGINT/SIGTERM handling for `fume-edge run`: the first signal asks for a clean stop, a second one forces exit.

A clean stop lets the loop finish its current frame, stop the cameras, process what they had captured, end open
alerts as `interrupted`, write every queued event and close the database. Forcing exit skips all that with
`os._exit`: nothing half-written is possible, because SQLite commits are atomic (WAL) and each JSONL line is
written whole; an alert left open is ended as `interrupted` by the next run.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any
from collections.abc import Callable

from fume_edge.errors import INTERRUPTED_EXIT_CODE


class StopSignals:
    """Installs the handlers on enter (main thread only) and restores the previous ones on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_first: Callable[[str], None] | None = None) -> None:
        self._event = threading.Event()
        self._on_first = on_first
        self._previous: dict[int, Any] = {}
        self.received: str | None = None

    def is_set(self) -> bool:
        return self._event.is_set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._event.is_set():
            sys.stderr.write(f"\n{name} again: exiting now; the alert database stays consistent\n")
            sys.stderr.flush()
            if os.isatty(1):
                os.write(1, b"\x1b[?25h")  # the live panel hides the cursor; give it back
            os._exit(INTERRUPTED_EXIT_CODE)
        self.received = name
        self._event.set()
        if self._on_first is not None:
            self._on_first(name)

    def __enter__(self) -> StopSignals:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
