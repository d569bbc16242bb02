"""Configuration: one load path for every command, errors naming file, line and key, bounds on every number, and the
`fume-edge config schema|check|show` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from fume_edge.cli import app
from fume_edge.config import Override, load_config, replace
from fume_edge.config_cli import KINDS, SCHEMA_DIR, model, schema, schema_text
from fume_edge.data.config import load_data_config
from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.config import RunConfig, load_run_config
from fume_edge.train.trainer import command_config

BAD_RUN = """\
# a user's run.yaml
pipeline:
  tick_s: 0.2
alerts:
  acidosis_risk:
    start_at: 1.5
    start_after: 30
sinks:
  queue_size: many
"""


def _write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(call: Any, *args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(FumeEdgeError) as caught:
        call(*args, **kwargs)
    return str(caught.value).splitlines()


def test_a_wrong_value_names_file_line_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, BAD_RUN)
    assert f"{path}:6: alerts.acidosis_risk.start_at: must be <= 1 (got 1.5)" in _error(load_run_config, path)


def test_an_unknown_key_suggests_the_near_miss(tmp_path: Path) -> None:
    path = _write(tmp_path, BAD_RUN)
    assert f"{path}:7: alerts.acidosis_risk.start_after: unknown key; did you mean 'start_after_s'?" in _error(
        load_run_config, path
    )


def test_every_error_is_listed_at_once_in_file_order(tmp_path: Path) -> None:
    path = _write(tmp_path, BAD_RUN)
    assert _error(load_run_config, path) == [
        f"{path}:6: alerts.acidosis_risk.start_at: must be <= 1 (got 1.5)",
        f"{path}:7: alerts.acidosis_risk.start_after: unknown key; did you mean 'start_after_s'?",
        f"{path}:9: sinks.queue_size: expected a whole number (got 'many')",
    ]


def test_the_cli_prints_the_errors_without_a_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, BAD_RUN)
    done = subprocess.run(
        [sys.executable, "-m", "fume_edge", "run", "--config", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"error: {path}:6: alerts.acidosis_risk.start_at: must be <= 1 (got 1.5)"
    assert len(lines) == 3


@pytest.mark.parametrize(
    "text, expected",
    [
        ("pipeline:\n  tick_s: .inf\n", "2: pipeline.tick_s: must be a finite number (got .inf)"),
        ("pipeline:\n  tick_s: 1.0e308\n", "2: pipeline.tick_s: must be <= 60 (got 1e+308)"),
        ("pipeline:\n  tick_s: 1e308\n", "2: pipeline.tick_s: must be <= 60 (got 1e+308)"),
        ("pipeline:\n  tick_s: .nan\n", "2: pipeline.tick_s: must be a finite number (got .nan)"),
        ("pipeline:\n  duration_s: 1.0e12\n", "2: pipeline.duration_s: must be <= 31622400 (got 1000000000000)"),
        (
            "pipeline:\n  max_frames: 99999999999999\n",
            "2: pipeline.max_frames: must be <= 1000000000 (got 99999999999999)",
        ),
        ("sinks:\n  retry_max_s: .inf\n", "2: sinks.retry_max_s: must be a finite number (got .inf)"),
        ("sinks:\n  mqtt:\n    keepalive_s: 100000\n", "3: sinks.mqtt.keepalive_s: must be <= 65535 (got 100000)"),
    ],
)
def test_huge_durations_and_counts_are_clean_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    assert _error(load_run_config, path) == [f"{path}:{expected}"]


def _numbers(node: Any, where: str, defs: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every numeric leaf of a JSON Schema (refs followed), with its path."""
    if "$ref" in node:
        return _numbers(defs[node["$ref"].rsplit("/", 1)[1]], where, defs)
    found = [(where, node)] if node.get("type") in ("number", "integer") else []
    for key in ("anyOf", "prefixItems"):
        for index, option in enumerate(node.get(key, [])):
            found += _numbers(option, f"{where}[{index}]" if key == "prefixItems" else where, defs)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += _numbers(node[key], f"{where}[]", defs)
    for name, child in node.get("properties", {}).items():
        found += _numbers(child, f"{where}.{name}", defs)
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_every_number_in_every_configuration_has_an_upper_bound(kind: str) -> None:
    document = model(kind).model_json_schema()
    unbounded = [
        where
        for where, node in _numbers(document, kind, document.get("$defs", {}))
        if "maximum" not in node and "exclusiveMaximum" not in node
    ]
    assert unbounded == []


def test_options_are_named_in_their_errors(tmp_path: Path) -> None:
    overrides = [Override("pipeline.max_frames", 0, "--max-frames"), Override("sources.pacing", "slow", "--pacing")]
    assert _error(load_run_config, None, overrides) == [
        "--pacing: sources.pacing: expected 'realtime' or 'fast' (got 'slow')",
        "--max-frames: pipeline.max_frames: must be >= 1 (got 0)",
    ]


def test_train_flags_go_through_the_same_checks(tmp_path: Path) -> None:
    assert _error(command_config, None, None, epochs=0) == ["--epochs: epochs: must be >= 1 (got 0)"]
    assert command_config(None, None, size=(320, 240), epochs=3).data.image_size == (320, 240)


def test_modality_dropout_is_below_one_in_both_places(tmp_path: Path) -> None:
    data = _write(tmp_path, "dataset:\n  modality_dropout: 1.0\n", "data.yaml")
    assert _error(load_data_config, data) == [f"{data}:2: dataset.modality_dropout: must be < 1 (got 1)"]
    train = _write(tmp_path, "data:\n  modality_dropout: 1.0\n", "train.yaml")
    assert _error(command_config, train, None) == [f"{train}:2: data.modality_dropout: must be < 1 (got 1)"]


