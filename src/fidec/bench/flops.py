"""How much work an update does: matmul FLOPs counted from the jaxpr, and XLA's cost analysis.

Matmul count (the method of the tables): trace the function to a jaxpr and add 2 * (batch x m x k) x n
for every ``dot_general`` (a Dense layer's forward, and each of its backward products), multiplying
the body of a ``scan`` by its trip count and taking the costlier branch of a ``cond`` (the branch it takes
when its index is a constant of the trace: :func:`update_cycle_flops` traces each update of a cycle so).  This is the
analytic 2 m n k count, done by the machine, of exactly the program that runs (before XLA removes
dead code).

XLA's ``cost_analysis()`` counts a ``while``/``scan`` body once, not times its trip count, so for
an update whose Euler sampler is a ``lax.scan`` it under-counts; tracing the same update with an
unrolled Euler loop (:func:`unrolled_euler`: :func:`fidec.flows.euler_sample` with ``unroll=True``) gives XLA a loop-free program whose count cross-checks
the jaxpr count (XLA also counts element-wise FLOPs, so it is a little higher).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from jax.extend.core import Literal

from fidec import flows
from fidec.agents import common


def _sub_jaxprs(value: Any) -> list:
    """Jaxprs nested in an equation parameter (closed or open, alone or in a tuple of branches)."""
    if hasattr(value, "eqns"):
        return [value]
    if hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        return [value.jaxpr]
    if isinstance(value, tuple | list):
        return [j for v in value for j in _sub_jaxprs(v)]
    return []


def _dot_flops(eqn) -> int:
    (_, rhs_contract), (_, rhs_batch) = eqn.params["dimension_numbers"]
    lhs, rhs = (v.aval.shape for v in eqn.invars)
    free = math.prod(d for i, d in enumerate(rhs) if i not in rhs_contract and i not in rhs_batch)
    return 2 * math.prod(lhs) * free


def jaxpr_matmul_flops(jaxpr) -> int:
    """Matmul FLOPs of a jaxpr: dot_general products, scan bodies x length, the cond branch that runs (the
    costlier one where that is not known at tracing)."""
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
            continue
        subs = [j for v in eqn.params.values() for j in _sub_jaxprs(v)]
        if not subs:
            continue
        counts = [jaxpr_matmul_flops(j) for j in subs]
        if name == "cond":  # a constant index: the branch that runs; else the costlier one
            index = eqn.invars[0]
            total += counts[int(index.val)] if isinstance(index, Literal) else max(counts)
        elif name == "scan":
            total += eqn.params["length"] * sum(counts)
        else:  # pjit, custom_jvp/vjp, remat, while (body once: its trip count is not static)
            total += sum(counts)
    return total


def matmul_flops(fn: Callable, *args: Any) -> int:
    """Matmul FLOPs of one call of ``fn(*args)`` (see the module docstring)."""
    return jaxpr_matmul_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def update_cycle_flops(update: Callable, state: Any, batch: Any, updates: int) -> int:
    """Matmul FLOPs of ``updates`` consecutive updates from step 0, each traced with its step number as a
    constant, so that an update that branches on the step (ReBRAC trains its actor every ``actor_freq``
    updates, in a ``lax.cond``) is counted with the branch it takes at that step."""
    return sum(
        matmul_flops(lambda s, b, i=i: update(s.replace(step=np.int32(i)), b), state, batch)
        for i in range(updates)
    )


def xla_flops(compiled) -> float | None:
    """FLOPs from XLA's cost analysis of a compiled executable (loop bodies counted once)."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # some backends do not implement it
        return None
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops")
    return None if flops is None else float(flops)


@contextlib.contextmanager
def unrolled_euler() -> Iterator[None]:
    """While active, functions *traced* inside use the unrolled Euler sampler for base actions.

    Used to cross-check FLOP counts with XLA and to measure the effect of unrolling; nothing outside
    the benchmark changes (the original sampler is restored on exit).
    """
    original = common.euler_sample
    common.euler_sample = functools.partial(flows.euler_sample, unroll=True)
    try:
        yield
    finally:
        common.euler_sample = original
