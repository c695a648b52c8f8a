"""Meta-World v3 MT10 tasks, one MuJoCo env per copy, goals drawn from each task's 50 goals.

Each copy is the Meta-World v3 env ``spec.parameters["env_name"]`` (reward function
``reward_function_version``) whose goal set is that task's 50 goals in
``metaworld.MT10(seed=goal_seed)`` — Meta-World's own MT10 benchmark, which draws the goals of all
ten tasks from one seeded stream (ten separate ``metaworld.MT1`` benchmarks give different goals
for nine of the ten tasks). At every reset the copy draws one of the 50 uniformly with its own
seeded RNG (``np_random.choice``, as Meta-World's ``RandomTaskSelectWrapper`` does) and
``set_task``\\ s it, so different episodes and copies see different goals, deterministically
given the env seed.

* Observation: Meta-World's 39 fully observable dims (hand, gripper, objects, the previous frame
  of those, goal position; metres) followed by the task one-hot of width ``num_tasks`` with a 1 at
  ``task_index`` — ``[M, N, 39 + num_tasks]`` float32 (49 dims for MT10).
* Action: ``Box(-1, 1, (4,))`` float32, ``[M, N, 4]`` — hand displacement (x, y, z, scaled by
  Meta-World to 1 cm per unit) and gripper effort; out-of-range values are clipped by Meta-World.
* Episodes never terminate (``terminated`` is always false, also on success); they are truncated
  after ``max_episode_steps`` (500) steps.
* Per-step success: Meta-World's ``info["success"]`` as a bool; the base class reports an episode
  as successful when it fired at any step.

Seeding: Meta-World ignores ``reset(seed=...)`` (see ``SawyerXYZEnv.reset``), so
:class:`MetaWorldTask` turns a seeded reset into ``env.seed(seed)``, which reseeds the env's
``np_random`` that picks the goals. Building the goal sets seeds and then restores NumPy's
global RNG (``metaworld._make_tasks``), so nothing here leaks into ``np.random``.
"""

from __future__ import annotations

import functools
from typing import Sequence

import gymnasium as gym
import metaworld
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS

from varshare.envs.gym_workers import EnvFactory, GymBackedVecEnv
from varshare.envs.specs import TaskSpec


@functools.lru_cache(maxsize=None)
def mt10_benchmark(goal_seed: int) -> metaworld.MT10:
    """``metaworld.MT10(seed=goal_seed)``, built once per process (it takes ~7 s: it resets each
    of the ten envs 50 times)."""
    return metaworld.MT10(seed=goal_seed)


def mt10_goals(env_name: str, goal_seed: int) -> list[metaworld.Task]:
    """The 50 goals of task ``env_name`` in ``metaworld.MT10(seed=goal_seed)``, in its order."""
    return [task for task in mt10_benchmark(goal_seed).train_tasks if task.env_name == env_name]


class MetaWorldTask(gym.Wrapper):
    """One Meta-World env: a goal from ``goals`` set at every reset, task one-hot appended.

    Args:
        env: a raw (unwrapped) Meta-World v3 env.
        goals: the candidate ``metaworld.Task`` goals of this env (its 50 in MT10).
        task_index: position of the one-hot 1.
        num_tasks: one-hot width.

    Attributes:
        goal_index: index into ``goals`` of the current episode's goal (``None`` before a reset).
    """

    def __init__(self, env: gym.Env, goals: Sequence[metaworld.Task], task_index: int, num_tasks: int):
        super().__init__(env)
        self.goals = list(goals)
        self.goal_index: int | None = None
        self.one_hot = np.zeros(num_tasks, dtype=np.float32)
        self.one_hot[task_index] = 1.0
        # A first set_task switches Meta-World to full observability, which changes the goal
        # bounds of its observation space.
        self.unwrapped.set_task(self.goals[0])
        base = self.unwrapped.sawyer_observation_space
        self.observation_space = gym.spaces.Box(
            np.concatenate([base.low, np.zeros(num_tasks)]).astype(np.float32),
            np.concatenate([base.high, np.ones(num_tasks)]).astype(np.float32),
            dtype=np.float32,
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.unwrapped.seed(seed)
        self.goal_index = int(self.unwrapped.np_random.choice(len(self.goals)))
        self.unwrapped.set_task(self.goals[self.goal_index])
        obs, info = self.env.reset(options=options)
        return self._with_one_hot(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._with_one_hot(obs), reward, terminated, truncated, info

    def _with_one_hot(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(obs, dtype=np.float32), self.one_hot])


def make_metaworld_env(
    env_name: str,
    task_index: int,
    num_tasks: int,
    goal_seed: int,
    max_episode_steps: int,
    reward_function_version: str,
    goals: Sequence[metaworld.Task] | None = None,
) -> gym.Env:
    """One copy: ``TimeLimit(MetaWorldTask(raw env))`` with the parameters of a metaworld spec.

    ``goals`` are the task's goals if the caller already has them (they must be
    ``mt10_goals(env_name, goal_seed)``); otherwise they are built here.
    """
    goals = mt10_goals(env_name, goal_seed) if goals is None else goals
    raw = ALL_V3_ENVIRONMENTS[env_name](reward_function_version=reward_function_version)
    task = MetaWorldTask(raw, goals, task_index, num_tasks)
    return gym.wrappers.TimeLimit(task, max_episode_steps)


class MetaWorldVecEnv(GymBackedVecEnv):
    """``M`` Meta-World tasks × ``N`` copies; obs ``[M, N, 39 + num_tasks]``, actions ``[M, N, 4]``."""

    family = "metaworld"

    def env_factory(self, spec: TaskSpec) -> EnvFactory:
        """Builds the goal sets here, once per process, and ships them to the copies (async
        workers would otherwise rebuild ``metaworld.MT10`` each)."""
        goals = mt10_goals(spec.parameters["env_name"], spec.parameters["goal_seed"])
        return functools.partial(make_metaworld_env, **spec.parameters, goals=goals)