def test_a_model_check_points_at_its_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "alerts:\n  acidosis_risk:\n    start_at: 0.3\n    end_below: 0.5\n")
    assert _error(load_run_config, path) == [
        f"{path}:4: alerts.acidosis_risk.end_below: must be below start_at (0.3), got 0.5"
    ]


def test_configs_are_immutable_snapshots_and_copies_are_checked() -> None:
    config, _ = load_run_config()
    with pytest.raises(Exception, match="frozen"):
        config.pipeline.tick_s = 1.0  # type: ignore[misc]
    assert replace(config.pipeline, tick_s=0.5).tick_s == 0.5 and config.pipeline.tick_s == 0.1
    assert _error(replace, config.pipeline, tick_s=float("inf")) == [
        "PipelineConfig.tick_s: must be a finite number (got .inf)"
    ]


# --- fume-edge config schema | check | show ---------------------------------------------------------------------


def _shipped(kind: str) -> str:
    return resources.files("fume_edge.configs").joinpath(f"{kind}.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", KINDS)
def test_the_committed_schema_is_current(kind: str) -> None:
    assert (SCHEMA_DIR / f"{kind}.schema.json").read_text(encoding="utf-8") == schema_text(kind), (
        f"stale: run `fume-edge config schema {kind} -o fume_edge/configs/schemas/{kind}.schema.json`"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_every_shipped_yaml_validates_against_its_schema_and_names_it(kind: str) -> None:
    text = _shipped(kind)
    assert text.splitlines()[0] == f"# yaml-language-server: $schema=schemas/{kind}.schema.json"
    committed = json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(committed)
    jsonschema.validate(yaml.safe_load(text), committed, cls=jsonschema.Draft202012Validator)


def test_the_schema_refuses_what_the_loader_refuses() -> None:
    validator = jsonschema.Draft202012Validator(schema("run"))
    for bad in (
        {"pipeline": {"tick_s": 1e308}},
        {"alerts": {"acidosis_risk": {"start_after": 3}}},
        {"alerts": {"smoothing": "median"}},
        {"sinks": {"queue_size": "many"}},
    ):
        assert not validator.is_valid(bad), bad
    assert validator.is_valid({"pipeline": {"tick_s": 0.5}})  # a partial file is a valid file


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_config_schema_writes_the_schema(tmp_path: Path) -> None:
    result = _cli("config", "schema", "train", "-o", str(tmp_path / "train.json"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "train.json").read_text())["properties"]["epochs"]["maximum"] == 100_000
    assert json.loads(_cli("config", "schema", "data").stdout)["title"] == "fume-edge data.yaml"


def test_config_check_detects_the_kind_and_reports_every_problem(tmp_path: Path) -> None:
    good = _write(tmp_path, "epochs: 5\noptim:\n  lr: 0.01\n", "mine.yaml")
    result = _cli("config", "check", str(good))
    assert result.exit_code == 0 and f"{good}: a valid train configuration" in result.stdout
    data = _write(tmp_path, "pairing:\n  tolerance_s: 0.2\n", "pairs.yaml")
    assert "a valid data configuration" in _cli("config", "check", str(data)).stdout
    bad = _write(tmp_path, BAD_RUN)
    assert len(_error(_cli_raise, "config", "check", str(bad))) == 3
    assert _error(_cli_raise, "config", "check", str(good), "--kind", "run") == [
        f"{good}:1: epochs: unknown key; valid keys: device_id, station_id, model, alerts, stations, sinks, sources, "
        "sync, pipeline, http",
        f"{good}:2: optim: unknown key; valid keys: device_id, station_id, model, alerts, stations, sinks, sources, "
        "sync, pipeline, http",
    ]


def _cli_raise(*args: str) -> None:
    result = _cli(*args)
    if result.exception is not None:
        raise result.exception


def test_config_show_says_where_each_value_came_from(tmp_path: Path) -> None:
    path = _write(tmp_path, "# mine\npipeline:\n  tick_s: 0.25\n")
    result = _cli("config", "show", "--config", str(path), "--set", "pipeline.max_frames=50")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"pipeline.tick_s: 0.25  # file {path}:3" in lines
    assert "pipeline.max_frames: 50  # option --set pipeline.max_frames" in lines
    assert "pipeline.refresh_hz: 4.0  # default fume_edge/configs/run.yaml:" + _line("run", "refresh_hz") in lines
    assert len(lines) == len(_leaves(load_config(RunConfig).model_dump()))


def _line(kind: str, key: str) -> str:
    return str(next(n for n, line in enumerate(_shipped(kind).splitlines(), 1) if line.strip().startswith(key + ":")))


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict) and value:
        return [leaf for item in value.values() for leaf in _leaves(item)]
    return [value]


def test_config_show_refuses_a_bad_set(tmp_path: Path) -> None:
    assert _error(_cli_raise, "config", "show", "--set", "pipeline.tick_s") == [
        "--set 'pipeline.tick_s': expected KEY=VALUE, e.g. --set pipeline.tick_s=0.2"
    ]
    assert _error(_cli_raise, "config", "show", "--set", "pipeline.tick_s=-1") == [
        "--set pipeline.tick_s: pipeline.tick_s: must be > 0 (got -1)"
    ]
