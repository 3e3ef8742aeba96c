"""What a benchmark run measures and how long it spends: one frozen settings object per mode.

Modes: ``quick`` (under 5 minutes on 2 idle CPU cores, plus the reference comparison when asked for),
``full`` (more windows, sizes and presets), ``tiny`` (2 x 32 networks and a handful of calls: seconds, for
the smoke test) and ``gpu`` (the quick bench plus fused blocks K = 1/10/100/1000 and 1/4/8/16 vmapped seeds
at the paper's settings, within an 8-minute budget; ``smallest=True`` runs the same plan at 2 x 32 on a CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from fidec.agents import agent_names
from fidec.parity.check import SCALES, Scale

MODES = ("quick", "full", "tiny", "gpu")
# The order the sections run in: matmul first (the roofline of every fraction), the profile before the
# Fisher comparison (which reuses its rows), the update table before the cost growth (its base point).
SECTIONS = (
    "matmul",
    "updates",
    "profile",
    "reference",
    "fisher",
    "fused",
    "seeds",
    "sampling",
    "env",
    "memory",
    "scaling",
)
# The agent whose update the headline, the profile, the fused blocks, seeds, evaluation, memory and
# cost-growth sections measure, and the agent of the profile's variant without a Fisher metric.
AGENT = "fd"
ISOTROPIC_AGENT = "iso"
PAPER_PRESET = "paper-networks"
SMALL_PRESET = "cpu-networks"
TINY_PRESET = "tiny-networks"
TINY_SCALE = Scale("tiny", (32, 32), 32)  # the reference comparison at the smoke-test size
TARGET_SPEEDUP = 1.25  # fidec's FD update / the official code's, at the paper's settings on the CPU
TARGET_REFERENCE_RATIO = 1.0  # every agent's update / its reference code's: at least as fast
TARGET_ROOFLINE = 0.85  # fraction of the large-matmul throughput
GPU_TIME_BUDGET_S = 450.0  # the gpu mode starts no section after this (8 minutes in all with the last one)


@dataclass(frozen=True)
class BenchSettings:
    """Sizes and repetitions of every section.

    Attributes:
        mode: one of ``MODES``.
        sections: the sections to run, in ``SECTIONS`` order ("reference" only with ``reference_dirs``).
        smallest: the mode's plan at 2 x 32 networks and a few calls (checks that it runs; no default file).
        agents: agents measured in the update and sampling sections (default: every registered agent).
        agent: the agent of the headline, the profile, fused blocks, seeds, env, memory and scaling.
        isotropic_agent: the profile's variant of ``agent`` without a Fisher metric.
        presets: network presets of the update table (paper size first).
        obs_dim / action_dim: shapes of the synthetic batches (cube-single: 28 and 5).
        windows: timing windows per measurement; the reported rate is their median.
        window_seconds: target length of one window (calls per window are calibrated to it).
        matmul_sizes: n of the n x n x n fp32 matmuls; the largest is the roofline denominator.
        profile_preset: preset of the FD time breakdown (the paper's).
        reference_dirs: checkouts of reference code (the official FD code, seohongpark/fql) to time every agent
            whose reference they hold against (none: not measured).
        reference_scale: networks and batch of that comparison (the paper's: 4 x 512, batch 256).
        reference_windows / reference_window_seconds: timing windows of the reference comparison.
        fused_blocks: K, updates fused into one compiled call; fused_presets: where that is measured.
        seed_counts: seeds run together; seed_presets: where that is measured; seed_block: updates per call;
            seed_windows / seed_window_seconds: its timing windows (three modes compared: more than elsewhere).
        sampling_batches: batch sizes of action selection (latency at 1, throughput at the larger).
        sampling_presets: presets of the action-selection table.
        env_name, env_episodes, env_num_envs, env_preset: evaluation-throughput setting.
        memory_updates: updates of the peak-memory subprocess; memory_dataset_rows: its dataset size.
        memory_presets: presets whose FD training process is measured.
        scaling_preset: base preset of the cost-growth sweep; scaling_*: the values swept.
        fisher_states, fisher_redraws: states and repeated draws of the Fisher-estimator comparison.
        dataset_rows: rows of the synthetic on-device dataset the fused blocks sample from.
        time_budget_s: no section starts after this many seconds (None: no budget); skipped ones are listed.
    """

    mode: str
    sections: tuple[str, ...] = tuple(s for s in SECTIONS if s != "reference")
    smallest: bool = False
    agents: tuple[str, ...] = field(default_factory=lambda: tuple(agent_names()))
    agent: str = AGENT
    isotropic_agent: str = ISOTROPIC_AGENT
    presets: tuple[str, ...] = (PAPER_PRESET, SMALL_PRESET)
    obs_dim: int = 28
    action_dim: int = 5
    windows: int = 5
    window_seconds: float = 1.0
    matmul_sizes: tuple[int, ...] = (2048,)
    profile_preset: str = PAPER_PRESET
    reference_dirs: tuple[str, ...] = ()
    reference_scale: Scale = SCALES["paper"]
    reference_windows: int = 15
    reference_window_seconds: float = 1.0
    fused_blocks: tuple[int, ...] = (1, 10, 100)
    fused_presets: tuple[str, ...] = (SMALL_PRESET,)
    seed_counts: tuple[int, ...] = (1, 2, 3, 4)
    seed_presets: tuple[str, ...] = (SMALL_PRESET,)
    seed_block: int = 10
    seed_windows: int = 8
    seed_window_seconds: float = 1.0
    sampling_batches: tuple[int, ...] = (1, 1000)
    sampling_presets: tuple[str, ...] = (SMALL_PRESET,)
    env_name: str = "cube-single-play-singletask-task1-v0"
    env_episodes: int = 4
    env_num_envs: int = 2
    env_preset: str = SMALL_PRESET
    memory_updates: int = 20
    memory_dataset_rows: int = 1_000_000
    memory_presets: tuple[str, ...] = (PAPER_PRESET,)
    scaling_preset: str = SMALL_PRESET
    scaling_batch_sizes: tuple[int, ...] = (64, 256, 1024)
    scaling_widths: tuple[int, ...] = (128, 256, 512)
    scaling_action_dims: tuple[int, ...] = (2, 5, 10)
    fisher_states: int = 512
    fisher_redraws: int = 32
    dataset_rows: int = 100_000
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"benchmark mode must be one of {MODES}, got {self.mode!r}")
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown:
            raise ValueError(f"unknown benchmark sections {unknown}; choose from {list(SECTIONS)}")
        if self.windows < 1 or self.window_seconds <= 0:
            raise ValueError("windows must be >= 1 and window_seconds > 0")
        if "reference" in self.sections and not self.reference_dirs:
            raise ValueError("the reference section needs reference_dirs (fidec bench --reference DIR)")

    def to_dict(self) -> dict:
        return asdict(self)


# Each mode's values where they differ from BenchSettings' defaults, applied with ``replace`` (so a wrong
# field name or type is a type error, and every intermediate is validated).
def _quick(base: BenchSettings) -> BenchSettings:
    return replace(
        base,
        windows=3,
        window_seconds=0.5,
        memory_updates=10,
        memory_dataset_rows=100_000,
        memory_presets=(SMALL_PRESET,),
        fisher_states=256,
        fisher_redraws=16,
    )


def _full(base: BenchSettings) -> BenchSettings:
    return replace(
        base,
        windows=7,
        window_seconds=1.5,
        matmul_sizes=(2048, 4096),
        reference_windows=21,
        seed_windows=12,
        seed_window_seconds=1.5,
        fused_presets=(SMALL_PRESET, PAPER_PRESET),
        seed_counts=(1, 2, 3, 4, 8),
        seed_presets=(SMALL_PRESET, PAPER_PRESET),
        sampling_presets=(PAPER_PRESET, SMALL_PRESET),
        env_episodes=10,
        env_num_envs=5,
        memory_updates=50,
        memory_presets=(PAPER_PRESET, SMALL_PRESET),
        scaling_preset=PAPER_PRESET,
        scaling_batch_sizes=(64, 128, 256, 512, 1024),
        scaling_widths=(128, 256, 512, 1024),
        scaling_action_dims=(2, 5, 10, 20),
        fisher_states=2048,
        fisher_redraws=128,
        dataset_rows=1_000_000,
    )


def _gpu(base: BenchSettings) -> BenchSettings:
    """The quick bench with the fused blocks and seeds at the paper's settings, sized for an accelerator."""
    return replace(
        _quick(base),
        fused_blocks=(1, 10, 100, 1000),
        fused_presets=(PAPER_PRESET,),
        seed_counts=(1, 4, 8, 16),
        seed_presets=(PAPER_PRESET,),
        seed_block=100,
        dataset_rows=1_000_000,
        time_budget_s=GPU_TIME_BUDGET_S,
    )


def _smallest(base: BenchSettings) -> BenchSettings:
    """2 x 32 networks and a handful of calls, no time budget: the smoke-test size of any plan."""
    return replace(
        base,
        smallest=True,
        presets=(TINY_PRESET,),
        windows=2,
        window_seconds=0.02,
        matmul_sizes=(128,),
        profile_preset=TINY_PRESET,
        reference_scale=TINY_SCALE,
        reference_windows=2,
        reference_window_seconds=0.02,
        fused_presets=(TINY_PRESET,),
        seed_presets=(TINY_PRESET,),
        seed_block=2,
        seed_windows=2,
        seed_window_seconds=0.02,
        sampling_batches=(1, 16),
        sampling_presets=(TINY_PRESET,),
        env_episodes=1,
        env_num_envs=1,
        env_preset=TINY_PRESET,
        memory_updates=2,
        memory_dataset_rows=1000,
        memory_presets=(TINY_PRESET,),
        scaling_preset=TINY_PRESET,
        scaling_batch_sizes=(16, 32),
        scaling_widths=(16, 32),
        scaling_action_dims=(2, 5),
        fisher_states=16,
        fisher_redraws=2,
        dataset_rows=1000,
        time_budget_s=None,
    )


def _tiny(base: BenchSettings) -> BenchSettings:
    return replace(_smallest(base), fused_blocks=(1, 4), seed_counts=(1, 2))


_MODES: dict[str, Callable[[BenchSettings], BenchSettings]] = {
    "quick": _quick,
    "full": _full,
    "tiny": _tiny,
    "gpu": _gpu,
}


def settings_for(
    mode: str,
    sections: tuple[str, ...] | None = None,
    reference_dirs: tuple[str, ...] = (),
    smallest: bool = False,
) -> BenchSettings:
    """Settings of a mode; ``sections`` restricts the run to those (run in ``SECTIONS`` order);
    ``reference_dirs`` (checkouts of reference code) add the comparison with it; ``smallest`` shrinks the
    mode's plan to 2 x 32 networks and a few calls (``tiny`` is the quick plan so shrunk)."""
    if mode not in _MODES:
        raise ValueError(f"benchmark mode must be one of {MODES}, got {mode!r}")
    wanted = set(sections) if sections is not None else set(SECTIONS)
    unknown = sorted(wanted - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown benchmark sections {unknown}; choose from {list(SECTIONS)}")
    if not reference_dirs:
        if sections is not None and "reference" in wanted:
            raise ValueError("the reference section needs reference code: add --reference DIR")
        wanted.discard("reference")
    settings = _MODES[mode](BenchSettings(mode=mode, reference_dirs=tuple(reference_dirs)))
    if smallest:
        settings = _smallest(settings)  # tiny is already at this size (applying it twice changes nothing)
    return replace(settings, sections=tuple(s for s in SECTIONS if s in wanted))
