"""Command hints fume-edge prints are pasted into a shell: with spaces in an id or a path they must still parse
back to the same arguments, and run."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from alerts_support import make_event, sinks_config

from fume_edge.alerts.store import AlertStore
from fume_edge.pipeline.advice import alert_destinations

FUME_EDGE = [sys.executable, "-c", "import sys; from fume_edge.cli import main; sys.argv[0] = 'fume-edge'; main()"]


def fume_edge(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a wide terminal (the table shows the whole title)."""
    return subprocess.run(
        [*FUME_EDGE, *args], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"}
    )


def test_the_tag_hint_pastes_into_a_shell_with_spaces_in_the_id_and_the_path(tmp_path: Path) -> None:
    db = tmp_path / "barn [2] alerts" / "alerts.db"
    with AlertStore(db) as store:
        store.record(make_event(subject="ok-cow 1"), publish=False)
        store.record(make_event(subject="ok-cow"), publish=False)
    tagged = fume_edge("tag", "ok-cow 1", "--db", str(db))
    assert tagged.returncode == 0, tagged.stderr
    hint = tagged.stdout.split("see its alerts with: ", 1)[1].strip()
    argv = shlex.split(hint)  # what a shell makes of the pasted line
    assert argv == ["fume-edge", "alerts", "--db", str(db), "--subject", "ok-cow 1"]
    listed = fume_edge(*argv[1:])
    assert listed.returncode == 0, listed.stderr
    assert f"1 alert event in {db}" in listed.stdout


def test_the_run_summary_hint_for_listing_alerts_pastes_into_a_shell(tmp_path: Path) -> None:
    config = sinks_config(tmp_path / "my alerts")
    line = alert_destinations(config)[0]
    hint = line.split("(list them: ", 1)[1].rstrip(")")
    assert shlex.split(hint) == ["fume-edge", "alerts", "--db", config.sqlite.path]
