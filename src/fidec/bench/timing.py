"""Timing helpers: compile time, and steady-state rates as the median over several windows.

A *runner* is a callable ``run(n)`` that performs n calls and blocks until their results are ready
(JAX dispatches asynchronously, so only a blocking window measures the work).  The calls per window
are calibrated from one call so each window lasts about ``window_seconds``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax

Runner = Callable[[int], None]


def compile_timed(fn: Callable, *args: Any, **jit_kwargs: Any) -> tuple[Callable, float]:
    """(compiled executable, seconds spent tracing, lowering and compiling ``jax.jit(fn)`` for ``args``)."""
    start = time.perf_counter()
    compiled = jax.jit(fn, **jit_kwargs).lower(*args).compile()
    return compiled, time.perf_counter() - start


def _calibrated_calls(run: Runner, window_seconds: float, max_calls: int) -> int:
    """Run one warm-up call and return the calls that make a window of about ``window_seconds``."""
    start = time.perf_counter()
    run(1)
    one = max(time.perf_counter() - start, 1e-7)
    return int(min(max_calls, max(1, math.ceil(window_seconds / one))))


def _timed_window(run: Runner, calls: int) -> float:
    start = time.perf_counter()
    run(calls)
    return calls / max(time.perf_counter() - start, 1e-9)


def measure_rate(run: Runner, windows: int, window_seconds: float, max_calls: int = 100_000) -> dict:
    """Calls per second of ``run``: the median over ``windows`` windows (after one warm-up call).

    Returns {"per_s": median rate, "windows": per-window rates, "calls_per_window": n}.
    """
    calls = _calibrated_calls(run, window_seconds, max_calls)
    rates = [_timed_window(run, calls) for _ in range(windows)]
    return {"per_s": statistics.median(rates), "windows": rates, "calls_per_window": calls}


def interleaved_rates(
    runners: Sequence[Runner], windows: int, window_seconds: float, max_calls: int = 100_000
) -> list[dict]:
    """:func:`measure_rate` of several runners, measured in turns: window w of every runner before
    window w + 1 of any, so a change of machine load during the measurement reaches all of them alike
    and their ratios stay fair.  The order within a round rotates by one each window, so no runner always
    follows the same one (a runner can find the caches and thread pool as the previous one left them).
    One result per runner, in order."""
    calls = [_calibrated_calls(run, window_seconds, max_calls) for run in runners]
    rates: list[list[float]] = [[] for _ in runners]
    n = len(runners)
    for w in range(windows):
        for i in [(w + j) % n for j in range(n)]:
            rates[i].append(_timed_window(runners[i], calls[i]))
    return [
        {"per_s": statistics.median(r), "windows": r, "calls_per_window": c}
        for r, c in zip(rates, calls, strict=True)
    ]


def measure_latency(call: Callable[[], Any], windows: int, window_seconds: float) -> dict:
    """Seconds per blocking call: median over windows of the mean call time within the window."""

    def run(n: int) -> None:
        for _ in range(n):
            jax.block_until_ready(call())

    rate = measure_rate(run, windows, window_seconds)
    return {"seconds": 1.0 / rate["per_s"], **rate}


def chained(step: Callable[[Any], Any], initial: Any) -> Runner:
    """Runner that feeds each call's output into the next (``state -> state``), blocking at the end."""
    holder = [initial]

    def run(n: int) -> None:
        value = holder[0]
        for _ in range(n):
            value = step(value)
        jax.block_until_ready(value)
        holder[0] = value

    return run


def spread(rates: list[float]) -> float:
    """(max - min) / median of the window rates: the run-to-run noise of one measurement."""
    median = statistics.median(rates)
    return (max(rates) - min(rates)) / median if median > 0 else float("nan")


def window_ratios(numerator: list[float], denominator: list[float]) -> dict:
    """Two rates timed in turns (:func:`interleaved_rates`), compared window by window.

    ``ratio`` is the median of the per-window ratios (window w of one over window w of the other: the two
    were measured moments apart, so a slow change of load cancels in each pair), with their min and max;
    ``ratio_of_medians`` compares the two rates' medians, which mixes windows from different moments."""
    per_window = [a / b for a, b in zip(numerator, denominator, strict=True)]
    return {
        "ratio": statistics.median(per_window),
        "window_min": min(per_window),
        "window_max": max(per_window),
        "ratio_of_medians": statistics.median(numerator) / statistics.median(denominator),
        "windows": per_window,
    }
