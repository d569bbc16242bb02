"""Every command's `--help` shows what its help strings say, defaults included.

Rich markup eats a bare `[default: X]` (it reads it as a style tag), leaving "WIDTHxHEIGHT ." in the rendered help.
This walks the Typer app itself, so commands added later are covered without touching this file.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from fume_edge.cli import app

WIDE = {"COLUMNS": "1000", "TERMINAL_WIDTH": "1000", "NO_COLOR": "1"}


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(argv path, command) for every command and subcommand under `group`."""
    found = []
    for name, command in getattr(group, "commands", {}).items():
        found.append(((*path, name), command))
        found.extend(_commands(command, (*path, name)))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _shown_help(param: Any) -> str:
    """The help text as a reader should see it: rich's escaped brackets unescaped, whitespace collapsed."""
    return _collapse((getattr(param, "help", None) or "").replace("\\[", "["))


def _rendered(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env=WIDE, terminal_width=1000)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_walk_finds_the_commands() -> None:
    names = {path[-1] for path, _ in COMMANDS}
    assert {"export", "import", "info", "pair", "synth", "quantize", "train", "run", "alerts"} <= names


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_shows_every_help_text_whole(path: tuple[str, ...], command: Any) -> None:
    """Each parameter's help, brackets and all, appears in the rendered help; a documented default is on its row."""
    rendered = _rendered(path)
    flat = _collapse(rendered)
    problems = []
    for param in command.params:
        text = _shown_help(param)
        if not text:
            continue
        if text not in flat:
            problems.append(f"{param.name}: help mangled, expected {text!r}")
            continue
        if "default:" in text or (
            param.param_type_name == "option"
            and param.show_default
            and param.default not in (None, False)
            and not param.is_flag
        ):
            row = next(line for line in rendered.splitlines() if text[:40] in _collapse(line))
            if not re.search(r"\[default: [^\]]+\]", row):
                problems.append(f"{param.name}: default not shown in {_collapse(row)!r}")
    assert not problems, f"`fume-edge {' '.join(path)} --help`:\n" + "\n".join(problems)
