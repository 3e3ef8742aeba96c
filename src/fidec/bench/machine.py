"""The machine a benchmark ran on, its load, and its measured dense fp32 matmul throughput.

The throughput of a large square ``jnp.dot`` (n x n times n x n, 2 n^3 FLOP) measured in the same
process is the roofline denominator: the fraction of it that an update achieves is the headline.
The MLP's own shape ((B (M + 2)) x 512 times 512 x 512 for FD's rollout) is measured too, since
XLA reaches a different fraction of peak on smaller products.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from importlib import metadata

import jax
import jax.numpy as jnp
import psutil

from fidec.bench.timing import compile_timed, measure_rate


def cpuinfo() -> dict[str, str]:
    """The fields of the first processor in /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # first processor only
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model(info: dict[str, str]) -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else ``platform.processor()``)."""
    return info.get("model name") or platform.processor() or platform.machine()


def cpu_id(info: dict[str, str]) -> str | None:
    """'family 26, model 2, stepping 1' (None where unavailable): names the CPU generation when the model
    name is generic (virtual machines often report just 'AMD EPYC')."""
    parts = [f"{k.split()[-1]} {info[k]}" for k in ("cpu family", "model", "stepping") if k in info]
    return ", ".join(parts) or None


def cpu_flags(info: dict[str, str]) -> list[str]:
    """The SIMD features that bound fp32 matmul throughput (avx2, fma, avx512f, ...)."""
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "neon", "sve")
    present = set((info.get("flags") or info.get("features") or "").split())
    return [w for w in wanted if w in present]


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def total_memory_gb() -> float:
    return round(psutil.virtual_memory().total / 2**30, 1)


def describe_machine() -> dict:
    """CPU model, cores, memory, library versions, JAX backend and devices, load average."""
    devices, info = jax.devices(), cpuinfo()
    return {
        "cpu_model": cpu_model(info),
        "cpu_id": cpu_id(info),
        "cpu_flags": cpu_flags(info),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_gb": total_memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "flax": _version("flax"),
        "optax": _version("optax"),
        "backend": jax.default_backend(),
        "device": devices[0].device_kind,
        "device_count": len(devices),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average": load_average(),
    }


def matmul_runner(m: int, k: int, n: int, seed: int = 0) -> tuple[Callable[[int], None], float]:
    """(runner of ``calls`` jitted fp32 (m x k) @ (k x n) products, FLOP per call = 2 m k n)."""
    ka, kb = jax.random.split(jax.random.PRNGKey(seed))
    a = jax.random.normal(ka, (m, k), jnp.float32)
    b = jax.random.normal(kb, (k, n), jnp.float32)
    compiled, _ = compile_timed(jnp.dot, a, b)

    def run(calls: int) -> None:
        out = [compiled(a, b) for _ in range(calls)]
        jax.block_until_ready(out)

    return run, 2.0 * m * k * n


def matmul_row(shape: tuple[int, int, int], rate: dict, flop: float) -> dict:
    """A matmul result row from a rate (:func:`~fidec.bench.timing.measure_rate`) and FLOP per call."""
    return {
        "shape": list(shape),
        "gflop": flop / 1e9,
        "gflop_per_s": rate["per_s"] * flop / 1e9,
        "window_gflop_per_s": [r * flop / 1e9 for r in rate["windows"]],
    }


def matmul_throughput(m: int, k: int, n: int, windows: int, window_seconds: float, seed: int = 0) -> dict:
    """GFLOP/s of a jitted fp32 (m x k) @ (k x n) product: 2 m k n FLOP per call, median over windows."""
    run, flop = matmul_runner(m, k, n, seed)
    return matmul_row((m, k, n), measure_rate(run, windows, window_seconds), flop)


def matmul_section(
    sizes: tuple[int, ...], mlp_shapes: list[tuple[int, int, int]], windows: int, window_seconds: float
) -> dict:
    """Large square products (the roofline) and the MLP's own shapes.  ``roofline_gflop_per_s`` is the
    best of the square products (the larger ones saturate the cores)."""
    square = [matmul_throughput(s, s, s, windows, window_seconds) for s in sizes]
    mlp = [matmul_throughput(m, k, n, windows, window_seconds) for m, k, n in mlp_shapes]
    roofline = max(r["gflop_per_s"] for r in square)
    return {"square": square, "mlp_shapes": mlp, "roofline_gflop_per_s": roofline}
