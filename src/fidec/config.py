"""Typed configuration helpers: dotted-key overrides of frozen dataclasses, and plain-dict round trips.

Every config in fidec is a frozen dataclass with its defaults in one place.  Presets, the CLI and
sweep specs all change configs the same way: a mapping of dotted keys to values,
e.g. ``{"agent.fisher.t_eps": 0.95, "agent.network.actor_hidden": [256, 256]}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from fidec.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
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


def apply_overrides(config: T, overrides: Mapping[str, Any], _prefix: str = "") -> T:
    """Return a copy of ``config`` with dotted-key ``overrides`` applied (types checked and coerced).

    Each section is rebuilt once with all of its new values, so that a section's own validation sees
    the finished section (the order of keys does not matter).  Unknown keys raise :class:`ConfigError`
    listing the valid ones as they would be typed (``fisher.t_eps``).
    """
    hints = typing.get_type_hints(type(config))
    names = field_names(config)
    leaves: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        head = head.replace("-", "_")
        full_key = f"{_prefix}{key}"
        if head not in names:
            valid = ", ".join(f"{_prefix}{k}" for k in all_keys(config))
            raise ConfigError(f"unknown config key {full_key!r}; valid keys: {valid}")
        current = getattr(config, head)
        if rest:
            if not dataclasses.is_dataclass(current):
                raise ConfigError(f"config key {full_key!r}: {head!r} is a value, not a section")
            sections.setdefault(head, {})[rest] = value
        elif dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key {full_key!r}: {head!r} is a section; give a mapping or dotted keys")
            sections.setdefault(head, {}).update(_flatten(value))
        else:
            leaves[head] = _coerce(value, hints[head], full_key)
    for head, sub in sections.items():
        leaves[head] = apply_overrides(getattr(config, head), sub, f"{_prefix}{head}.")
    if not leaves:
        return config
    try:
        return dataclasses.replace(config, **leaves)
    except ConfigError:
        raise
    except ValueError as exc:  # raised by a dataclass's own __post_init__ validation
        raise ConfigError(f"{_prefix.rstrip('.') or 'config'}: {exc}") from exc


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


def check_finite_fields(config: Any) -> None:
    """Raise ValueError naming the first float field of a dataclass that is NaN or infinite (e.g.
    ``--set agent.lr=inf``): no setting of fidec means anything at a non-finite value."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, got {value}")
