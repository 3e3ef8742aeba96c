"""Peak resident memory of a training process, measured in a fresh subprocess.

The child (this module run with ``python -m``: JAX and fidec imported first) puts a synthetic dataset of
``rows`` transitions on the device, builds the agent and runs fused training blocks
(:func:`fidec.training.blocks.offline_block`), reading its peak RSS after each phase, so the table
separates the runtime, the dataset and training.

    python -m fidec.bench.memory '{"agent": NAME, "preset": "paper-networks", "updates": 20, ...}'
"""

from __future__ import annotations

import json
import subprocess
import sys

import jax

from fidec.bench.settings import BenchSettings
from fidec.bench.workloads import build, fused_block, synthetic_transitions

if sys.platform != "win32":  # resource is POSIX-only
    import resource


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this program's own address space.
    ``getrusage``'s ``ru_maxrss`` is not used there: it survives ``exec``, so a child started from a
    large parent reports the parent's peak.  Elsewhere ``ru_maxrss`` is the fallback.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    if sys.platform == "win32":
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def train_and_measure(
    agent: str, preset: str, updates: int, rows: int, obs_dim: int, action_dim: int
) -> dict:
    """Run ``updates`` FD-style training updates in this process; peak RSS after each phase."""
    jax.numpy.zeros(()).block_until_ready()
    after_import = peak_rss_mb()
    data = jax.block_until_ready(synthetic_transitions(jax.random.PRNGKey(0), rows, obs_dim, action_dim))
    dataset_mb = sum(v.nbytes for v in data.values()) / 2**20
    after_data = peak_rss_mb()
    built = build(agent, preset, obs_dim, action_dim)
    block_size = max(1, updates // 2)
    fn, state = fused_block(built, block_size, seed=1)
    block, start = jax.jit(fn), jax.numpy.zeros((), jax.numpy.int32)
    done = 0
    while done < updates:
        state, _ = block(state, data, start)
        jax.block_until_ready(state)
        done += block_size
    params_mb = sum(x.nbytes for x in jax.tree.leaves(built.state.params)) / 2**20
    return {
        "agent": agent,
        "preset": preset,
        "updates": done,
        "dataset_rows": rows,
        "dataset_mb": dataset_mb,
        "params_mb": params_mb,
        "rss_after_jax_import_mb": after_import,
        "rss_after_dataset_mb": after_data,
        "peak_rss_mb": peak_rss_mb(),
    }


def measure_in_subprocess(agent: str, preset: str, settings: BenchSettings, timeout_s: float = 900) -> dict:
    """Peak RSS of a fresh Python process training ``agent`` (see :func:`train_and_measure`)."""
    request = {
        "agent": agent,
        "preset": preset,
        "updates": settings.memory_updates,
        "rows": settings.memory_dataset_rows,
        "obs_dim": settings.obs_dim,
        "action_dim": settings.action_dim,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "fidec.bench.memory", json.dumps(request)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"the memory-measurement subprocess failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_section(settings: BenchSettings, log=print) -> list[dict]:
    rows = []
    for preset in settings.memory_presets:
        row = measure_in_subprocess(settings.agent, preset, settings)
        log(
            f"  {settings.agent} {preset:15s} peak RSS {row['peak_rss_mb']:.0f} MiB ({row['dataset_mb']:.0f} MiB dataset)"
        )
        rows.append(row)
    return rows


if __name__ == "__main__":
    print(json.dumps(train_and_measure(**json.loads(sys.argv[1]))))
