"""The README's workflow, as written, runs end to end: each command in order, in a fresh folder.

The commands are read from the first ```bash block under "## The workflow", so the test follows the README when
it changes. Each step must succeed and find on disk every file its arguments name (what the steps before it made);
the video run at the end must raise an alert that `alerts --json` lists.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
PATHLIKE = re.compile(r"[\w.-]+/[\w./-]*")  # an argument with a folder in it names a file or folder


def workflow_commands(readme: str) -> list[list[str]]:
    """The argv of every command in the workflow block, comments dropped, in order."""
    section = readme.split("## The workflow", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [argv for argv in commands if argv]


def _inputs(argv: list[str]) -> list[str]:
    """Path arguments a step reads: every path-like argument except what it is told to write."""
    outputs = {argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in ("-o", "--output")}
    if argv[1] == "synth":
        outputs.add(argv[2])
    return [arg for arg in argv[2:] if PATHLIKE.fullmatch(arg) and arg not in outputs and not arg.startswith("-")]


def test_the_workflow_block_is_found_and_is_the_whole_path() -> None:
    commands = workflow_commands(README.read_text(encoding="utf-8"))
    steps = [argv[1] for argv in commands]
    assert all(argv[0] == "fume-edge" for argv in commands)
    for step in ("synth", "pair", "train", "eval", "export", "calibrate", "quantize", "run", "alerts"):
        assert step in steps, f"the README's workflow lost its `{step}` step"
    assert steps.index("run") < steps.index("alerts") and commands[-1][1:] == ["alerts", "--json"]


@pytest.mark.slow
def test_readme_workflow_runs_end_to_end_and_the_video_run_raises_alerts(tmp_path: Path) -> None:
    # One compute thread per step: on a shared CI runner OpenMP's spinning threads can slow training tenfold.
    env = os.environ | {"COLUMNS": "200", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    log = []
    for argv in workflow_commands(README.read_text(encoding="utf-8")):
        missing = [arg for arg in _inputs(argv) if not (tmp_path / arg).exists()]
        assert not missing, f"`{shlex.join(argv)}` names {missing}, which the steps before it did not make"
        done = subprocess.run([sys.executable, "-m", "fume_edge", *argv[1:]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        log.append((argv, done))
        assert done.returncode == 0, f"`{shlex.join(argv)}` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    run = next(done for argv, done in log if argv[1] == "run")
    assert "START" in run.stdout and "alerts went to: SQLite alerts.db" in run.stdout
    events = [json.loads(line) for line in log[-1][1].stdout.splitlines() if line.strip()]
    assert any(e["state"] == "start" for e in events), log[-1][1].stdout
    degraded = [e for e in events if e["type"] == "camera_degraded"]
    assert [e["state"] for e in degraded] == ["start", "end"] and degraded[1]["reason"] == "recovered"
