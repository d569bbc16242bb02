"""The README's workflow, as written, runs end to end: each command in order, in a fresh folder.

The commands are read from the first ```bash block under "## The workflow", so the test follows the README when
it changes. Each step must succeed and find on disk every file its arguments name (what the steps before it made);
the video run at the end must raise an alert that `alerts --json` lists. The first bash block of docs/tensorrt.md then
runs on the workflow's files up to its first command that needs TensorRT, and the engine names it uses must be the ones
`build-engine` writes.
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

from fume_edge.extras import FEATURES

README = Path(__file__).resolve().parents[1] / "README.md"
TENSORRT_DOC = README.parent / "docs" / "tensorrt.md"
PATHLIKE = re.compile(r"[\w.-]+/[\w./-]*")  # an argument with a folder in it names a file or folder


NEEDS_TENSORRT = ("build-engine", "run")  # the TensorRT block's steps from which on a GPU and TensorRT are needed


def block_commands(readme: str, heading: str) -> list[list[str]]:
    """The argv of every command in the first bash block under a heading, comments dropped, in order."""
    section = f"\n{readme}".split(f"\n{heading}\n", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [argv for argv in commands if argv]


def workflow_commands(readme: str) -> list[list[str]]:
    return block_commands(readme, "## The workflow")


def tensorrt_commands() -> list[list[str]]:
    return block_commands(TENSORRT_DOC.read_text(encoding="utf-8"), "# TensorRT engines")


def tensorrt_commands_before_tensorrt() -> list[list[str]]:
    """The TensorRT block's commands that run without TensorRT: those before its first build or engine run."""
    commands = tensorrt_commands()
    first = next(i for i, argv in enumerate(commands) if argv[1] in NEEDS_TENSORRT)
    return commands[:first]


def _option(argv: list[str], *names: str) -> str | None:
    return next((argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in names), None)


def test_the_tensorrt_block_runs_the_engines_it_builds() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "fume_edge", "build-engine", "--help"],
        capture_output=True,
        text=True,
        env=os.environ | {"COLUMNS": "250"},
        check=True,
    ).stdout
    assert "default: engines/MODEL.PRECISION.engine" in help_text
    commands = tensorrt_commands()
    built = set()
    for argv in commands:
        if argv[1] == "build-engine":
            precision = "fp16" if "--fp16" in argv else "int8"
            built.add(_option(argv, "-o", "--output") or f"engines/{Path(argv[2]).stem}.{precision}.engine")
    used = {arg for argv in commands if argv[1] != "build-engine" for arg in argv if arg.endswith(".engine")}
    assert used and used <= built, f"the block runs {used - built}, which no build-engine line writes ({built})"
    assert [argv[1] for argv in tensorrt_commands_before_tensorrt()] == ["check"]


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
        done = subprocess.run(
            [sys.executable, "-m", "fume_edge", *argv[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        log.append((argv, done))
        assert done.returncode == 0, f"`{shlex.join(argv)}` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    for argv in tensorrt_commands_before_tensorrt():
        done = subprocess.run(
            [sys.executable, "-m", "fume_edge", *argv[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"`{shlex.join(argv)}` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    run = next(done for argv, done in log if argv[1] == "run")
    assert "START" in run.stdout and "alerts went to: SQLite alerts.db" in run.stdout
    events = [json.loads(line) for line in log[-1][1].stdout.splitlines() if line.strip()]
    assert any(e["state"] == "start" for e in events), log[-1][1].stdout
    degraded = [e for e in events if e["type"] == "camera_degraded"]
    assert [e["state"] for e in degraded] == ["start", "end"] and degraded[1]["reason"] == "recovered"


def test_the_quick_start_says_how_to_run_the_commands_and_what_the_page_needs() -> None:
    quick_start = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    text = " ".join(quick_start.split())
    assert "source .venv/bin/activate" in text and ".venv/bin/fume-edge" in text
    web = next(feature for feature in FEATURES if feature.extra == "web")
    assert "--http" in web.command and "pip install -e '.[web]'" in text
