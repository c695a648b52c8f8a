"""The array CartPole must reproduce gymnasium's CartPole-v1 bit for bit, for any parameters."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from varshare.envs import build_suite, make_vec_env
from varshare.envs.cartpole import MAX_EPISODE_STEPS, CartPoleVecEnv
from varshare.envs.specs import FAMILY_PARAMETERS, TaskSpec


def gymnasium_twin(spec: TaskSpec) -> gym.Env:
    """``CartPole-v1`` (with its TimeLimit) whose physical constants are set to ``spec``'s."""
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    raw = env.unwrapped
    p = spec.parameters
    raw.gravity, raw.masscart, raw.masspole, raw.length = (
        p["gravity"], p["masscart"], p["masspole"], p["length"],
    )
    raw.total_mass = raw.masspole + raw.masscart
    raw.polemass_length = raw.masspole * raw.length
    return env


def random_cartpole_specs(count: int, rng: np.random.Generator) -> list[TaskSpec]:
    """Parameters drawn uniformly over the whole allowed range of every key."""
    ranges = FAMILY_PARAMETERS["cartpole"]
    specs = []
    for i in range(count):
        params = {}
        for key, rule in ranges.items():
            params[key] = float(rng.uniform(rule.low, rule.high))
            if params[key] <= rule.low:  # the lower bounds are open
                params[key] = rule.high
        specs.append(TaskSpec(name=f"random-{i}", family="cartpole", parameters=params))
    return specs


def balancing_actions(state: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """A simple balancing controller with ``noise`` probability of a random action, so episodes
    end by falling *and* by reaching the time limit. ``state``: [M, N, 4] → actions [M, N]."""
    greedy = (state[..., 2] + 0.5 * state[..., 3] + 0.05 * state[..., 1] > 0).astype(np.int64)
    random = rng.integers(0, 2, size=greedy.shape)
    return np.where(rng.random(greedy.shape) < noise, random, greedy)


def assert_matches_gymnasium(specs: list[TaskSpec], envs_per_task: int, steps: int, noise: float):
    """Step the array env and one gymnasium twin per copy from identical states; compare all."""
    rng = np.random.default_rng(123)
    vec = CartPoleVecEnv(specs, envs_per_task, seed=7)
    vec.reset()
    twins = [[gymnasium_twin(spec) for _ in range(envs_per_task)] for spec in specs]
    for m, row in enumerate(twins):
        for n, twin in enumerate(row):
            twin.unwrapped.state = vec.state[m, n].copy()

    episodes = {"terminated": 0, "truncated": 0}
    for _ in range(steps):
        actions = balancing_actions(vec.state, rng, noise)
        out = vec.step(actions)
        for m, row in enumerate(twins):
            for n, twin in enumerate(row):
                obs, reward, terminated, truncated, _ = twin.step(int(actions[m, n]))
                np.testing.assert_array_equal(out.final_obs[m, n], obs)
                assert out.reward[m, n] == reward
                assert out.terminated[m, n] == terminated
                assert out.truncated[m, n] == truncated
                if terminated or truncated:
                    episodes["terminated" if terminated else "truncated"] += 1
                    twin.reset()
                    twin.unwrapped.state = vec.state[m, n].copy()
                else:  # the internal float64 state, not just the float32 observation
                    np.testing.assert_array_equal(twin.unwrapped.state, vec.state[m, n])
    return episodes


def test_default_parameters_match_gymnasium_over_full_episodes():
    default = [s for s in build_suite("cartpole10") if s.name == "default"]
    episodes = assert_matches_gymnasium(default, envs_per_task=4, steps=1500, noise=0.2)
    assert episodes["truncated"] > 0 and episodes["terminated"] > 0, episodes


def test_random_parameters_across_allowed_range_match_gymnasium():
    specs = random_cartpole_specs(12, np.random.default_rng(2024))
    episodes = assert_matches_gymnasium(specs, envs_per_task=2, steps=800, noise=0.6)
    assert episodes["terminated"] > 20, episodes


def test_suite_parameters_match_gymnasium():
    episodes = assert_matches_gymnasium(build_suite("cartpole10"), 2, steps=600, noise=0.05)
    assert sum(episodes.values()) > 0


def test_time_limit_truncates_at_500_and_is_not_termination():
    default = [s for s in build_suite("cartpole10") if s.name == "default"]
    env = CartPoleVecEnv(default, envs_per_task=3, seed=0)
    env.reset()
    env.state[:] = 0.0
    never_random = np.random.default_rng(0)
    for t in range(1, MAX_EPISODE_STEPS + 1):
        out = env.step(balancing_actions(env.state, never_random, noise=0.0))
        if t < MAX_EPISODE_STEPS:
            assert not out.done.any()
    assert out.truncated.all() and not out.terminated.any()
    assert (out.episode_length == MAX_EPISODE_STEPS).all()
    assert (out.episode_return == MAX_EPISODE_STEPS).all()
    assert out.episode_success.all()
    # The copies were reset: new observations near zero, final observation kept separately.
    assert np.abs(out.obs).max() <= 0.05
    assert not np.array_equal(out.obs, out.final_obs)


def test_termination_reports_episode_statistics_and_resets():
    specs = build_suite("cartpole10")
    env = CartPoleVecEnv(specs, envs_per_task=2, seed=1)
    env.reset()
    env.state[:] = 0.0
    env.state[:, :, 2] = 0.25  # past the 12° threshold after one step
    out = env.step(np.zeros((10, 2), dtype=np.int64))
    assert out.terminated.all() and not out.truncated.any()
    assert (out.episode_length == 1).all() and (out.episode_return == 1).all()
    assert not out.episode_success.any()
    assert np.all(np.abs(out.final_obs[..., 2]) >= 0.25)
    assert np.all(np.abs(out.obs) <= 0.05)


def test_same_seed_same_trajectory_different_seed_different():
    specs = build_suite("cartpole10")

    def rollout(seed: int) -> np.ndarray:
        env = make_vec_env(specs, envs_per_task=8, seed=seed)
        observations = [env.reset()]
        actions_rng = np.random.default_rng(0)
        for _ in range(300):
            observations.append(env.step(actions_rng.integers(0, 2, size=(10, 8))).obs)
        return np.stack(observations)

    np.testing.assert_array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3), rollout(4))


def test_per_task_parameters_change_the_dynamics():
    specs = build_suite("cartpole10")
    env = CartPoleVecEnv(specs, envs_per_task=1, seed=0)
    env.reset()
    env.state[:] = np.array([0.0, 0.0, 0.05, 0.0])
    out = env.step(np.ones((10, 1), dtype=np.int64))
    theta_dot = out.obs[:, 0, 3]
    assert len(np.unique(theta_dot)) == len(specs)


def test_bad_action_shape_is_rejected_with_the_expected_shape():
    env = CartPoleVecEnv(build_suite("cartpole10"), envs_per_task=2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"\(10, 2\)"):
        env.step(np.zeros((10,), dtype=np.int64))
