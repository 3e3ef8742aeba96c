"""The two parameter trees side by side: flattening, and the mapping an agent's reference declares.

A mapping is a list of (reference path prefix, fidec path prefix) pairs; fidec paths start with ``params/``
or ``target_params/`` (the agent state's groups).  :func:`map_leaves` pairs every leaf of both trees and
fails, naming the leaves, when one is left out, matched twice or of another size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class MappingError(ValueError):
    """The declared parameter mapping does not cover both trees exactly."""


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a/b/c": leaf} of nested mappings (flax FrozenDicts included)."""
    out: dict[str, Any] = {}
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}/"))
        return out
    out[prefix.rstrip("/")] = tree
    return out


def unflatten(flat: Mapping[str, Any]) -> dict:
    """The nested dict of a flat {"a/b/c": leaf} mapping."""
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        *parents, last = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


def _rename(path: str, rules: list[tuple[str, str]]) -> str | None:
    hits = [(a, b) for a, b in rules if path == a or path.startswith(a + "/")]
    if len(hits) > 1:
        raise MappingError(f"{path} is matched by several rules: {hits}")
    if not hits:
        return None
    a, b = hits[0]
    return b + path[len(a) :]


def map_leaves(
    reference: Mapping[str, Any], fidec: Mapping[str, Any], rules: tuple[tuple[str, str], ...]
) -> list[tuple[str, str]]:
    """(reference path, fidec path) of every leaf pair; every leaf of both flat trees covered exactly once,
    sizes equal (shapes may differ by singleton axes, e.g. a (1,) log_alpha against a scalar)."""
    forward = list(rules)
    pairs: list[tuple[str, str]] = []
    unmatched_reference = []
    for path in reference:
        target = _rename(path, forward)
        if target is None or target not in fidec:
            unmatched_reference.append(path if target is None else f"{path} -> {target} (no such fidec leaf)")
            continue
        pairs.append((path, target))
    covered = [b for _, b in pairs]
    twice = sorted({p for p in covered if covered.count(p) > 1})
    uncovered = sorted(set(fidec) - set(covered))
    problems = []
    if unmatched_reference:
        problems.append(f"reference leaves without a fidec counterpart: {unmatched_reference}")
    if uncovered:
        problems.append(f"fidec leaves without a reference counterpart: {uncovered}")
    if twice:
        problems.append(f"fidec leaves matched twice: {twice}")
    for a, b in pairs:
        if np.size(reference[a]) != np.size(fidec[b]) or _squeezed(reference[a]) != _squeezed(fidec[b]):
            problems.append(f"{a} {np.shape(reference[a])} and {b} {np.shape(fidec[b])} differ in shape")
    if problems:
        raise MappingError("; ".join(problems))
    return pairs


def _squeezed(x: Any) -> tuple[int, ...]:
    return tuple(n for n in np.shape(x) if n != 1)


def to_fidec(reference: Mapping[str, Any], fidec: Mapping[str, Any], pairs: list[tuple[str, str]]) -> dict:
    """Flat fidec tree holding the reference's values (reshaped to fidec's shapes and dtypes' kind)."""
    out = dict(fidec)
    for a, b in pairs:
        out[b] = np.asarray(reference[a]).reshape(np.shape(fidec[b]))
    return out
