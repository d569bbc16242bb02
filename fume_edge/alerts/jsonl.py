"""The JSONL sink: one `AlertEvent.to_json()` line per event, appended, flushed and fsynced before the next.

A line is either whole on disk or (after a power cut mid-write) a torn last line, which the next run terminates
with a newline so it never spoils the following event; earlier lines are never touched. A write that fails (a
full disk) is cut back to the last whole line before the error is raised, so the caller can simply try again. The
file rotates by size (`events.jsonl` -> `events.jsonl.1` ... `.N`, oldest dropped), so a device that runs for
months keeps at most `(backups + 1) * max_bytes` of it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field

from fume_edge.alerts.event import AlertEvent
from fume_edge.config import Bytes, ConfigModel
from fume_edge.errors import FumeEdgeError


class JsonlConfig(ConfigModel):
    """`sinks.jsonl` in run.yaml; `path: null` disables the sink."""

    path: str | None
    max_bytes: Bytes
    backups: Annotated[int, Field(ge=0, le=1000)]


class JsonlWriter:
    """Appends events to a JSONL file with rotation. Opening the file is where a bad path fails, with one line."""

    def __init__(self, config: JsonlConfig) -> None:
        if config.path is None:
            raise ValueError("JsonlWriter needs a path")
        self.config = config
        self.path = Path(config.path)
        self._fd = self._open()

    def _open(self) -> int:
        """Open for appending; a torn last line (power cut mid-write) is terminated so the next event starts on a
        line of its own instead of being glued to the fragment."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torn = False
            if self.path.is_file() and self.path.stat().st_size > 0:
                with open(self.path, "rb") as tail:
                    tail.seek(-1, os.SEEK_END)
                    torn = tail.read(1) != b"\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if torn:
                os.write(fd, b"\n")
            return fd
        except OSError as exc:
            raise FumeEdgeError(
                f"{self.path}: cannot open the JSONL alert file ({exc.strerror}); pass a writable --jsonl path"
            ) from None

    def write(self, event: AlertEvent) -> None:
        line = (event.to_json() + "\n").encode("utf-8")
        if self._fd < 0:  # a rotation failed to reopen the file
            self._fd = self._open()
        size = os.fstat(self._fd).st_size
        if size > 0 and size + len(line) > self.config.max_bytes:
            self._rotate()
            size = 0
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)  # never leave a partial line behind
            raise

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        if self.config.backups == 0:
            self.path.unlink()
        else:
            for index in range(self.config.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._fd = self._open()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
