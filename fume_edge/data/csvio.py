"""Checked CSV reading and all-or-nothing writing for the data formats.

Every cell read goes through `Row`, so a bad value is always one line naming the file, the row (the line number a
text editor or spreadsheet shows, header = 1) and the column. Writers stage into temporary names and rename at the
end, so an error or a kill never leaves a half-written CSV or output folder behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from fume_edge.config import read_utf8
from fume_edge.errors import FumeEdgeError


@dataclass(frozen=True)
class Row:
    """One data row of a CSV file, with typed getters whose errors point at the cell."""

    path: Path
    line: int
    cells: Mapping[str, str]

    def error(self, column: str, message: str) -> FumeEdgeError:
        return FumeEdgeError(f"{self.path} row {self.line}, column {column!r}: {message}")

    def text(self, column: str, allow_empty: bool = False) -> str:
        value = (self.cells.get(column) or "").strip()
        if not value and not allow_empty:
            raise self.error(column, "empty; fill in a value")
        return value

    def number(self, column: str) -> float:
        value = self.text(column)
        try:
            number = float(value)
        except ValueError:
            raise self.error(column, f"cannot parse {value!r} as a number; write e.g. 6.1") from None
        if not math.isfinite(number):
            raise self.error(column, f"{value!r} is not a finite number")
        return number

    def timestamp(self, column: str) -> float:
        """Seconds: a plain number, or an ISO-8601 date-time (no zone means UTC)."""
        value = self.text(column)
        try:
            return float(value)
        except ValueError:
            pass
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise self.error(
                column, f"cannot parse {value!r}; write seconds (12.5) or ISO-8601 (2024-03-01T10:00:00.250)"
            ) from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        return stamp.timestamp()

    def file(self, column: str, allow_empty: bool = False) -> Path | None:
        """A path relative to the CSV's folder (or absolute) that must exist; None for an allowed empty cell."""
        value = self.text(column, allow_empty)
        if not value:
            return None
        path = self.path.parent / value
        if not path.is_file():
            raise self.error(column, f"file {value!r} not found (looked for {path}); fix the path or add the file")
        return path


def read_rows(path: str | Path, required: Sequence[str]) -> list[Row]:
    """All data rows of the CSV at `path`, after checking that the file exists and has the `required` columns."""
    path = Path(path)
    if not path.is_file():
        raise FumeEdgeError(f"{path}: CSV file not found; pass an existing file")
    with io.StringIO(read_utf8(path, "utf-8-sig"), newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in required if name not in header]
        if missing:
            raise FumeEdgeError(f"{path} row 1: missing column {missing[0]!r}; the header needs {', '.join(required)}")
        reader.fieldnames = header
        rows = []
        try:
            for cells in reader:
                rows.append(Row(path, reader.line_num, cells))
        except csv.Error as exc:
            raise FumeEdgeError(f"{path} row {reader.line_num}: malformed CSV ({exc})") from None
    return rows


def relative_to(path: Path, folder: Path) -> str:
    """`path` written relative to `folder`, with forward slashes, as the CSV formats store paths."""
    return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()


Table = tuple[Sequence[str], Iterable[Sequence[object]]]


def _write_csv(path: Path, table: Table) -> None:
    columns, rows = table
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def write_tables(tables: Mapping[Path, Table]) -> None:
    """Write several CSV files all or nothing: each goes to a temporary name first; renames happen at the end."""
    staged: dict[Path, Path] = {}
    try:
        for path, table in tables.items():
            temp = path.with_name(f".{path.name}.partial-{os.getpid()}")
            staged[temp] = path
            _write_csv(temp, table)
    except BaseException:
        for temp in staged:
            temp.unlink(missing_ok=True)
        raise
    for temp, path in staged.items():
        os.replace(temp, path)


@contextlib.contextmanager
def staged_directory(final: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder that becomes `final` only when the block finishes without an error.

    An existing non-empty `final` is an error unless `overwrite`; then it is replaced as a whole at the end.
    """
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise FumeEdgeError(f"{final}: exists and is not a folder; choose another output path")
    if final.is_dir() and any(final.iterdir()) and not overwrite:
        raise FumeEdgeError(f"{final}: output folder is not empty; choose another path or pass --overwrite")
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    try:
        yield temp
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(temp, final)
    shutil.rmtree(old, ignore_errors=True)
