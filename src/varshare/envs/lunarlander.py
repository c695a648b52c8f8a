"""LunarLander with per-task gravity and wind, one gymnasium ``LunarLander-v3`` per copy.

Each copy is ``gym.make("LunarLander-v3", continuous=False, ...)`` with the task's ``gravity``
(m/s², negative), ``wind_power`` and ``turbulence_power``; wind is enabled when either is positive.
``gym.make`` adds the 1000-step time limit (truncation). Observations are gymnasium's 8 floats
(x, y, vx, vy, angle, angular velocity, left/right leg contact); actions are ``Discrete(4)``
(noop, left engine, main engine, right engine), given as ``[M, N]`` integers.

Per-step success: the episode *terminated* with the lander at rest on the ground — Box2D put the
lander body to sleep (``not lander.awake``), the body never touched the ground (``game_over`` is
false) and it is inside the viewport (``|x| < 1``). It is false on every other step, on crashes
and out-of-bounds exits, on time-limit truncations, and also when a lander comes to rest after
its body hit the ground (which gymnasium rewards with +100, but which is a crash).
"""

from __future__ import annotations

import functools

import gymnasium as gym

from varshare.envs.gym_workers import EnvFactory, GymBackedVecEnv
from varshare.envs.specs import TaskSpec


class LandingSuccess(gym.Wrapper):
    """Adds ``info["success"]`` (see the module docstring) to every step of a LunarLander env."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lander_env = self.env.unwrapped
        info["success"] = bool(
            terminated
            and not lander_env.lander.awake
            and not lander_env.game_over
            and abs(float(obs[0])) < 1.0
        )
        return obs, reward, terminated, truncated, info


def make_lunarlander_env(gravity: float, wind_power: float, turbulence_power: float) -> gym.Env:
    """One discrete ``LunarLander-v3`` copy with the given physics and the landing-success flag."""
    env = gym.make(
        "LunarLander-v3",
        continuous=False,
        gravity=gravity,
        enable_wind=wind_power > 0 or turbulence_power > 0,
        wind_power=wind_power,
        turbulence_power=turbulence_power,
    )
    return LandingSuccess(env)


class LunarLanderVecEnv(GymBackedVecEnv):
    """``M`` LunarLander tasks × ``N`` copies; obs ``[M, N, 8]`` float32, actions ``[M, N]`` ints."""

    family = "lunarlander"

    def env_factory(self, spec: TaskSpec) -> EnvFactory:
        return functools.partial(make_lunarlander_env, **spec.parameters)
