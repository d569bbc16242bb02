"""Typed configuration: dataclasses filled from YAML with errors that name the file, the key and the expected type.

Each subsystem declares its own dataclass (training, run, data); this module only knows how to fill one from a
mapping, strictly: an unknown key or a wrong type is a one-line `FumeEdgeError`, never a silent default.
Packaged defaults live in `fume_edge/configs/*.yaml`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from fume_edge.errors import FumeEdgeError

T = TypeVar("T")


def read_utf8(path: str | Path, encoding: str = "utf-8") -> str:
    """A text file's contents; bytes that are not UTF-8 are one error naming the file and the byte offset."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FumeEdgeError(f"{path}: not UTF-8 text (byte offset {exc.start}, line {line}: "
                            f"{raw[exc.start:exc.end]!r}); save the file as UTF-8") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from a file; a missing file, bytes that are not UTF-8 or malformed YAML is one clear
    error."""
    path = Path(path)
    if not path.is_file():
        raise FumeEdgeError(f"{path}: config file not found; pass an existing YAML file")
    text = read_utf8(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise FumeEdgeError(f"{path}: malformed YAML{where}; fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FumeEdgeError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def packaged_defaults(name: str) -> dict[str, Any]:
    """The packaged default config `fume_edge/configs/NAME.yaml` as a mapping."""
    text = resources.files("fume_edge.configs").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting only lossless cases (int -> float, list -> tuple)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except FumeEdgeError as exc:
                errors.append(exc)
        raise FumeEdgeError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise FumeEdgeError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):  # a section already typed as a pydantic model
        try:
            return tp.model_validate(value)
        except pydantic.ValidationError as exc:
            error = exc.errors()[0]
            key = "".join(f".{part}" for part in error["loc"])
            raise FumeEdgeError(f"{where}{key}: {error['msg']}") from None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise FumeEdgeError(f"{where}: expected a mapping, got {value!r}")
        return from_mapping(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise FumeEdgeError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise FumeEdgeError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise FumeEdgeError(f"{where}: expected a mapping, got {value!r}")
        key_tp, val_tp = args or (Any, Any)
        return {_coerce(k, key_tp, where): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise FumeEdgeError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float) and isinstance(value, bool):
        raise FumeEdgeError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise FumeEdgeError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def from_mapping(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from `data`; unknown keys and wrong types raise a `FumeEdgeError` naming the key."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise FumeEdgeError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(fields))}")
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a required field without a default
        raise FumeEdgeError(f"{where}: {exc}") from None
    check = getattr(obj, "validate", None)
    if callable(check):
        check(where)
    return obj


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base` (nested mappings merged key by key)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(cls: type[T], defaults_name: str, path: str | Path | None = None) -> T:
    """Packaged defaults `defaults_name`, overridden by the user's YAML file at `path` when given."""
    data = packaged_defaults(defaults_name)
    where = defaults_name
    if path is not None:
        data = merge(data, read_yaml(path))
        where = str(path)
    return from_mapping(cls, data, where)
