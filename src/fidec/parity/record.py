"""Recording the random numbers a piece of (reference) code draws, in the order it draws them.

While a :class:`DrawRecorder` is installed, ``jax.random.normal`` and ``jax.random.uniform`` are wrapped:
a call traced while the recorder listens also sends its result to the host through an ordered debug callback,
so a jitted program reports every draw it makes, at run time, in program order, with the distribution's
parameters it was called with.  Nothing of the recorded code is changed; its results are the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np


@dataclass(frozen=True)
class RecordedDraw:
    """One random array the recorded code drew: its distribution, shape and value."""

    kind: str  # "normal" or "uniform"
    shape: tuple[int, ...]
    low: float
    high: float
    value: np.ndarray


class DrawRecorder:
    """Wraps ``jax.random.normal`` / ``uniform`` while installed; :meth:`listen` collects what runs under it."""

    def __init__(self) -> None:
        self._listening = False
        self._draws: list[RecordedDraw] = []
        self._originals: dict[str, Any] = {}

    def install(self) -> None:
        if self._originals:
            return
        self._originals = {"normal": jax.random.normal, "uniform": jax.random.uniform}
        original_normal, original_uniform = self._originals["normal"], self._originals["uniform"]

        def normal(key, shape=(), dtype=float, *args, **kwargs):
            value = original_normal(key, shape, dtype, *args, **kwargs)
            return self._record(value, "normal", 0.0, 1.0)

        def uniform(key, shape=(), dtype=float, minval=0.0, maxval=1.0, *args, **kwargs):
            value = original_uniform(key, shape, dtype, minval, maxval, *args, **kwargs)
            return self._record(value, "uniform", minval, maxval)

        jax.random.normal = normal
        jax.random.uniform = uniform

    def uninstall(self) -> None:
        if self._originals:
            jax.random.normal = self._originals["normal"]
            jax.random.uniform = self._originals["uniform"]
            self._originals = {}

    def _record(self, value, kind: str, low, high):
        if not self._listening:
            return value
        low_f, high_f = float(np.asarray(low)), float(np.asarray(high))

        def keep(v):
            if self._listening:
                array = np.array(v)
                self._draws.append(RecordedDraw(kind, tuple(array.shape), low_f, high_f, array))

        jax.debug.callback(keep, value, ordered=True)
        return value

    @contextlib.contextmanager
    def listen(self) -> Iterator[list[RecordedDraw]]:
        """Collect the draws of everything run inside (the list is complete when the block ends)."""
        self._draws = []
        found: list[RecordedDraw] = []
        self._listening = True
        try:
            yield found
            jax.effects_barrier()
        finally:
            self._listening = False
            found.extend(self._draws)
            self._draws = []


@contextlib.contextmanager
def recording() -> Iterator[DrawRecorder]:
    """A :class:`DrawRecorder` installed for the block (and removed after it)."""
    recorder = DrawRecorder()
    recorder.install()
    try:
        yield recorder
    finally:
        recorder.uninstall()
