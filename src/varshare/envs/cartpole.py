"""CartPole with per-task physics, all ``M × N`` copies stepped as one array operation.

The dynamics are *exactly* gymnasium's ``CartPole-v1`` (Euler integrator, ±10 N force, 0.02 s
step, 2.4 m / 12° thresholds, reward 1 per step including the failing one, 500-step time limit):
every floating-point operation is done in the same order, in float64, so a copy given the same
state and action lands on bit-identical states (``tests/test_cartpole.py`` checks this against
``gymnasium.make("CartPole-v1")`` over full episodes for random parameters).

Per-step success is "the episode reached the time limit without the pole falling".
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

from varshare.envs.base import MultiTaskVecEnv, RawStep
from varshare.envs.specs import TaskSpec

FORCE_MAG = 10.0  # N
TAU = 0.02  # s between state updates
THETA_THRESHOLD = 12 * 2 * math.pi / 360  # rad
X_THRESHOLD = 2.4  # m
MAX_EPISODE_STEPS = 500
RESET_BOUND = 0.05  # initial state ~ U(-0.05, 0.05)^4, as gymnasium


class CartPoleVecEnv(MultiTaskVecEnv):
    """Array CartPole; ``state`` is the writable physical state ``[M, N, 4]`` float64
    (x [m], x_dot [m/s], theta [rad], theta_dot [rad/s])."""

    def __init__(self, specs: list[TaskSpec], envs_per_task: int, seed: int):
        super().__init__(specs, envs_per_task, seed)
        if any(spec.family != "cartpole" for spec in specs):
            raise ValueError("CartPoleVecEnv takes only 'cartpole' task specs")
        high = np.array(
            [X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf], dtype=np.float32
        )
        self.single_observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(2)

        def per_task(key: str) -> np.ndarray:  # [M, 1], broadcast over copies
            return np.array([[spec.parameters[key]] for spec in specs], dtype=np.float64)

        self.gravity = per_task("gravity")
        self.masscart = per_task("masscart")
        self.masspole = per_task("masspole")
        self.length = per_task("length")  # half the pole's length, as gymnasium
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length

        shape = (self.num_tasks, self.envs_per_task)
        self.state = np.zeros((*shape, 4), dtype=np.float64)
        self.elapsed_steps = np.zeros(shape, dtype=np.int64)
        self.rng = np.random.default_rng(seed)

    supports_state = True

    def state_dict(self) -> dict:
        return {"episode": self._episode_state(), "state": self.state.copy(),
                "elapsed_steps": self.elapsed_steps.copy(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self._load_episode_state(state["episode"])
        self.state[...] = state["state"]
        self.elapsed_steps[...] = state["elapsed_steps"]
        self.rng.bit_generator.state = state["rng"]

    def _reset_envs(self) -> np.ndarray:
        self.rng = np.random.default_rng(self.seed)
        self.state[:] = self.rng.uniform(-RESET_BOUND, RESET_BOUND, size=self.state.shape)
        self.elapsed_steps[:] = 0
        return self.state.astype(np.float32)

    def _step_envs(self, actions: np.ndarray) -> RawStep:
        x, x_dot, theta, theta_dot = np.moveaxis(self.state, -1, 0)
        force = np.where(actions == 1, FORCE_MAG, -FORCE_MAG)
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        # Same expressions, same evaluation order as gymnasium's cartpole.py.
        temp = (force + self.polemass_length * np.square(theta_dot) * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * np.square(costheta) / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        new_state = np.stack(
            (
                x + TAU * x_dot,
                x_dot + TAU * xacc,
                theta + TAU * theta_dot,
                theta_dot + TAU * thetaacc,
            ),
            axis=-1,
        )
        x_new, theta_new = new_state[..., 0], new_state[..., 2]
        terminated = (
            (x_new < -X_THRESHOLD)
            | (x_new > X_THRESHOLD)
            | (theta_new < -THETA_THRESHOLD)
            | (theta_new > THETA_THRESHOLD)
        )
        self.elapsed_steps += 1
        truncated = self.elapsed_steps >= MAX_EPISODE_STEPS
        final_obs = new_state.astype(np.float32)
        done = terminated | truncated
        if done.any():
            num_done = int(done.sum())
            new_state[done] = self.rng.uniform(-RESET_BOUND, RESET_BOUND, size=(num_done, 4))
            self.elapsed_steps[done] = 0
            obs = new_state.astype(np.float32)
        else:
            obs = final_obs
        self.state[...] = new_state
        return RawStep(
            obs=obs,
            reward=np.ones(done.shape, dtype=np.float32),
            terminated=terminated,
            truncated=truncated,
            final_obs=final_obs,
            success=truncated & ~terminated,
        )
