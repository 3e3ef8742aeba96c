"""Typed configuration: frozen dataclasses read from plain tables and changed by dotted keys, one error style.

Every config in fidec (runs, agents, sweep specs) is a frozen dataclass with its defaults in one place and
its own checks in ``__post_init__``.  Presets, the command line and sweep specs change configs the same
way: a mapping of dotted keys to values, e.g. ``{"agent.fisher.t_eps": 0.95, "agent.network.actor_hidden":
[256, 256]}``; files are read with :func:`from_dict`.  Values are converted to each field's annotated type
(strings from the command line included: ``"1e-4"``, ``"64,64"``, ``"none"``, ``"inf"``), and every mistake
is a :class:`ConfigError` whose message names the dotted key, what is wrong, and the valid choices, with a
"did you mean" for a misspelt key or choice.

Field docstrings: a dataclass's ``Attributes:`` section (Google style) describes its fields;
:func:`field_descriptions` reads it, so help texts and error messages use the same one-line descriptions.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fidec.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A configuration value or key is invalid."""


class _DottedTable:
    """Marker for a mapping field whose nested tables are read as dotted keys ({a: {b: 1}} -> {'a.b': 1})."""

    def __repr__(self) -> str:
        return "DottedKeys"


# A field holding dotted keys, e.g. a sweep's ``train`` table (``Mapping[str, Any]`` to a type checker).
DottedKeys = Annotated[Mapping[str, Any], _DottedTable()]
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_NONE = ("none", "null")


