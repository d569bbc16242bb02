"""The JSONL sink: one `AlertEvent.to_json()` line per event, appended, flushed and fsynced before the next.

A line is either whole on disk or (after a power cut mid-write) a torn last line, which the next run terminates
with a newline so it never spoils the following event; earlier lines are never touched. The file rotates by size (`events.jsonl` -> `events.jsonl.1` ... `.N`, oldest dropped), so a
device that runs for months keeps at most `(backups + 1) * max_bytes` of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from fume_edge.alerts.event import AlertEvent
from fume_edge.errors import FumeEdgeError


@dataclass
class JsonlConfig:
    """`sinks.jsonl` in run.yaml; `path: null` disables the sink."""

    path: str | None
    max_bytes: int
    backups: int

    def validate(self, where: str) -> None:
        if self.max_bytes <= 0 or self.backups < 0:
            raise FumeEdgeError(f"{where}: need max_bytes > 0 and backups >= 0")


class JsonlWriter:
    """Appends events to a JSONL file with rotation. Opening the file is where a bad path fails, with one line."""

    def __init__(self, config: JsonlConfig) -> None:
        if config.path is None:
            raise ValueError("JsonlWriter needs a path")
        self.config = config
        self.path = Path(config.path)
        self._file = self._open()

    def _open(self) -> IO[str]:
        """Open for appending; a torn last line (power cut mid-write) is terminated so the next event starts on a
        line of its own instead of being glued to the fragment."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torn = False
            if self.path.is_file() and self.path.stat().st_size > 0:
                with open(self.path, "rb") as tail:
                    tail.seek(-1, os.SEEK_END)
                    torn = tail.read(1) != b"\n"
            handle = open(self.path, "a", encoding="utf-8")
            if torn:
                handle.write("\n")
            return handle
        except OSError as exc:
            raise FumeEdgeError(f"{self.path}: cannot open the JSONL alert file ({exc.strerror}); "
                                "pass a writable --jsonl path") from None

    def write(self, event: AlertEvent) -> None:
        line = event.to_json() + "\n"
        if self._file.tell() > 0 and self._file.tell() + len(line.encode("utf-8")) > self.config.max_bytes:
            self._rotate()
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())

    def _rotate(self) -> None:
        self._file.close()
        if self.config.backups == 0:
            self.path.unlink()
        else:
            for index in range(self.config.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = self._open()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

