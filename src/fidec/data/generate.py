"""Local generation of OGBench manipulation datasets with the scripted oracles that ship with ``ogbench``.

The procedure is OGBench's (``data_gen_scripts/generate_manipspace.py`` and ``commands.sh`` of the OGBench
repository, which are not part of the wheel), re-expressed here:

- Environment ``<env>-v0`` (e.g. ``cube-single-v0``) made with ``mode='data_collection'``,
  ``terminate_at_goal=False`` and ``max_episode_steps=1001``: every episode has 1001 rows, the last one
  flagged in ``terminals`` (a time-limit cut), which OGBench's loader turns into 1000 transitions.
- ``play`` datasets: non-Markovian plan oracles (``CubePlanOracle``, ``ButtonPlanOracle``, ``DrawerPlanOracle``,
  ``WindowPlanOracle``) with temporally correlated plan noise ``noise=0.1``, ``noise_smoothing=0.5``; puzzle
  oracles keep the gripper closed. ``noisy`` datasets: Markov oracles (``min_norm=0.4``) with per-episode
  Gaussian action noise xi ~ U(0, 0.1) scaled by (1, 1, 1, 3, 10) per action dimension, and random actions
  with probability 0.1 (cube, scene) or 0.2 (puzzle).
- When the oracle finishes its sub-task the environment draws a new target
  (``set_new_target(p_stack=...)``; p_stack = 0 for one cube, U(0, 0.25) for two, U(0.05, 0.35) for three,
  U(0.1, 0.5) for four, 0.5 otherwise). Actions are clipped to [-1, 1].
- Scene episodes in which the cube leaves the visible area (y >= 0.29, or y <= -0.3 outside the drawer
  height band [0.06, 0.08]) are discarded and redrawn.
- N training episodes and N // 10 validation episodes (at least 1 here, so tiny test datasets have a
  validation file); official N: 1000 (cube-single/double, scene, puzzle-3x3/4x4), 3000 (cube-triple,
  puzzle-4x5), 5000 (cube-quadruple, puzzle-4x6).
- ``visual-`` names roll out the same oracles in the pixel environment, whose observations are the rendered
  64x64x3 uint8 frames (the official route: rendering, a few frames per second on a CPU, dominates the cost).
- Keys and dtypes: ``observations``, ``actions``, ``qpos``, ``qvel`` float32 (uint8 frames for ``visual-``);
  ``terminals`` bool;
  ``button_states`` int64 (scene, puzzle). ``qpos``/``qvel``/``button_states`` hold the state *before*
  the action of the row (``info['prev_*']``), matching the row's observation.

Reproducibility and resumption (fidec's additions): training episode e is seeded from
``SeedSequence([seed, e])`` (``[seed, e, attempt]`` when a scene episode is redrawn), validation episode e
from ``SeedSequence([seed, e, attempt, 1])``; each gives three words: NumPy's global RNG (used by
the oracles and the action noise), the environment's reset, and a separate ``numpy.random.Generator`` for
the random actions of ``noisy`` datasets (OGBench's ``action_space`` is a new ``Box`` at every access, so
seeding it would seed a throwaway object; a word of its own keeps the actions independent of the initial
scene). So the output depends only on (seed, N), not on the number of workers or on interruptions; the
validation episodes come from their own stream, so the validation set of a small dataset never lies inside
the training set of a larger one with the same seed, and the first training episodes of every size agree.
Episodes are produced in chunks, each written atomically as a shard in a hidden folder beside the output;
a rerun skips finished shards.  One process generates into a folder at a time (a lock beside the files):
a second one waits, then reuses the finished dataset. The final ``<name>.npz`` and
``<name>-val.npz`` are written to temporary files, fsynced and renamed, so a killed run never leaves a file
under the final name. A JSON sidecar ``<name>.generation.json`` records the settings and the speed.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium
import numpy as np
from tqdm.auto import tqdm

from fidec.data.npz import read_npz, write_npz_atomic
from fidec.data.paths import (
    generated_dataset_dir,
    generation_lock,
    generation_part,
    generation_parts,
    generation_record,
    ogbench_files,
)
from fidec.envs.headless import configure_headless
from fidec.envs.registry import MANIPULATION_ENVS, UnknownTaskError, parse_dataset_name
from fidec.errors import UserError
from fidec.files import FileLock, output_dir, write_json_atomic

OFFICIAL_MAX_EPISODE_STEPS = 1001
OFFICIAL_NUM_EPISODES: dict[str, int] = {
    "cube-single": 1000,
    "cube-double": 1000,
    "cube-triple": 3000,
    "cube-quadruple": 5000,
    "scene": 1000,
    "puzzle-3x3": 1000,
    "puzzle-4x4": 1000,
    "puzzle-4x5": 3000,
    "puzzle-4x6": 5000,
}
# 2: split-specific seed streams and seeded random actions (datasets of version 1 are regenerated).
GENERATION_FORMAT_VERSION = 2
TRAIN_SPLIT, VAL_SPLIT = 0, 1
VAL_STREAM_WORD = 1  # last seed word of every validation episode


class GenerationError(UserError, ValueError):
    """Generation settings that cannot be used (the message names the setting and the valid range)."""


class GeneratedDatasetExistsError(UserError, FileExistsError):
    """The output folder already holds this dataset generated with other settings."""


@dataclass(frozen=True)
class GenerationPlan:
    """Everything that determines a generated dataset (its fingerprint names the resumable shards)."""

    dataset_name: str
    env_id: str
    dataset_type: str
    num_episodes: int
    num_val_episodes: int
    seed: int = 0
    max_episode_steps: int = OFFICIAL_MAX_EPISODE_STEPS
    noise: float = 0.1
    noise_smoothing: float = 0.5
    min_norm: float = 0.4
    p_random_action: float = 0.0

    def fingerprint(self) -> str:
        payload = json.dumps(
            {**dataclasses.asdict(self), "format": GENERATION_FORMAT_VERSION}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def official_plan(
    dataset_name: str,
    num_episodes: int | None = None,
    seed: int = 0,
    max_episode_steps: int = OFFICIAL_MAX_EPISODE_STEPS,
) -> GenerationPlan:
    """The official OGBench settings for ``dataset_name`` (e.g. ``cube-single-play-v0``)."""
    env, dataset_type, visual = parse_dataset_name(dataset_name)
    if env not in MANIPULATION_ENVS or dataset_type not in ("play", "noisy"):
        raise UnknownTaskError(
            f"fidec generates OGBench manipulation datasets only ({', '.join(MANIPULATION_ENVS)} "
            f"with 'play' or 'noisy', optionally 'visual-'), not {dataset_name!r}. Locomotion datasets need "
            "OGBench's trained expert policies."
        )
    num_episodes = OFFICIAL_NUM_EPISODES[env] if num_episodes is None else int(num_episodes)
    if num_episodes < 1:
        raise GenerationError(f"--episodes must be >= 1, got {num_episodes}.")
    if max_episode_steps < 2:
        raise GenerationError(
            f"--max-episode-steps must be >= 2 (one transition plus the final state), got {max_episode_steps}."
        )
    p_random = 0.0 if dataset_type == "play" else (0.2 if env.startswith("puzzle") else 0.1)
    return GenerationPlan(
        dataset_name=dataset_name,
        env_id=f"{'visual-' if visual else ''}{env}-v0",
        dataset_type=dataset_type,
        num_episodes=num_episodes,
        num_val_episodes=max(1, num_episodes // 10),
        seed=int(seed),
        max_episode_steps=int(max_episode_steps),
        p_random_action=p_random,
    )


# ----------------------------------------------------------------------------------------------- rollout


def _family(plan: GenerationPlan) -> str:
    """The environment id without the pixel prefix ('visual-cube-single-v0' -> 'cube-single-v0')."""
    return plan.env_id.removeprefix("visual-")


def _make_oracles(env, plan: GenerationPlan) -> dict:
    from ogbench.manipspace.oracles.markov.button_markov import ButtonMarkovOracle
    from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
    from ogbench.manipspace.oracles.markov.drawer_markov import DrawerMarkovOracle
    from ogbench.manipspace.oracles.markov.window_markov import WindowMarkovOracle
    from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
    from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
    from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
    from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

    if plan.dataset_type == "play":
        noise = dict(noise=plan.noise, noise_smoothing=plan.noise_smoothing)
        if _family(plan).startswith("cube"):
            return {"cube": CubePlanOracle(env=env, **noise)}
        if _family(plan).startswith("scene"):
            return {
                "cube": CubePlanOracle(env=env, **noise),
                "button": ButtonPlanOracle(env=env, **noise),
                "drawer": DrawerPlanOracle(env=env, **noise),
                "window": WindowPlanOracle(env=env, **noise),
            }
        return {"button": ButtonPlanOracle(env=env, gripper_always_closed=True, **noise)}
    markov = dict(min_norm=plan.min_norm)
    if _family(plan).startswith("cube"):
        return {"cube": CubeMarkovOracle(env=env, **markov)}
    if _family(plan).startswith("scene"):
        return {
            "cube": CubeMarkovOracle(env=env, max_step=100, **markov),
            "button": ButtonMarkovOracle(env=env, **markov),
            "drawer": DrawerMarkovOracle(env=env, **markov),
            "window": WindowMarkovOracle(env=env, **markov),
        }
    return {"button": ButtonMarkovOracle(env=env, gripper_always_closed=True, **markov)}


def _stack_probability(env_id: str) -> float:
    """Per-episode probability of a stacking target (OGBench's schedule)."""
    ranges = {"single": None, "double": (0.0, 0.25), "triple": (0.05, 0.35), "quadruple": (0.1, 0.5)}
    for word, bounds in ranges.items():
        if f"-{word}-" in env_id:
            return 0.0 if bounds is None else float(np.random.uniform(*bounds))  # noqa: NPY002
    return 0.5


def _scene_episode_is_healthy(qpos: np.ndarray) -> bool:
    """The cube stays visible: not too far right, and too far left only inside the drawer."""
    cube_xyz = qpos[:, 14:17]
    too_right = (cube_xyz[:, 1] >= 0.29).any()
    outside_drawer = ((cube_xyz[:, 1] <= -0.3) & ((cube_xyz[:, 2] < 0.06) | (cube_xyz[:, 2] > 0.08))).any()
    return not (too_right or outside_drawer)


def _episode_seeds(seed: int, split: int, episode: int, attempt: int) -> tuple[int, int, int]:
    """(NumPy global seed for the oracles and noise, environment seed, random-action seed) of one attempt
    at episode ``episode`` of ``split`` (:data:`TRAIN_SPLIT` or :data:`VAL_SPLIT`).

    Training words are those of format 1 (``[seed, e]``, ``[seed, e, attempt]`` for a redraw), so ``play``
    training episodes are unchanged; validation words end in a nonzero word of their own, so they never
    equal a training list (SeedSequence ignores trailing zeros)."""
    if split == VAL_SPLIT:
        words = [seed, episode, attempt, VAL_STREAM_WORD]
    else:
        words = [seed, episode] if attempt == 0 else [seed, episode, attempt]
    state = np.random.SeedSequence(words).generate_state(3)
    return int(state[0]), int(state[1]), int(state[2])


def rollout_episode(
    env, oracles: dict, plan: GenerationPlan, episode: int, split: int = TRAIN_SPLIT
) -> dict[str, np.ndarray]:
    """One episode of ``plan.max_episode_steps`` rows in the official layout (redrawn while unhealthy)."""
    has_buttons = hasattr(env.unwrapped, "_cur_button_states")
    action_space = env.action_space  # OGBench builds a new Box at each access
    low, high = action_space.low, action_space.high
    for attempt in range(1000):
        np_seed, env_seed, action_seed = _episode_seeds(plan.seed, split, episode, attempt)
        np.random.seed(np_seed)  # noqa: NPY002  (OGBench's oracles draw from NumPy's global RNG)
        random_actions = np.random.default_rng(action_seed)
        ob, info = env.reset(seed=env_seed)
        p_stack = _stack_probability(plan.env_id)
        noisy = plan.dataset_type == "noisy"
        xi = float(np.random.uniform(0, plan.noise)) if noisy else 0.0  # noqa: NPY002
        agent = oracles[info["privileged/target_task"]]
        agent.reset(ob, info)
        rows: dict[str, list] = {k: [] for k in ("observations", "actions", "terminals", "qpos", "qvel")}
        if has_buttons:
            rows["button_states"] = []
        done = False
        while not done:
            if np.random.rand() < plan.p_random_action:  # noqa: NPY002
                action = random_actions.uniform(low, high).astype(np.float32)
            else:
                action = np.array(agent.select_action(ob, info))
                if plan.dataset_type == "noisy":
                    action = action + np.random.normal(0, [xi, xi, xi, xi * 3, xi * 10], action.shape)  # noqa: NPY002
            action = np.clip(action, -1, 1)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if agent.done:
                agent_ob, agent_info = env.unwrapped.set_new_target(p_stack=p_stack)
                agent = oracles[agent_info["privileged/target_task"]]
                agent.reset(agent_ob, agent_info)
            rows["observations"].append(ob)
            rows["actions"].append(action)
            rows["terminals"].append(done)
            rows["qpos"].append(info["prev_qpos"])
            rows["qvel"].append(info["prev_qvel"])
            if has_buttons:
                rows["button_states"].append(info["prev_button_states"])
            ob = next_ob
        episode_arrays = _official_dtypes(rows)
        if not _family(plan).startswith("scene") or _scene_episode_is_healthy(episode_arrays["qpos"]):
            return episode_arrays
    raise RuntimeError(
        f"Episode {episode} (split {split}) of {plan.dataset_name}: no healthy scene episode in 1000 attempts."
    )


def _official_dtypes(rows: dict[str, list]) -> dict[str, np.ndarray]:
    dtypes = {"terminals": bool, "button_states": np.int64}
    if np.asarray(rows["observations"][0]).dtype == np.uint8:
        dtypes["observations"] = np.uint8  # rendered frames of visual- environments
    return {k: np.asarray(v, dtype=dtypes.get(k, np.float32)) for k, v in rows.items()}


# ------------------------------------------------------------------------------------------ chunks/shards

_WORKER_ENVS: dict[tuple[str, int, str], tuple] = {}


def _environment_and_oracles(plan: GenerationPlan) -> tuple:
    """One environment per process and plan, reused across chunks."""
    key = (plan.env_id, plan.max_episode_steps, plan.dataset_type)
    if key not in _WORKER_ENVS:
        configure_headless()  # MUJOCO_GL must be chosen before MuJoCo is first imported in this process
        import ogbench.manipspace  # noqa: F401  (registers the environments; builds MuJoCo models)

        env = gymnasium.make(
            plan.env_id,
            terminate_at_goal=False,
            mode="data_collection",
            max_episode_steps=plan.max_episode_steps,
        )
        _WORKER_ENVS[key] = (env, _make_oracles(env, plan))
    return _WORKER_ENVS[key]


def _generate_chunk(
    plan: GenerationPlan, split: int, episodes: tuple[int, ...], shard_path: str
) -> tuple[int, int]:
    """Roll out ``episodes`` of ``split`` and write them to ``shard_path`` atomically; return (episodes, steps)."""
    env, oracles = _environment_and_oracles(plan)
    parts = [rollout_episode(env, oracles, plan, e, split) for e in episodes]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    write_npz_atomic(shard_path, arrays, compress=False)
    return len(episodes), len(arrays["terminals"])


def _chunks(split: int, count: int, size: int) -> list[tuple[int, tuple[int, ...]]]:
    """(split, episode indices) of consecutive chunks of ``size`` episodes covering 0..count-1."""
    return [(split, tuple(range(s, min(s + size, count)))) for s in range(0, count, size)]


@dataclass(frozen=True)
class GenerationResult:
    train_path: Path
    val_path: Path
    steps: int  # rows in both files
    seconds: float  # time spent rolling out in this call
    cached: bool
    generated_steps: int = 0  # rows rolled out in this call (fewer than ``steps`` after a resume)

    @property
    def steps_per_second(self) -> float:
        """Generation speed of this call (environment steps per wall-clock second)."""
        return self.generated_steps / self.seconds if self.seconds > 0 else float("nan")


def _read_sidecar(path: Path) -> dict:
    """The generation record beside a dataset ({} when missing or unreadable: the dataset counts as stale)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def generate(
    dataset_name: str = "cube-single-play-v0",
    num_episodes: int | None = None,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    workers: int = 1,
    max_episode_steps: int = OFFICIAL_MAX_EPISODE_STEPS,
    chunk_episodes: int = 10,
    progress: bool | Callable[[int, int], None] = True,
    overwrite: bool = False,
) -> GenerationResult:
    """Generate (or reuse) a dataset; see :func:`generate_dataset`. Returns paths and measured speed."""
    plan = official_plan(dataset_name, num_episodes, seed, max_episode_steps)
    directory = (
        Path(out_dir).expanduser()
        if out_dir
        else generated_dataset_dir(dataset_name, plan.num_episodes, seed)
    )
    output_dir(directory)  # an existing file as --out is refused before any rollout
    train_path, val_path = ogbench_files(directory, dataset_name)

    def waiting() -> None:
        if progress:
            tqdm.write(
                f"another process is generating {dataset_name} in {directory}: waiting for it to finish "
                "(its dataset is reused when the settings match)",
                file=sys.stderr,
            )

    lock = FileLock(generation_lock(directory, dataset_name), wait_s=math.inf, on_wait=waiting)
    with lock:  # one generator per dataset folder: a second waits, then finds the finished files
        return _generate_locked(
            plan, directory, train_path, val_path, bool(out_dir), workers, chunk_episodes, progress, overwrite
        )


def _generate_locked(
    plan: GenerationPlan,
    directory: Path,
    train_path: Path,
    val_path: Path,
    explicit_out: bool,
    workers: int,
    chunk_episodes: int,
    progress: bool | Callable[[int, int], None],
    overwrite: bool,
) -> GenerationResult:
    """:func:`generate`'s work, under the dataset folder's lock."""
    dataset_name = plan.dataset_name
    sidecar = generation_record(train_path)
    if train_path.exists() and val_path.exists() and not overwrite:
        recorded = _read_sidecar(sidecar)
        if recorded.get("fingerprint") == plan.fingerprint():
            return GenerationResult(train_path, val_path, int(recorded.get("steps", 0)), 0.0, cached=True)
        if explicit_out:  # fidec's own cache is regenerated when stale (older format, other settings)
            raise GeneratedDatasetExistsError(
                f"{train_path} already exists but was not generated with these settings "
                f"({dataclasses.asdict(plan)}). "
                "Choose another --out directory, or pass overwrite=True (--overwrite) to replace it."
            )

    shard_dir = generation_parts(directory, dataset_name, plan.fingerprint())
    shard_dir.mkdir(parents=True, exist_ok=True)
    train_chunks = _chunks(TRAIN_SPLIT, plan.num_episodes, chunk_episodes)
    val_chunks = _chunks(VAL_SPLIT, plan.num_val_episodes, chunk_episodes)
    split_names = {TRAIN_SPLIT: "train", VAL_SPLIT: "val"}
    shard = lambda c: generation_part(shard_dir, split_names[c[0]], c[1][0], c[1][-1])
    todo = [c for c in train_chunks + val_chunks if not shard(c).exists()]
    total = plan.num_episodes + plan.num_val_episodes
    done_before = total - sum(len(c[1]) for c in todo)

    bar = None
    if progress is True:
        bar = tqdm(total=total, initial=done_before, unit="episode", desc=f"generating {dataset_name}")
    start, steps = time.perf_counter(), 0

    def report(episodes: int, chunk_steps: int) -> None:
        nonlocal steps
        steps += chunk_steps
        if bar is not None:
            bar.update(episodes)
            bar.set_postfix(transitions_per_s=f"{steps / max(time.perf_counter() - start, 1e-9):.0f}")
        elif callable(progress):
            progress(episodes, chunk_steps)

    try:
        if workers <= 1 or len(todo) <= 1:
            for chunk in todo:
                report(*_generate_chunk(plan, *chunk, str(shard(chunk))))
        else:
            context = multiprocessing.get_context("spawn")  # fork is unsafe once JAX has started threads
            with concurrent.futures.ProcessPoolExecutor(min(workers, len(todo)), mp_context=context) as pool:
                futures = [pool.submit(_generate_chunk, plan, *c, str(shard(c))) for c in todo]
                for future in concurrent.futures.as_completed(futures):
                    report(*future.result())
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start

    merged = {}
    for name, chunks in (("val", val_chunks), ("train", train_chunks)):
        parts = [read_npz(shard(c)) for c in chunks]
        merged[name] = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    total_steps = len(merged["train"]["terminals"]) + len(merged["val"]["terminals"])
    record = {
        "fingerprint": plan.fingerprint(),
        "plan": dataclasses.asdict(plan),
        "steps": total_steps,
        "generated_steps": steps,
        "seconds": seconds,
        "steps_per_second": steps / seconds if seconds > 0 and steps else None,
        "workers": workers,
    }
    # The training file is written last: its presence marks the set (val, record, train) as complete.
    write_npz_atomic(val_path, merged["val"])
    write_json_atomic(sidecar, record)
    write_npz_atomic(train_path, merged["train"])
    shutil.rmtree(shard_dir, ignore_errors=True)
    return GenerationResult(train_path, val_path, total_steps, seconds, cached=False, generated_steps=steps)


def generate_dataset(
    dataset_name: str = "cube-single-play-v0",
    num_episodes: int | None = None,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    workers: int = 1,
    max_episode_steps: int = OFFICIAL_MAX_EPISODE_STEPS,
    chunk_episodes: int = 10,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write ``<out_dir>/<dataset_name>.npz`` and ``-val.npz`` in OGBench's layout; return the training path.

    ``num_episodes`` defaults to the official count; ``out_dir`` to the fidec cache
    (:func:`fidec.data.paths.generated_dataset_dir`). An existing output with the same settings is reused;
    in the cache, one written by an older generator (:data:`GENERATION_FORMAT_VERSION`) or with other
    settings is regenerated, elsewhere it is refused unless ``overwrite``. An interrupted run resumes from
    its finished chunks. ``max_episode_steps`` other than 1001 is for tests.
    """
    result = generate(
        dataset_name,
        num_episodes,
        seed,
        out_dir,
        workers,
        max_episode_steps,
        chunk_episodes,
        progress,
        overwrite,
    )
    return result.train_path
