"""`fume-edge alerts` fits the terminal: a short table at 80 columns, every column with --wide or a wide one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alerts_support import make_event

from fume_edge.alerts.store import AlertStore


def _alerts(db: Path, columns: int, *flags: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "fume_edge", "alerts", "--db", str(db), *flags],
        capture_output=True,
        text=True,
        env={"COLUMNS": str(columns), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_80_columns_hold_whole_headers_and_rows(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    events = [
        make_event("start", "transitional_risk", snapshot="/var/lib/fume-edge/snapshots/2026/a-long-name.png"),
        make_event("end", "transitional_risk", reason="interrupted"),
    ]
    with AlertStore(db) as store:
        for event in events:
            store.record(event, publish=False)
    narrow = _alerts(db, 80)
    lines = narrow.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "time (UTC)" in line)
    assert header.split() == ["time", "(UTC)", "type", "state", "alert", "cameras", "pH"]
    rows = [line for line in lines if "transitional_risk" in line]
    assert len(rows) == 2 and "end (interrupted)" in rows[1] and "A 0.70" in rows[0] and events[0].id[:8] in rows[0]
    assert "--wide" in narrow
    wide = " ".join(_alerts(db, 200, "--wide").split())
    assert "a-long-name.png" in wide and "co2 5.0%" in wide and "gas area" in wide
    assert " ".join(_alerts(db, 200).split()) == wide  # a wide terminal gets every column by itself
