"""The frame-stacking environment wrapper gives pixel agents the stacks they were trained on."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from fidec.data.visual import VisualDataset
from fidec.envs.frame_stack import FrameStack, stack_frames


class CountingEnv(gymnasium.Env):
    """Frames whose pixels hold the step index; episodes of ``length`` steps."""

    observation_space = gymnasium.spaces.Box(0, 255, (4, 4, 3), np.uint8)
    action_space = gymnasium.spaces.Box(-1, 1, (2,), np.float32)

    def __init__(self, length: int = 4):
        self.length, self.t = length, 0

    def _frame(self):
        return np.full((4, 4, 3), self.t, np.uint8)

    def reset(self, seed=None, options=None):
        self.t = 0
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        return self._frame(), 0.0, self.t >= self.length, False, {}


def test_frame_stack_wrapper_gives_the_same_stacks_as_the_dataset():
    env = stack_frames([CountingEnv(length=4)], 3)[0]
    assert isinstance(env, FrameStack) and env.observation_space.shape == (4, 4, 9)
    seen = [env.reset()[0]]
    done = False
    while not done:
        ob, _, done, _, _ = env.step(np.zeros(2))
        seen.append(ob)
    newest = [s[0, 0, ::3].tolist() for s in seen]
    assert newest == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]]
    assert env.reset()[0][0, 0, ::3].tolist() == [0, 0, 0]  # a reset forgets the last episode
    # The dataset stacks of the same episode (5 frames, 4 transitions) are the same arrays.
    terminals = np.zeros(5, bool)
    terminals[-1] = True
    frames = np.stack([np.full((4, 4, 3), t, np.uint8) for t in range(5)])
    ds = VisualDataset.from_episodes(frames, np.zeros((5, 2)), terminals, frame_stack=3)
    np.testing.assert_array_equal(ds.observations_at(np.arange(4)), np.stack(seen[:4]))
    np.testing.assert_array_equal(ds.observations_at(np.arange(4), next_=True), np.stack(seen[1:]))


def test_state_environments_and_a_stack_of_one_are_left_alone():
    assert stack_frames([CountingEnv()], 1)[0].observation_space.shape == (4, 4, 3)

    class StateEnv(CountingEnv):
        observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)

    state = StateEnv()
    assert stack_frames([state], 3)[0] is state
    with pytest.raises(ValueError, match="frame stack must be >= 1"):
        FrameStack(CountingEnv(), 0)
