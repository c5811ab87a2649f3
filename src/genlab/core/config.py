"""Frozen, typed config dataclasses built from YAML or keyword arguments.

`build_config(cls, mapping)` maps a mapping field for field onto a frozen dataclass: unknown keys,
wrong types and values outside a `Literal` are errors that name the key and the allowed values.
`load_run_config(path)` reads the three-section YAML (`model:`, `data:`, `train:`) and applies
`--set section.key=value` overrides.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from genlab.core.errors import ConfigError, GenlabError

T = TypeVar("T")

SECTIONS = ("model", "data", "train")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against a type annotation, converting only where it is lossless."""
    origin = get_origin(annotation)
    if annotation is Any:
        return value
    if origin is Literal:
        choices = get_args(annotation)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {annotation}"
        )
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_t, val_t = get_args(annotation)
        return {
            _coerce(k, key_t, where): _coerce(v, val_t, f"{where}.{k}") for k, v in value.items()
        }
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):
            # PyYAML follows YAML 1.1, which reads 3e-4 (no dot) as a string, not a number.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def build_config(cls: type[T], mapping: dict[str, Any] | None = None, where: str = "") -> T:
    """Build the frozen dataclass `cls` from `mapping`, rejecting unknown keys and bad types."""
    mapping = dict(mapping or {})
    where = where or cls.__name__
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(fields))}"
        )
    values = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in mapping.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        if isinstance(e, GenlabError):
            raise
        raise ConfigError(f"{where}: {e}") from None


def to_plain(value: Any) -> Any:
    """A value as plain YAML/JSON-friendly data: tuples become lists, recursively."""
    if isinstance(value, (tuple, list)):
        return [to_plain(x) for x in value]
    if isinstance(value, dict):
        return {k: to_plain(x) for k, x in value.items()}
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML/JSON-friendly values (tuples become lists)."""
    return {f.name: to_plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse `section.key=value` (value as YAML) into (["section", "key"], value)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.lr=3e-4")
    path, raw = text.split("=", 1)
    keys = path.strip().split(".")
    if len(keys) < 2 or keys[0] not in SECTIONS or not all(keys):
        raise ConfigError(
            f"--set {text!r}: the key must start with one of {', '.join(SECTIONS)}, "
            "e.g. train.lr=3e-4 or model.latent_dim=16"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({e})") from None
    return keys, value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with a clear error for missing, unreadable or malformed files."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {p} does not exist: check the path")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"config file {p} cannot be read ({e}): give a readable YAML file"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: expected a mapping with model:, data:, train:")
    return data


def load_run_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, dict[str, Any]]:
    """The raw three-section run config from an optional YAML file plus `--set` overrides."""
    raw = read_yaml(path) if path else {}
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"config: unknown section{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"allowed: {', '.join(SECTIONS)}"
        )
    sections: dict[str, dict[str, Any]] = {}
    for s in SECTIONS:
        value = raw.get(s) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"config: section {s}: expected a mapping, got {value!r}")
        sections[s] = dict(value)
    for text in overrides:
        keys, value = parse_override(text)
        node = sections[keys[0]]
        for k in keys[1:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {k} is not a mapping")
        node[keys[-1]] = value
    return sections
