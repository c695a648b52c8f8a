"""The interface every vectorised multi-task environment implements.

A multi-task vector env holds ``M`` tasks with ``N`` environment copies each and steps all
``M × N`` of them at once. Arrays are laid out task-major: axis 0 is the task, axis 1 the copy.

Auto-reset is *same-step*: when an episode ends at step t, ``VecStep.obs`` already holds the
first observation of the next episode and ``VecStep.final_obs`` the last observation of the
finished one, so a learner can bootstrap from ``final_obs`` on truncation. Termination (the MDP
ended) and truncation (a time limit cut the episode) are reported separately.

The base class keeps the per-episode bookkeeping (return, length, success) that all families
share; a family implements only ``_reset_envs`` and ``_step_envs``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from varshare.envs.specs import TaskSpec


@dataclass(frozen=True)
class RawStep:
    """One step of all copies as a family produces it. Shapes use ``M`` tasks × ``N`` copies.

    Attributes:
        obs: ``[M, N, obs_dim]`` float32 — observation to act on next (already reset where done).
        reward: ``[M, N]`` float32 — reward of this transition.
        terminated: ``[M, N]`` bool — the episode reached a terminal state (do not bootstrap).
        truncated: ``[M, N]`` bool — the episode was cut by the time limit (bootstrap from
            ``final_obs``). Both flags may be set on the same step.
        final_obs: ``[M, N, obs_dim]`` float32 — last observation of the finished episode where
            ``done``; equal to ``obs`` elsewhere.
        success: ``[M, N]`` bool — the family's per-step success flag (see each family).
    """

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray
    success: np.ndarray

    @property
    def done(self) -> np.ndarray:
        """``[M, N]`` bool — an episode ended at this step (terminated or truncated)."""
        return self.terminated | self.truncated


@dataclass(frozen=True)
class VecStep(RawStep):
    """What :meth:`MultiTaskVecEnv.step` returns: the :class:`RawStep` plus episode bookkeeping.

    Attributes:
        episode_return: ``[M, N]`` float64 — undiscounted return of the finished episode;
            meaningful only where ``done``.
        episode_length: ``[M, N]`` int64 — length in steps of the finished episode, where ``done``.
        episode_success: ``[M, N]`` bool — whether the finished episode succeeded, where ``done``.
    """

    episode_return: np.ndarray
    episode_length: np.ndarray
    episode_success: np.ndarray


class MultiTaskVecEnv(abc.ABC):
    """``M`` tasks × ``N`` copies stepped together; see the module docstring for the layout.

    Args:
        specs: one validated :class:`TaskSpec` per task, in task order.
        envs_per_task: ``N``, copies of each task.
        seed: seeds every random choice of the environment (initial states, goals, wind);
            the same seed and the same actions give identical trajectories.
    """

    #: gymnasium space of one copy's observation (``Box`` of shape ``[obs_dim]``).
    single_observation_space: gym.spaces.Box
    #: gymnasium space of one copy's action (``Discrete`` or ``Box``).
    single_action_space: gym.spaces.Space

    def __init__(self, specs: list[TaskSpec], envs_per_task: int, seed: int):
        if not specs:
            raise ValueError("a multi-task env needs at least one task spec")
        if envs_per_task < 1:
            raise ValueError(f"envs_per_task must be >= 1, got {envs_per_task}")
        self.specs = list(specs)
        self.num_tasks = len(specs)
        self.envs_per_task = int(envs_per_task)
        self.seed = int(seed)
        shape = (self.num_tasks, self.envs_per_task)
        self._episode_return = np.zeros(shape, dtype=np.float64)
        self._episode_length = np.zeros(shape, dtype=np.int64)
        self._episode_success = np.zeros(shape, dtype=bool)

    @property
    def obs_dim(self) -> int:
        return int(self.single_observation_space.shape[0])

    @property
    def is_discrete(self) -> bool:
        return isinstance(self.single_action_space, gym.spaces.Discrete)

    @property
    def task_names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    def reset(self) -> np.ndarray:
        """Reset every copy from ``seed``; returns observations ``[M, N, obs_dim]`` float32."""
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        self._episode_success[:] = False
        return self._reset_envs()

    def step(self, actions: np.ndarray) -> VecStep:
        """Step all copies. ``actions``: ``[M, N]`` ints (discrete) or ``[M, N, act_dim]`` floats."""
        actions = np.asarray(actions)
        expected = (self.num_tasks, self.envs_per_task, *self.single_action_space.shape)
        if actions.shape != expected:
            raise ValueError(f"actions must have shape {expected}, got {actions.shape}")
        raw = self._step_envs(actions)
        self._episode_return += raw.reward
        self._episode_length += 1
        self._episode_success |= raw.success
        done = raw.done
        step = VecStep(
            **vars(raw),
            episode_return=self._episode_return.copy(),
            episode_length=self._episode_length.copy(),
            episode_success=self._episode_success.copy(),
        )
        self._episode_return[done] = 0.0
        self._episode_length[done] = 0
        self._episode_success[done] = False
        return step

    #: whether :meth:`state_dict` captures the complete state (so a run can resume mid-episode)
    supports_state: bool = False

    def state_dict(self) -> dict:
        """Everything needed to continue exactly where the env is (families with
        ``supports_state``); simulator-backed families cannot snapshot their simulators."""
        raise NotImplementedError(f"{type(self).__name__} cannot snapshot its simulators")

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot restore its simulators")

    def _episode_state(self) -> dict:
        return {"return": self._episode_return.copy(), "length": self._episode_length.copy(),
                "success": self._episode_success.copy()}

    def _load_episode_state(self, state: dict) -> None:
        self._episode_return[:] = state["return"]
        self._episode_length[:] = state["length"]
        self._episode_success[:] = state["success"]

    def reseed(self, seed: int) -> np.ndarray:
        """Reset every copy from a new ``seed`` (unfinished episodes are abandoned); returns obs."""
        self.seed = int(seed)
        return self.reset()

    def close(self) -> None:
        """Release worker processes or simulator handles; safe to call twice."""

    def __enter__(self) -> MultiTaskVecEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @abc.abstractmethod
    def _reset_envs(self) -> np.ndarray:
        """Reset all copies from ``self.seed``; return observations ``[M, N, obs_dim]`` float32."""

    @abc.abstractmethod
    def _step_envs(self, actions: np.ndarray) -> RawStep:
        """Advance all copies one step with same-step auto-reset."""
