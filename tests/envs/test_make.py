"""Environments by task name and batched, seeded evaluation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

from fidec.envs import evaluate, make_env, make_eval_envs
from fidec.envs.make import MissingDependencyError
from fidec.errors import UserError

pytestmark = pytest.mark.env


class CountingEnv(gym.Env):
    """Succeeds after ``seed % 5 + 1`` steps: episode outcomes are known functions of the reset seed."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.goal, self.t = seed % 5 + 1, 0
        return np.array([self.goal, 0.0], np.float32), {}

    def step(self, action):
        assert -1.0 <= action[0] <= 1.0
        self.t += 1
        done = self.t >= self.goal
        return np.array([self.goal, self.t], np.float32), float(action[0]), done, False, {"success": done}


def test_evaluate_batches_episodes_and_does_not_depend_on_the_number_of_envs():
    calls = []

    def policy(observations):
        calls.append(observations.shape)
        return np.full((len(observations), 1), 3.0)  # clipped to 1

    one = evaluate(policy, "pen-human-v1", num_episodes=7, seed=11, envs=[CountingEnv()])
    three = evaluate(policy, "pen-human-v1", num_episodes=7, seed=11, envs=[CountingEnv() for _ in range(3)])
    assert {shape for shape in calls} == {(1, 2), (3, 2)}  # always the full batch
    for key in ("success", "return_mean", "return_std", "length_mean", "episodes", "normalized_score"):
        assert one[key] == pytest.approx(three[key]), key
    assert one["success"] == 1.0 and one["episodes"] == 7
    # Every step earns the clipped action 1, so the return equals the length.
    assert one["return_mean"] == pytest.approx(one["length_mean"])
    assert one["normalized_score"] == pytest.approx(
        100 * (one["return_mean"] - 96.262799) / (3076.8331017826877 - 96.262799)
    )
    other_seed = evaluate(policy, "pen-human-v1", num_episodes=7, seed=12, envs=[CountingEnv()])
    assert other_seed["length_mean"] != one["length_mean"]


def test_policy_errors_are_explained():
    with pytest.raises(ValueError, match=r"shape \(1, 2\); expected \(1, 1\)"):
        evaluate(lambda o: np.zeros((1, 2)), "pen-human-v1", 1, seed=0, envs=[CountingEnv()])
    with pytest.raises(ValueError, match="NaN or inf"):
        evaluate(lambda o: np.full((1, 1), np.nan), "pen-human-v1", 1, seed=0, envs=[CountingEnv()])


def test_ogbench_env_and_evaluation():
    env = make_env("cube-single-play-singletask-task1-v0", seed=0)
    assert env.observation_space.shape == (28,) and env.observation_space.dtype == np.float32
    assert np.allclose(env.action_space.low, -1) and np.allclose(env.action_space.high, 1)
    observation, _ = env.reset(seed=0)
    assert observation.dtype == np.float32
    results = evaluate(
        lambda o: np.zeros((len(o), 5)), "cube-single-play-singletask-task1-v0", 2, seed=0, envs=[env]
    )
    # Standing still never solves the task: 200-step episodes with reward -1 (one cube off target) per step.
    assert results["success"] == 0.0 and results["length_mean"] == 200 and results["return_mean"] == -200
    assert np.isnan(results["normalized_score"])


def test_d4rl_envs_follow_the_d4rl_protocol():
    antmaze = make_env("antmaze-umaze-v2", seed=0)
    assert antmaze.observation_space.shape == (29,)
    starts, goals = [], []
    for seed in range(3):
        observation, _ = antmaze.reset(seed=seed)
        starts.append(observation[:2])
        goals.append(antmaze.unwrapped.goal.copy())
    # D4RL umaze: start cell (1, 1), goal cell (3, 1), 8 m apart along y (with small position noise).
    np.testing.assert_allclose(np.mean(starts, 0) - np.mean(goals, 0), [0.0, 8.0], atol=1.5)
    assert antmaze.spec.max_episode_steps == 700

    pen_envs = make_eval_envs("pen-human-v1", num_envs=2, seed=0)
    assert pen_envs[0].spec.max_episode_steps == 100
    policy = lambda o: np.tanh(0.1 * o[:, :24])
    first = evaluate(policy, "pen-human-v1", 3, seed=0, envs=pen_envs)
    again = evaluate(policy, "pen-human-v1", 3, seed=0, num_envs=1)
    assert first["return_mean"] == again["return_mean"] and first["length_mean"] == 100


def _egl_works() -> bool:
    probe = "import mujoco; c = mujoco.GLContext(16, 16); c.make_current(); c.free()"
    env = dict(os.environ, MUJOCO_GL="egl")
    return (
        subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, timeout=60).returncode
        == 0
    )


@pytest.mark.slow
def test_video_rendering(tmp_path):
    if not _egl_works():
        pytest.skip("MuJoCo cannot create an EGL context on this machine (MUJOCO_GL=egl).")
    script = textwrap.dedent(
        f"""
        import numpy as np
        from fidec.envs import evaluate
        evaluate(lambda o: np.zeros((len(o), 24)), "pen-human-v1", 1, seed=0, video_dir={str(tmp_path)!r})
        """
    )
    env = dict(os.environ, MUJOCO_GL="egl")
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    (video,) = tmp_path.glob("pen-human-v1-seed0.*")
    import imageio.v3 as iio

    frames = iio.imread(video)
    assert frames.shape[0] == 101 and frames.ndim == 4  # the initial frame plus one per step


def test_a_missing_optional_package_is_a_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)  # `import gymnasium_robotics` now fails
    with pytest.raises(
        MissingDependencyError, match=r"'pen-human-v1' needs gymnasium-robotics.*fidec\[d4rl\]"
    ) as error:
        make_env("pen-human-v1")
    assert isinstance(error.value, UserError) and isinstance(error.value, ImportError)
