"""Build the right vectorised multi-task env for a list of task specs."""

from __future__ import annotations

from typing import Literal

from varshare.envs.base import MultiTaskVecEnv
from varshare.envs.specs import TaskSpec, validate_suite


def make_vec_env(
    specs: list[TaskSpec],
    envs_per_task: int,
    seed: int,
    mode: Literal["sync", "async"] = "sync",
    num_workers: int | None = None,
) -> MultiTaskVecEnv:
    """A vectorised env over ``specs`` (one family) with ``envs_per_task`` copies per task.

    Args:
        specs: validated task specs of one family.
        envs_per_task: ``N`` copies of each task.
        seed: seed of every random choice in the env.
        mode: ``"sync"`` steps simulator-backed families in this process, ``"async"`` in
            ``num_workers`` worker processes. CartPole is a single array program and ignores both.
        num_workers: worker processes for ``"async"`` (default: the CPUs this process may use, at most M×N).
    """
    validate_suite(specs)
    family = specs[0].family
    if family == "cartpole":
        from varshare.envs.cartpole import CartPoleVecEnv

        return CartPoleVecEnv(specs, envs_per_task, seed)
    if family == "lunarlander":
        from varshare.envs.lunarlander import LunarLanderVecEnv

        return LunarLanderVecEnv(specs, envs_per_task, seed, mode=mode, num_workers=num_workers)
    if family == "metaworld":
        from varshare.envs.metaworld_mt import MetaWorldVecEnv

        return MetaWorldVecEnv(specs, envs_per_task, seed, mode=mode, num_workers=num_workers)
    raise ValueError(f"no vectorised env for family {family!r}")
