"""Typed configuration helpers: dotted-key overrides of frozen dataclasses, and plain-dict round trips.

Every config in fidec is a frozen dataclass with its defaults in one place.  Presets, the CLI and
sweep specs all change configs the same way: a mapping of dotted keys to values,
e.g. ``{"agent.fisher.t_eps": 0.95, "agent.network.actor_hidden": [256, 256]}``.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid."""


def field_names(cls_or_obj) -> list[str]:
    return [f.name for f in dataclasses.fields(cls_or_obj)]


def all_keys(obj, prefix: str = "") -> list[str]:
    """Every dotted leaf key of a (nested) dataclass instance."""
    keys = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            keys.extend(all_keys(value, name + "."))
        else:
            keys.append(name)
    return keys


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert ``value`` (possibly a string from the command line) to the field's annotated type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except (ConfigError, ValueError, TypeError) as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: cannot read {value!r} as {annotation}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, list | tuple):
            value = [value]
        elem = args[0] if args else Any
        return tuple(_coerce(v, elem, key) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        except ValueError as exc:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from exc
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from exc
    if annotation is str:
        return str(value)
    return value


def apply_overrides(config: T, overrides: Mapping[str, Any]) -> T:
    """Return a copy of ``config`` with dotted-key ``overrides`` applied (types checked and coerced).

    Unknown keys raise :class:`ConfigError` listing the valid ones.
    """
    for key, value in overrides.items():
        config = _set(config, key.split("."), value, key)
    return config


def _set(obj, path: list[str], value: Any, full_key: str):
    hints = typing.get_type_hints(type(obj))
    names = field_names(obj)
    head = path[0].replace("-", "_")
    if head not in names:
        valid = ", ".join(all_keys(obj))
        raise ConfigError(f"unknown config key {full_key!r}; valid keys: {valid}")
    current = getattr(obj, head)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"config key {full_key!r}: {head!r} is a value, not a section")
        return dataclasses.replace(obj, **{head: _set(current, path[1:], value, full_key)})
    if dataclasses.is_dataclass(current):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {full_key!r} is a section; give a mapping or dotted keys")
        return dataclasses.replace(obj, **{head: apply_overrides(current, value)})
    try:
        return dataclasses.replace(obj, **{head: _coerce(value, hints[head], full_key)})
    except ConfigError:
        raise
    except ValueError as exc:  # raised by a dataclass's own __post_init__ validation
        raise ConfigError(f"{full_key}: {exc}") from exc


def to_dict(config) -> dict:
    """Nested plain dict (JSON-serialisable) of a dataclass config."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Rebuild a dataclass config from :func:`to_dict` output (unknown keys are an error)."""
    return apply_overrides(cls(), _flatten(data))


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
