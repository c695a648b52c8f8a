"""The three task suites of the study: CartPole-10, LunarLander-20 and Meta-World MT10.

Each builder returns validated :class:`~varshare.envs.specs.TaskSpec` objects stamped with the
versions of the packages that define their dynamics.
"""

from __future__ import annotations

from typing import Callable

from varshare.envs.specs import (
    FAMILY_PACKAGES,
    MT10_TASKS,
    TaskSpec,
    package_versions,
    validate_suite,
)

# CartPole-10: (name, half pole length [m], cart mass [kg], pole mass [kg], gravity [m/s²]).
# From heavy carts with short poles (fast, aggressive dynamics) to light carts with long poles in
# low gravity (slow, floaty dynamics); the first row is gymnasium's default CartPole-v1.
CARTPOLE10: tuple[tuple[str, float, float, float, float], ...] = (
    ("default", 0.5, 1.0, 0.1, 9.8),
    ("heavy-cart-short-pole", 0.25, 3.0, 0.1, 9.8),
    ("heavy-cart-short-pole-high-g", 0.3, 2.5, 0.2, 12.0),
    ("heavy-cart-heavy-pole", 0.35, 2.0, 0.4, 12.0),
    ("long-heavy-pole", 1.0, 1.0, 0.5, 9.8),
    ("mars", 0.75, 0.8, 0.2, 3.71),
    ("moon", 0.5, 1.0, 0.1, 1.62),
    ("light-cart-long-pole-low-g", 1.0, 0.5, 0.05, 4.0),
    ("light-cart-very-long-pole", 1.5, 0.3, 0.05, 2.0),
    ("feather-cart-long-pole-high-g", 1.2, 0.2, 0.1, 11.0),
)

# LunarLander-20: 5 gravities × 4 weather conditions, calm Moon to stormy Jupiter-like.
LUNAR_GRAVITIES: tuple[tuple[str, float], ...] = (
    ("moon", -1.62),
    ("mars", -3.71),
    ("titan", -6.0),
    ("earth", -9.81),
    ("jupiter", -11.9),
)
# (name, wind_power, turbulence_power)
LUNAR_WEATHER: tuple[tuple[str, float, float], ...] = (
    ("calm", 0.0, 0.0),
    ("breezy", 5.0, 0.5),
    ("windy", 12.0, 1.2),
    ("stormy", 20.0, 2.0),
)

#: Seed of Meta-World's 50 goal positions per task; part of the spec so it is recorded.
MT10_GOAL_SEED = 0
MT10_EPISODE_STEPS = 500


def cartpole10() -> list[TaskSpec]:
    versions = package_versions(FAMILY_PACKAGES["cartpole"])
    return [
        TaskSpec(
            name=name,
            family="cartpole",
            parameters={"length": length, "masscart": masscart, "masspole": masspole, "gravity": gravity},
            versions=versions,
        )
        for name, length, masscart, masspole, gravity in CARTPOLE10
    ]


def lunarlander20() -> list[TaskSpec]:
    versions = package_versions(FAMILY_PACKAGES["lunarlander"])
    return [
        TaskSpec(
            name=f"{body}-{weather}",
            family="lunarlander",
            parameters={"gravity": gravity, "wind_power": wind, "turbulence_power": turbulence},
            versions=versions,
        )
        for body, gravity in LUNAR_GRAVITIES
        for weather, wind, turbulence in LUNAR_WEATHER
    ]


def mt10() -> list[TaskSpec]:
    versions = package_versions(FAMILY_PACKAGES["metaworld"])
    return [
        TaskSpec(
            name=env_name,
            family="metaworld",
            parameters={
                "env_name": env_name,
                "task_index": index,
                "num_tasks": len(MT10_TASKS),
                "goal_seed": MT10_GOAL_SEED,
                "max_episode_steps": MT10_EPISODE_STEPS,
                "reward_function_version": "v2",
            },
            versions=versions,
        )
        for index, env_name in enumerate(MT10_TASKS)
    ]


SUITES: dict[str, Callable[[], list[TaskSpec]]] = {
    "cartpole10": cartpole10,
    "lunarlander20": lunarlander20,
    "mt10": mt10,
}


def build_suite(name: str) -> list[TaskSpec]:
    """Specs of suite ``name``; raises ``ValueError`` listing the suites if ``name`` is unknown."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; allowed: {sorted(SUITES)}")
    specs = SUITES[name]()
    validate_suite(specs)
    return specs
