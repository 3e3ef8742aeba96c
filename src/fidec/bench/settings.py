"""What a benchmark run measures and how long it spends: one frozen settings object per mode.

Modes: ``quick`` (under 5 minutes on 2 idle CPU cores), ``full`` (more windows, sizes and presets) and
``tiny`` (2 x 32 networks and a handful of calls: seconds, for the smoke test).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

MODES = ("quick", "full", "tiny")
SECTIONS = (
    "matmul",
    "updates",
    "profile",
    "fused",
    "seeds",
    "sampling",
    "env",
    "memory",
    "scaling",
    "fisher",
)
AGENTS = ("fd", "iso", "fql", "bcflow")
PAPER_PRESET = "paper-networks"
SMALL_PRESET = "cpu-networks"
TINY_PRESET = "tiny-networks"

# The published reference implementation of FD, measured on the 2-core CPU machine type this suite is
# run on (not in the same run): 39.5 GFLOP per update (XLA cost analysis of a Python-unrolled Euler
# loop), 4.4 updates/s, about 90% of that machine's large-matmul throughput.
REFERENCE_FD = {"updates_per_s": 4.4, "gflop_per_update": 39.5, "roofline_fraction": 0.90}
TARGET_SPEEDUP = 1.25
TARGET_ROOFLINE = 0.85


@dataclass(frozen=True)
class BenchSettings:
    """Sizes and repetitions of every section.

    Attributes:
        mode: "quick", "full" or "tiny".
        sections: the sections to run (subset of ``SECTIONS``).
        agents: agents measured in the update and sampling sections.
        presets: network presets of the update table (paper size first).
        obs_dim / action_dim: shapes of the synthetic batches (cube-single: 28 and 5).
        windows: timing windows per measurement; the reported rate is their median.
        window_seconds: target length of one window (calls per window are calibrated to it).
        matmul_sizes: n of the n x n x n fp32 matmuls; the largest is the roofline denominator.
        profile_preset: preset of the FD time breakdown (the paper's).
        fused_blocks: K, updates fused into one compiled call; fused_presets: where that is measured.
        seed_counts: vmapped seeds; seed_presets: where that is measured.
        sampling_batches: batch sizes of action selection (latency at 1, throughput at the larger).
        sampling_presets: presets of the action-selection table.
        env_name, env_episodes, env_num_envs, env_preset: evaluation-throughput setting.
        memory_updates: updates of the peak-memory subprocess; memory_dataset_rows: its dataset size.
        memory_presets: presets whose FD training process is measured.
        scaling_preset: base preset of the cost-growth sweep; scaling_*: the values swept.
        fisher_states, fisher_redraws: states and repeated draws of the Fisher-estimator comparison.
        dataset_rows: rows of the synthetic on-device dataset the fused blocks sample from.
    """

    mode: str
    sections: tuple[str, ...] = SECTIONS
    agents: tuple[str, ...] = AGENTS
    presets: tuple[str, ...] = (PAPER_PRESET, SMALL_PRESET)
    obs_dim: int = 28
    action_dim: int = 5
    windows: int = 5
    window_seconds: float = 1.0
    matmul_sizes: tuple[int, ...] = (2048,)
    profile_preset: str = PAPER_PRESET
    fused_blocks: tuple[int, ...] = (1, 10, 100)
    fused_presets: tuple[str, ...] = (SMALL_PRESET,)
    seed_counts: tuple[int, ...] = (1, 2, 4, 8)
    seed_presets: tuple[str, ...] = (SMALL_PRESET,)
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

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"benchmark mode must be one of {MODES}, got {self.mode!r}")
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown:
            raise ValueError(f"unknown benchmark sections {unknown}; choose from {list(SECTIONS)}")
        if self.windows < 1 or self.window_seconds <= 0:
            raise ValueError("windows must be >= 1 and window_seconds > 0")

    def to_dict(self) -> dict:
        return asdict(self)


def settings_for(mode: str, sections: tuple[str, ...] | None = None) -> BenchSettings:
    """Settings of a mode; ``sections`` restricts the run to those sections."""
    if mode == "quick":
        # Under 5 minutes on 2 idle CPU cores (about 270 CPU-seconds in all, much of it XLA compiling).
        settings = BenchSettings(
            mode="quick",
            windows=3,
            window_seconds=0.5,
            seed_counts=(1, 4),
            memory_updates=10,
            memory_dataset_rows=100_000,
            memory_presets=(SMALL_PRESET,),
            scaling_batch_sizes=(64, 256, 1024),
            scaling_widths=(128, 256, 512),
            scaling_action_dims=(2, 5, 10),
            fisher_states=256,
            fisher_redraws=16,
        )
    elif mode == "full":
        settings = BenchSettings(
            mode="full",
            windows=7,
            window_seconds=1.5,
            matmul_sizes=(2048, 4096),
            fused_presets=(SMALL_PRESET, PAPER_PRESET),
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
    elif mode == "tiny":
        settings = BenchSettings(
            mode="tiny",
            presets=(TINY_PRESET,),
            windows=2,
            window_seconds=0.02,
            matmul_sizes=(128,),
            profile_preset=TINY_PRESET,
            fused_blocks=(1, 4),
            fused_presets=(TINY_PRESET,),
            seed_counts=(1, 2),
            seed_presets=(TINY_PRESET,),
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
        )
    else:
        raise ValueError(f"benchmark mode must be one of {MODES}, got {mode!r}")
    if sections is not None:
        settings = replace(settings, sections=tuple(sections))
    return settings
