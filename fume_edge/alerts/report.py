"""`fume-edge alerts`: list or export the events of an alert database.

Reads the database read-only, so it is safe next to a running `fume-edge run` (WAL readers never block the
writer). `--json` prints the events exactly as the JSONL and MQTT sinks carry them, one per line, for scripts.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from rich import box
from rich.markup import escape
from rich.table import Table

from fume_edge.alerts.csv_export import write_csv
from fume_edge.alerts.event import ALERT_TYPES, AlertEvent, parse_iso
from fume_edge.alerts.store import AlertStore
from fume_edge.console import COMPACT_BELOW, console
from fume_edge.errors import FumeEdgeError

_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
WIDE_FROM = 140  # terminal columns from which every column fits; narrower terminals get the short table
_STATE_STYLE = {"start": "bold red", "update": "yellow", "end": "green"}


def parse_since(text: str, now: float) -> float:
    """An age (`30m`, `2h`, `7d`, `1w`) before `now`, or an ISO-8601 time (UTC unless it carries an offset)."""
    age = _AGE.match(text)
    if age:
        return now - float(age.group(1)) * _AGE_UNITS[age.group(2)]
    try:
        return parse_iso(text.strip())
    except ValueError:
        raise FumeEdgeError(
            f"--since {text!r}: not a time; use ISO-8601 (2026-11-25T08:00) or an age (30m, 2h, 7d)"
        ) from None


def _title(events: list[AlertEvent], db: Path | str) -> str:
    return f"{len(events)} alert event{'' if len(events) == 1 else 's'} in {escape(str(db))}"  # a path is no markup


def _narrow_table(events: list[AlertEvent], db: Path | str) -> Table:
    """What fits 80 columns: when, what, which alert, and the most likely pH class (`--wide` shows the rest)."""
    table = Table(
        title=_title(events, db),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        show_edge=False,
        caption="--wide: every column; --json: every field",
        caption_justify="left",
    )
    for name in ("time (UTC)", "type", "state", "alert", "cameras", "pH"):
        table.add_column(name, no_wrap=name != "state")
    for e in events:
        top = max((e.probs or {}).items(), key=lambda item: item[1], default=None)
        state = e.state + (f" ({e.reason})" if e.reason else "")
        table.add_row(
            e.time[5:19].replace("T", " "),
            e.type,
            f"[{_STATE_STYLE[e.state]}]{state}[/]",
            e.id[:8],
            ",".join(e.camera_ids),
            "-" if top is None else f"{top[0][0]} {top[1]:.2f}",
        )
    return table


def _wide_table(events: list[AlertEvent], db: Path | str, width: int) -> Table:
    """Every column; below COMPACT_BELOW terminal columns the details share one column, a line each."""
    table = Table(
        title=_title(events, db), title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False
    )
    compact = width < COMPACT_BELOW
    names = (
        ("time (UTC)", "type", "state", "alert", "details")
        if compact
        else ("time (UTC)", "type", "state", "alert", "subject", "cameras", "pH", "gas area", "frames", "snapshot")
    )
    for name in names:  # state, subject and the free text wrap; the rest keep their width
        table.add_column(
            name,
            no_wrap=name not in ("state", "subject", "details", "snapshot"),
            overflow="fold",
            max_width=13 if name == "state" else None,
        )
    for e in events:
        probs = " ".join(f"{name[0]}{p:.2f}".replace("0.", ".", 1) for name, p in (e.probs or {}).items()) or "-"
        gas = " ".join(f"{gas} {'-' if a is None else f'{a * 100:.1f}%'}" for gas, a in e.gas_areas.items()) or "-"
        state = e.state + (f" ({e.reason})" if e.reason else "")
        snapshot = Path(e.snapshot).name if e.snapshot else "-"
        when = e.time[5:19] if width < WIDE_FROM else e.time[:19]
        cells = [when.replace("T", " "), e.type, f"[{_STATE_STYLE[e.state]}]{state}[/]", e.id[:8]]
        if compact:
            frames = f"{e.frames} frame{'' if e.frames == 1 else 's'}"
            cells.append(
                f"subject {e.subject or '-'}\n{','.join(e.camera_ids)}, {frames}\npH {probs}\n"
                f"gas {gas}\nsnapshot {snapshot}"
            )
        else:
            cells += [e.subject or "-", ",".join(e.camera_ids), probs, gas, str(e.frames), snapshot]
        table.add_row(*cells)
    return table


def show_alerts(
    db: Path,
    *,
    since: str | None = None,
    alert_type: str | None = None,
    as_json: bool = False,
    limit: int | None = None,
    subject: str | None = None,
    wide: bool = False,
    as_csv: bool = False,
    station: str | None = None,
) -> None:
    """Print the events of `db` (oldest first; `limit` keeps the newest) as a table, JSON lines or CSV."""
    check_filters(alert_type, limit, as_json=as_json, as_csv=as_csv)
    start = None if since is None else parse_since(since, time.time())
    with AlertStore(db, readonly=True) as store:
        events = store.events(since=start, alert_type=alert_type, limit=limit, subject=subject, station=station)
    print_events(events, db, as_json=as_json, wide=wide, as_csv=as_csv)


def check_filters(alert_type: str | None, limit: int | None, *, as_json: bool = False, as_csv: bool = False) -> None:
    if as_json and as_csv:
        raise FumeEdgeError("--json and --csv: pass one of them")
    if alert_type is not None and alert_type not in ALERT_TYPES:
        raise FumeEdgeError(f"--type {alert_type!r}: not an alert type; use one of {', '.join(ALERT_TYPES)}")
    if limit is not None and limit <= 0:
        raise FumeEdgeError(f"--limit {limit}: must be a positive number of events")


def print_events(
    events: list[AlertEvent], source: Path | str, *, as_json: bool, wide: bool, as_csv: bool = False
) -> None:
    """A table, JSON lines or CSV of `events` read from `source` (a file, or the fleet archive)."""
    if as_json:
        for event in events:
            print(event.to_json())
    elif as_csv:
        write_csv(events, sys.stdout)
    elif wide or console.width >= WIDE_FROM:
        console.print(_wide_table(events, source, console.width))
    else:
        console.print(_narrow_table(events, source))
