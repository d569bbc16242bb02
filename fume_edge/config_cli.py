"""`fume-edge config schema|check|show`: the configuration files as an editor, a reviewer and an operator see them.

`schema` writes the JSON Schema an editor uses to complete and check keys (the shipped YAML files point at the
committed copies in `fume_edge/configs/schemas/`); `check` validates a file without running anything; `show`
prints the effective configuration with where each value came from (default, file or option).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from fume_edge.config import (
    Key,
    Override,
    Resolved,
    TopConfig,
    YamlLoader,
    dotted_key,
    file_layer,
    resolve_config,
)
from fume_edge.errors import FumeEdgeError

KINDS = ("run", "train", "data")
SCHEMA_DIR = Path(__file__).parent / "configs" / "schemas"  # the committed schemas the shipped YAML files name


def model(kind: str) -> type[TopConfig]:
    """The model of a kind of configuration file (imported on use: `fume-edge --help` stays fast)."""
    if kind == "run":
        from fume_edge.pipeline.config import RunConfig

        return RunConfig
    if kind == "train":
        from fume_edge.train.config import TrainConfig

        return TrainConfig
    from fume_edge.data.config import DataConfig

    return DataConfig


def resolve(kind: str, file: Path | None, overrides: list[Override]) -> Resolved[Any]:
    """What a command of `kind` would run with (run also applies the synthetic demo's alert timings)."""
    if kind == "run":
        from fume_edge.pipeline.config import resolve_run_config

        return resolve_run_config(file, overrides)
    return resolve_config(model(kind), file, overrides)


config_app = typer.Typer(
    help="Configuration files: JSON Schema for editors, checks without running, the effective values.",
    rich_markup_mode="rich",
    no_args_is_help=True,
)
console = Console(highlight=False, soft_wrap=True)


def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a user's file of `kind`. Nothing is required (a file overrides any subset of the packaged
    defaults); types, ranges, enums and unknown keys are checked."""
    document = model(kind).model_json_schema()

    def optional(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("required", None)
            for value in node.values():
                optional(value)
        elif isinstance(node, list):
            for value in node:
                optional(value)

    optional(document)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **document,
        "title": f"fume-edge {kind}.yaml",
        "description": f"A fume-edge {kind} configuration file; every key is optional (the defaults, and the "
        f"reasons for them, are in fume_edge/configs/{kind}.yaml).",
    }


def schema_text(kind: str) -> str:
    return json.dumps(schema(kind), indent=2, sort_keys=True) + "\n"


def detect_kind(path: Path) -> str:
    """The kind of configuration file whose keys the file's top level matches best (ties: run, train, data)."""
    keys = set(file_layer(path).data)
    fields = {kind: set(model(kind).model_fields) for kind in KINDS}
    scores = {kind: len(keys & fields[kind]) - len(keys - fields[kind]) for kind in KINDS}
    best = max(scores, key=lambda kind: scores[kind])
    if scores[best] <= 0 and keys:
        raise FumeEdgeError(
            f"{path}: not a run, train or data configuration (top-level keys: "
            f"{', '.join(sorted(keys))}); pass --kind run|train|data"
        )
    return best


def _kind(kind: str | None, path: Path | None) -> str:
    if kind is not None and kind not in KINDS:
        raise FumeEdgeError(f"{kind}: not a kind of configuration; expected {', '.join(KINDS)}")
    return kind or (detect_kind(path) if path is not None else "run")


def _overrides(settings: list[str]) -> list[Override]:
    """`--set KEY=VALUE` options (VALUE read as YAML: 0.5, true, null, [1, 2])."""
    out = []
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep or not key.strip():
            raise FumeEdgeError(f"--set {setting!r}: expected KEY=VALUE, e.g. --set pipeline.tick_s=0.2")
        try:
            value = yaml.load(text, Loader=YamlLoader)  # noqa: S506 (a safe loader)
        except yaml.YAMLError:
            raise FumeEdgeError(f"--set {setting!r}: the value is not YAML; quote it") from None
        out.append(Override(key.strip(), value, f"--set {key.strip()}"))
    return out


def _leaves(value: Any, key: Key = ()) -> Iterator[tuple[Key, Any]]:
    if isinstance(value, dict) and value:
        for name, item in value.items():
            yield from _leaves(item, (*key, name))
    else:
        yield key, value


@config_app.command("schema")
def schema_cmd(
    kind: str = typer.Argument(..., help="Which configuration: run, train or data."),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write the schema to this file \\[default: stdout]."
    ),
) -> None:
    """Write the JSON Schema of a configuration file, for editors (yaml-language-server) and CI checks."""
    _kind(kind, None)
    text = schema_text(kind)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    console.print(
        f"wrote {output}; point an editor at it with a first line "
        f"`# yaml-language-server: $schema={output}` in your {kind}.yaml"
    )


@config_app.command("check")
def check_cmd(
    path: Path = typer.Argument(..., help="The YAML file to check."),
    kind: str | None = typer.Option(None, "--kind", help="run, train or data \\[default: detected from the keys]."),
) -> None:
    """Validate a configuration file without running anything: every problem, one line each, with its line."""
    chosen = _kind(kind, path)
    resolve(chosen, path, [])
    console.print(f"{path}: a valid {chosen} configuration")


@config_app.command("show")
def show_cmd(
    config: Path | None = typer.Option(
        None, "--config", help="The YAML file a command would be given \\[default: none, packaged defaults]."
    ),
    kind: str | None = typer.Option(
        None, "--kind", help="run, train or data \\[default: detected from --config, else run]."
    ),
    settings: list[str] = typer.Option(
        [],
        "--set",
        help="KEY=VALUE as a command-line option would set it, e.g. "
        "pipeline.tick_s=0.2 (repeatable) \\[default: none].",
    ),
) -> None:
    """Print the effective configuration, each key with where its value came from (default, file or option)."""
    chosen = _kind(kind, config)
    resolved = resolve(chosen, config, _overrides(settings))
    for key, value in _leaves(resolved.config.model_dump(mode="json")):
        origin = resolved.origin(key)
        console.print(
            f"{escape(dotted_key(key))}: {escape(json.dumps(value))}  [dim]# {origin.kind}"
            f"{escape(' ' + origin.where) if origin.where else ''}[/]"
        )