# -- names, keys and descriptions -------------------------------------------------------------------------


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` naming the (up to two) choices closest to ``name``; ``""`` if none is."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=2)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def unknown_key_error(key: str, valid: Sequence[str]) -> ConfigError:
    """The error for a key that is not a field: the key as typed, the closest valid keys, all valid keys."""
    return ConfigError(
        f"unknown config key {key!r}{did_you_mean(key, valid)}; valid keys: {', '.join(valid)}"
    )


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


def class_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted leaf key of a dataclass type (sections are the fields annotated with a dataclass)."""
    keys = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        annotation = _strip_annotated(hints[f.name])
        if _is_dataclass_type(annotation):
            keys.extend(class_keys(annotation, f"{prefix}{f.name}."))
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def field_descriptions(cls: type) -> dict[str, str]:
    """``{field: one-line description}`` from the ``Attributes:`` sections of the class's docstrings.

    Base classes are read first, so a subclass's description of a field wins.  Continuation lines are joined
    into one line; fields without a description are left out.
    """
    names = set(field_names(cls))
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if "__doc__" in vars(klass) and klass.__doc__:
            found.update(_attributes_section(klass.__doc__))
    return {name: found[name] for name in field_names(cls) if name in names and name in found}


_ENTRY = re.compile(r"^(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _attributes_section(docstring: str) -> dict[str, str]:
    """The ``name: text`` entries of a docstring's ``Attributes:`` section (text joined into one line)."""
    lines = inspect.cleandoc(docstring).splitlines()
    entries: dict[str, list[str]] = {}
    section_indent: int | None = None
    entry_indent: int | None = None
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if section_indent is None:
            if stripped == "Attributes:":
                section_indent = indent
            continue
        if not stripped:
            continue
        if indent <= section_indent:
            break  # the next section (or prose) starts
        if entry_indent is None:
            entry_indent = indent
        match = _ENTRY.match(stripped) if indent == entry_indent else None
        if match:
            current = match[1]
            entries[current] = [match[2]]
        elif current is not None:
            entries[current].append(stripped)
    return {name: " ".join(part for part in text if part) for name, text in entries.items()}


# -- values ---------------------------------------------------------------------------------------------


def _is_dataclass_type(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _strip_annotated(annotation: Any) -> Any:
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is Annotated else annotation


def type_name(annotation: Any) -> str:
    """A short readable name of a field's type: ``int | None``, ``tuple[int, ...]``, ``'a' | 'b'``."""
    if typing.get_origin(annotation) is Annotated:
        marker = typing.get_args(annotation)[1]
        return (
            "table of dotted keys"
            if isinstance(marker, _DottedTable)
            else type_name(_strip_annotated(annotation))
        )
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is tuple:
        return f"tuple[{type_name(args[0])}, ...]" if args else "tuple"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """``value`` (possibly a string from the command line) converted to the type ``annotation``.

    Raises :class:`ConfigError` naming ``key``, what was expected and what was given.
    """
    if typing.get_origin(annotation) is Annotated:
        marker = typing.get_args(annotation)[1]
        if isinstance(marker, _DottedTable):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f'{key}: expected a table of dotted keys, e.g. {{"agent.alpha" = 3.0}}, got {value!r}'
                )
            return flatten(value)
        annotation = _strip_annotated(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, args, key)
    if origin is typing.Literal:
        return _coerce_literal(value, args, key)
    if origin is tuple:
        return _coerce_tuple(value, args, key)
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        if len(args) == 2 and args[1] is not Any:
            return {k: coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
        return dict(value)
    if _is_dataclass_type(annotation):
        return from_dict(annotation, value, f"{key}.")
    if annotation is bool:
        return _coerce_bool(value, key)
    if annotation is int:
        return _coerce_int(value, key)
    if annotation is float:
        return _coerce_float(value, key)
    if annotation is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if annotation is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{key}: expected a path, got {value!r}")
        return Path(value).expanduser()
    return value


def _coerce_union(value: Any, args: tuple, key: str) -> Any:
    if type(None) in args and (value is None or (isinstance(value, str) and value.strip().lower() in _NONE)):
        return None
    reasons = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return coerce(value, arg, key)
        except ConfigError as exc:
            reasons.append(str(exc).removeprefix(f"{key}: "))
    allowed = " or ".join(type_name(a) for a in args).replace("None", "none")
    raise ConfigError(f"{key}: cannot read {value!r} as {allowed} ({'; '.join(reasons)})")


def _coerce_literal(value: Any, allowed: tuple, key: str) -> Any:
    for choice in allowed:
        if type(value) is type(choice) and value == choice:
            return choice
    for choice in allowed:  # "1" from the command line for Literal[1, 2], "true" for Literal[True]
        try:
            if not isinstance(choice, str) and coerce(value, type(choice), key) == choice:
                return choice
        except ConfigError:
            continue
    hint = did_you_mean(str(value), [str(c) for c in allowed])
    raise ConfigError(f"{key}: {value!r} is not one of {list(allowed)}{hint}")


def _coerce_tuple(value: Any, args: tuple, key: str) -> tuple:
    if isinstance(value, str):
        value = _split_list(value, key)
    if not isinstance(value, list | tuple):
        value = [value]
    element = args[0] if args else Any
    if _is_dataclass_type(element):
        return tuple(coerce(v, element, f"{key}[{i}]") for i, v in enumerate(value))
    return tuple(coerce(v, element, key) for v in value)


def format_value(value: Any) -> str:
    """The text that ``--set KEY=...`` reads back as ``value``: 256,256 for a tuple, none, true/false."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(format_value(v) for v in value) if value else "[]"
    return str(value)


def _split_list(text: str, key: str) -> list[Any]:
    """'64,64', '[64, 64]' (JSON, or plain words inside brackets: '[1, inf]') or '(64, 64)' as a list."""
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            if not text.endswith("]"):
                raise ConfigError(f"{key}: expected a list like [64, 64] or 64,64, got {text!r}") from None
            text = text[1:-1]
        else:
            return parsed if isinstance(parsed, list) else [parsed]
    return [item.strip() for item in text.split(",") if item.strip()]


def _coerce_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{key}: expected true/false, got {value!r}")


def _coerce_int(value: Any, key: str) -> int:
    expected = f"{key}: expected an integer, got {value!r}"
    if isinstance(value, bool):
        raise ConfigError(expected)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)  # "1e3"
        except ValueError:
            raise ConfigError(expected) from None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ConfigError(expected)


def _coerce_float(value: Any, key: str) -> float:
    """Numbers and numeric strings, "inf" and "nan" included (a field that needs finiteness checks it)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{key}: expected a number, got {value!r}") from None


# -- whole configs --------------------------------------------------------------------------------------


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys: ``{"agent": {"alpha": 3}}`` -> ``{"agent.alpha": 3}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _section_error(prefix: str, exc: ValueError) -> ConfigError:
    """A section's own validation error, naming the section unless the message already does."""
    section, message = prefix.rstrip("."), str(exc)
    if not section or message.startswith(section):  # top level: the message names the field itself
        return exc if isinstance(exc, ConfigError) else ConfigError(message)
    return ConfigError(f"{section}: {message}")


def apply_overrides(config: T, overrides: Mapping[str, Any], _prefix: str = "") -> T:
    """Return a copy of ``config`` with dotted-key ``overrides`` applied (types checked and coerced).

    Each section is rebuilt once with all of its new values, so that a section's own validation sees
    the finished section (the order of keys does not matter).  Unknown keys raise :class:`ConfigError`
    with the closest valid keys and all of them, as they would be typed (``fisher.t_eps``).
    """
    hints = _hints(type(config))
    names = field_names(config)
    leaves: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        head = head.replace("-", "_")
        full_key = f"{_prefix}{key}"
        if head not in names:
            raise unknown_key_error(full_key, [f"{_prefix}{k}" for k in all_keys(config)])
        current = getattr(config, head)
        if rest:
            if not dataclasses.is_dataclass(current):
                raise ConfigError(f"config key {full_key!r}: {head!r} is a value, not a section")
            sections.setdefault(head, {})[rest] = value
        elif dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"config key {full_key!r}: {head!r} is a section; give a mapping or dotted keys"
                )
            sections.setdefault(head, {}).update(flatten(value))
        else:
            leaves[head] = coerce(value, hints[head], full_key)
    for head, sub in sections.items():
        leaves[head] = apply_overrides(getattr(config, head), sub, f"{_prefix}{head}.")
    if not leaves:
        return config
    try:
        return dataclasses.replace(typing.cast(Any, config), **leaves)
    except ValueError as exc:  # raised by a dataclass's own __post_init__ validation
        raise _section_error(_prefix, exc) from None


def to_dict(config) -> dict:
    """Nested plain dict (JSON-serialisable) of a dataclass config."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def from_dict(cls: type[T], data: Any, _prefix: str = "") -> T:
    """Build the dataclass ``cls`` from a plain table (a parsed file, or :func:`to_dict` output).

    Fields left out take their defaults (a section with a default changes only the keys given); a field
    without a default must be given.  Unknown keys, values of the wrong type and the dataclass's own
    checks raise :class:`ConfigError` naming the dotted key.
    """
    where = _prefix.rstrip(".")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a table of keys, got {data!r}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(typing.cast(Any, cls)) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        full_key = f"{_prefix}{key}"
        if name not in fields:
            raise unknown_key_error(full_key, class_keys(cls, _prefix))
        annotation = _strip_annotated(hints[name])
        if _is_dataclass_type(annotation) and _has_default(fields[name]):
            # A section with a default (e.g. a run's agent settings): only the keys given change.
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key {full_key!r}: {name!r} is a section; give a table of its keys")
            kwargs[name] = apply_overrides(_default(fields[name]), flatten(value), f"{full_key}.")
        else:
            kwargs[name] = coerce(value, hints[name], full_key)
    missing = [name for name, f in fields.items() if name not in kwargs and not _has_default(f)]
    if missing:
        descriptions = field_descriptions(cls)
        what = "; ".join(
            f"{_prefix}{name}" + (f" ({descriptions[name]})" if name in descriptions else "")
            for name in missing
        )
        raise ConfigError(f"missing required key {what}")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise _section_error(_prefix, exc) from None


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def check_finite_fields(config: Any) -> None:
    """Raise ValueError naming the first float field of a dataclass that is NaN or infinite (e.g.
    ``--set agent.lr=inf``): no setting of fidec means anything at a non-finite value."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, got {value}")


INT_RANGE = (
    -(2**31),
    2**31 - 1,
)  # what fidec's integer settings may hold (step counters are int32 on devices)


def check_int_ranges(config: Any, low: int = INT_RANGE[0], high: int = INT_RANGE[1]) -> None:
    """Raise :class:`ConfigError` naming the first integer setting of a (nested) dataclass, or element of a
    tuple of integers, outside [low, high] (e.g. ``--seeds 9223372036854775808``)."""
    for key, value in flatten(to_dict(config)).items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, int) and not isinstance(item, bool) and not low <= item <= high:
                raise ConfigError(f"{key}: {item} is out of range; use a whole number from {low} to {high}")
