"""Typed configuration: pydantic models filled from YAML, with errors that name the file, the line and the key.

Each subsystem declares its own models (training, run, data) on `ConfigModel`: types, ranges and enums live on the
fields, and unknown keys are refused. Default values live in one place only, the packaged
`fume_edge/configs/NAME.yaml` files (with the reasons beside them); a user's file and then command-line options
override keys one by one. `load_config` is the one path every command takes from those three layers to a model;
`resolve_config` also says where each value came from (`fume-edge config show`).
"""

from __future__ import annotations

import difflib
import json
import math
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fume_edge.errors import FumeEdgeError

Key = tuple[str | int, ...]

# Upper bounds: a value past them is a typo, and `.inf` or 1e308 would otherwise overflow deep inside a run.
MAX_SECONDS = 366 * 86400.0  # a year: the longest duration or interval any setting may name
MAX_DAYS = 36_500.0  # retention ages: a century
MAX_COUNT = 1_000_000_000  # frames, events, samples, epochs
MAX_BYTES = 1 << 50  # a petabyte
MAX_FPS = 1000.0
MAX_PIXELS = 16_384  # one image side

Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
PositiveSeconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]
Days = Annotated[float, Field(gt=0, le=MAX_DAYS)]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Bytes = Annotated[int, Field(ge=1, le=MAX_BYTES)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Fps = Annotated[float, Field(gt=0, le=MAX_FPS)]
Pixels = Annotated[int, Field(ge=1, le=MAX_PIXELS)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class ConfigModel(BaseModel):
    """Base of every configuration section: strict types (no "5" for 5, no 1 for true), unknown keys refused,
    finite numbers only, immutable once built (threads share it as a snapshot)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


C = TypeVar("C", bound=ConfigModel)


def replace(config: C, **changes: Any) -> C:
    """A copy of `config` with `changes`, checked like a loaded one (`dataclasses.replace` for the models)."""
    values = {**{name: getattr(config, name) for name in type(config).model_fields}, **changes}
    try:
        return type(config).model_validate(values)
    except ValidationError as exc:
        raise config_errors(type(config), exc, Layer(values, {}), "", type(config).__name__) from None


class TopConfig(ConfigModel):
    """A whole configuration file; `defaults_name` names its packaged defaults `fume_edge/configs/NAME.yaml` (None:
    a file that has none, every key given)."""

    defaults_name: ClassVar[str | None]


M = TypeVar("M", bound=TopConfig)


def read_utf8(path: str | Path, encoding: str = "utf-8") -> str:
    """A text file's contents; bytes that are not UTF-8 are one error naming the file and the byte offset."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FumeEdgeError(
            f"{path}: not UTF-8 text (byte offset {exc.start}, line {line}: "
            f"{raw[exc.start : exc.end]!r}); save the file as UTF-8"
        ) from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base` (nested mappings merged key by key)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


KINDS = ("default", "file", "option")  # where a value can come from, in the order they override each other


@dataclass(frozen=True)
class Origin:
    """Where one value came from: `kind` is default, file or option; `where` is FILE:LINE or the option."""

    kind: str
    where: str


@dataclass(frozen=True)
class Layer:
    """One source of keys (packaged defaults, a user's file, command-line options) and the origin of each key."""

    data: dict[str, Any]
    origins: dict[Key, Origin]

    def section(self, key: Key, to: Key) -> Layer:
        """The sub-mapping at `key`, moved to `to` (with its origins)."""
        data: Any = self.data
        for part in key:
            data = data.get(part) if isinstance(data, dict) else None
        for part in reversed(to):
            data = {part: data if isinstance(data, dict) else {}}
        n = len(key)
        return Layer(data, {to + k[n:]: o for k, o in self.origins.items() if k[:n] == key and len(k) > n})


@dataclass(frozen=True)
class Override:
    """A value a command-line option gives one configuration key (`key` is dotted: `pipeline.max_frames`)."""

    key: str
    value: Any
    option: str


def given(*options: tuple[str, Any, str]) -> list[Override]:
    """Overrides from `(key, value, option)` triples, leaving out options not given (None)."""
    return [Override(key, value, option) for key, value, option in options if value is not None]


def mapping_layer(data: dict[str, Any], label: str, kind: str = "file") -> Layer:
    """A mapping that is not a YAML file (a configuration saved in a checkpoint) as a layer labelled `label`."""
    origins: dict[Key, Origin] = {}

    def walk(value: Any, key: Key) -> None:
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for part, item in items:
            origins[key + (part,)] = Origin(kind, label)
            walk(item, key + (part,))

    walk(data, ())
    return Layer(data, origins)


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, plus YAML 1.2 floats: `1e-3` and `1e308` are numbers, not the strings YAML 1.1 makes of
    them (an exponent without a sign), so `lr: 1e-3` means what its writer meant."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _yaml_node(text: str, label: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=YamlLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise FumeEdgeError(f"{label}{where}: {problem}; fix the YAML syntax") from None


def _node_origins(node: yaml.Node, key: Key, origin: Origin, out: dict[Key, Origin]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*key, key_node.value)
            out[path] = Origin(origin.kind, f"{origin.where}:{key_node.start_mark.line + 1}")
            _node_origins(value_node, path, origin, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*key, index)
            out[path] = Origin(origin.kind, f"{origin.where}:{item.start_mark.line + 1}")
            _node_origins(item, path, origin, out)


def yaml_layer(text: str, label: str, kind: str) -> Layer:
    """A YAML document as a layer; `label` names it in errors (a path, or `run.yaml` for packaged defaults)."""
    node = _yaml_node(text, label)
    if node is None:
        return Layer({}, {})
    data = YamlLoader(text).get_single_data()
    if not isinstance(data, dict):
        raise FumeEdgeError(f"{label}: expected a mapping of keys to values at the top level")
    origins: dict[Key, Origin] = {}
    _node_origins(node, (), Origin(kind, label), origins)
    return Layer(data, origins)


def file_layer(path: str | Path) -> Layer:
    """A user's YAML file as a layer; a missing file, bytes that are not UTF-8 or malformed YAML is one error."""
    if not Path(path).is_file():
        raise FumeEdgeError(f"{path}: config file not found; pass an existing YAML file")
    return yaml_layer(read_utf8(path), str(path), "file")


def defaults_layer(name: str) -> Layer:
    """The packaged defaults `fume_edge/configs/NAME.yaml`."""
    text = resources.files("fume_edge.configs").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return yaml_layer(text, f"fume_edge/configs/{name}.yaml", "default")


def packaged_defaults(name: str) -> dict[str, Any]:
    """The packaged default config `fume_edge/configs/NAME.yaml` as a mapping."""
    return defaults_layer(name).data


def option_layer(overrides: Iterable[Override]) -> Layer:
    data: dict[str, Any] = {}
    origins: dict[Key, Origin] = {}
    for override in overrides:
        parts = tuple(override.key.split("."))
        nested: Any = override.value
        for part in reversed(parts):
            nested = {part: nested}
        data = merge(data, nested)
        origins[parts] = Origin("option", override.option)
    return Layer(data, origins)


def stack(layers: Iterable[Layer]) -> Layer:
    """Layers merged in order, later keys winning; a key a later layer replaces forgets the origins beneath it."""
    data: dict[str, Any] = {}
    origins: dict[Key, Origin] = {}
    for layer in layers:
        data = merge(data, layer.data)
        for key, origin in layer.origins.items():
            if key in origins:
                value = _lookup(layer.data, key)
                if not isinstance(value, dict):
                    origins = {k: o for k, o in origins.items() if k[: len(key)] != key}
            origins[key] = origin
    return Layer(data, origins)


def _has(data: Any, part: str | int) -> bool:
    """Whether `data[part]` names something: a key of a mapping or an index of a list."""
    return (isinstance(data, dict) and part in data) or (
        isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
    )


def _lookup(data: Any, key: Key) -> Any:
    for part in key:
        if not _has(data, part):
            return None
        data = data[part]
    return data


@dataclass(frozen=True)
class Resolved(Generic[M]):
    """A validated configuration, the merged mapping it was built from, and where each key came from."""

    config: M
    data: dict[str, Any]
    origins: dict[Key, Origin]

    def origin(self, key: Key) -> Origin:
        return _origin(self.origins, key) or Origin("default", "")


def _origin(origins: Mapping[Key, Origin], key: Key) -> Origin | None:
    for n in range(len(key), 0, -1):
        if key[:n] in origins:
            return origins[key[:n]]
    return None


def dotted_key(key: Key) -> str:
    """`sinks.mqtt.url`, `loss.ph_alpha[1]`: a key as the user would name it."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in key).lstrip(".")


def _data_key(data: Any, loc: tuple[Any, ...]) -> Key:
    """pydantic's error location as a key into the data (union member tags dropped; a refused key kept)."""
    key: list[str | int] = []
    for index, part in enumerate(loc):
        if _has(data, part):
            data = data[part]
        elif index == len(loc) - 1 and isinstance(data, dict):
            pass  # an unknown or missing key at this level
        else:
            continue
        key.append(part)
    return tuple(key)


def _fields_at(model: type[BaseModel], key: Key) -> list[str]:
    """The field names of the model that validates the mapping at `key`."""
    current: Any = model
    for part in key:
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            if isinstance(part, int):
                continue
            return []
        current = _model_in(current.model_fields[part].annotation)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _model_in(annotation: Any) -> Any:
    """The model class inside an annotation (`X | None`, `tuple[X, ...]`, `list[X]`), else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _plain(value: Any) -> str:
    """A value as the user wrote it in YAML (1.0 as 1, infinity as .inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ".inf" if value > 0 else "-.inf"
    if isinstance(value, float) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return json.dumps(value, default=str) if not isinstance(value, str) else repr(value)


_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_TYPES = {
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "list_type": "a list",
    "tuple_type": "a list",
    "model_attributes_type": "a mapping of keys to values",
    "none_required": "null",
}


def _message(error: Any, fields: list[str]) -> str:
    """One pydantic error in fume-edge's words."""
    kind, ctx, got = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in _BOUNDS:
        return f"must be {_BOUNDS[kind]} {_plain(next(iter(ctx.values())))} (got {_plain(got)})"
    if kind == "finite_number":
        return f"must be a finite number (got {_plain(got)})"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        near = difflib.get_close_matches(key, fields, n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"valid keys: {', '.join(fields)}"
        return f"unknown key; {hint}"
    if kind == "missing" and isinstance(error["loc"][-1], int):
        return f"too few items: item {error['loc'][-1] + 1} is missing"
    if kind == "missing":
        return "missing; give it a value"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'one of the listed values')} (got {_plain(got)})"
    if kind in ("too_short", "string_too_short"):
        unit = "characters" if kind.startswith("string") else "items"
        return f"must have at least {ctx['min_length']} {unit} (got {_plain(got)})"
    if kind in ("too_long", "string_too_long"):
        unit = "characters" if kind.startswith("string") else "items"
        return f"must have at most {ctx['max_length']} {unit} (got {_plain(got)})"
    if kind in _TYPES:
        return f"expected {_TYPES[kind]} (got {_plain(got)})"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return f"{error['msg']} (got {_plain(got)})"


def config_errors(
    model: type[BaseModel], exc: ValidationError, layer: Layer, fallback: str, prefix: str = ""
) -> FumeEdgeError:
    """Every validation error, one line each: `FILE:LINE: key.path: what is wrong` (`--option: key.path: ...` for a
    value a command-line option gave).
    A model check (`model_validator`) whose message starts with `FIELD: ` is reported at that field."""
    lines: dict[str, tuple[int, str, int]] = {}  # line -> (kind, file, line number): reported in file order
    for error in exc.errors():
        key = _data_key(layer.data, error["loc"])
        fields = _fields_at(model, key)
        field, sep, rest = str((error.get("ctx") or {}).get("error", "")).partition(": ")
        if error["type"] == "value_error" and sep and field in fields:  # a model check that names its field
            key, error = (*key, field), {**error, "ctx": {"error": rest}}
        dotted = ".".join(filter(None, (prefix, dotted_key(key)))) or "(top level)"
        origin = _origin(layer.origins, key)
        where = origin.where if origin else fallback
        text = ": ".join(filter(None, (where, dotted, _message(error, _fields_at(model, key[:-1])))))
        file, _, number = (origin.where if origin else "").rpartition(":")
        kind = KINDS.index(origin.kind) if origin else 0
        lines.setdefault(text, (kind, file, int(number) if number.isdigit() else 0))
    return FumeEdgeError("\n".join(sorted(lines, key=lambda text: lines[text])))


def validate(model: type[C], layer: Layer, fallback: str, prefix: str = "") -> C:
    """`layer.data` as `model`; all errors at once as one `FumeEdgeError`. The data passes through JSON so that YAML
    lists fill tuples and integers fill floats, while strings are never silently read as numbers."""
    try:
        text = json.dumps(layer.data, default=str, allow_nan=True)
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise config_errors(model, exc, layer, fallback, prefix) from None


def resolve_config(
    model: type[M], file: str | Path | None = None, overrides: Iterable[Override] = (), *, under: Iterable[Layer] = ()
) -> Resolved[M]:
    """Packaged defaults, then the layers `under` the user's file, then the file at `file`, then `overrides`."""
    layers = [*([defaults_layer(model.defaults_name)] if model.defaults_name else []), *under]
    if file is not None:
        layers.append(file_layer(file))
    layers.append(option_layer(overrides))
    merged = stack(layers)
    fallback = str(file) if file is not None else f"fume_edge/configs/{model.defaults_name or model.__name__}.yaml"
    return Resolved(validate(model, merged, fallback), merged.data, merged.origins)


def load_config(model: type[M], file: str | Path | None = None, overrides: Iterable[Override] = ()) -> M:
    """The configuration a command runs with: packaged defaults, the user's file, then command-line options."""
    return resolve_config(model, file, overrides).config


def section(model: type[C], data: dict[str, Any], key: str) -> C:
    """One section (e.g. `alerts:`) validated on its own, for tools and tests that build a part of run.yaml; errors
    name the keys under `key`."""
    return validate(model, Layer(data, {}), "", key)
