"""LunarLanderVecEnv and the shared gym worker machinery (EnvChunk, sync/async runners)."""

from __future__ import annotations

import functools
import multiprocessing as mp
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.box2d.lunar_lander import heuristic

from varshare.envs.base import VecStep
from varshare.envs.gym_workers import AsyncRunner, WorkerError, copy_seeds
from varshare.envs.lunarlander import LunarLanderVecEnv, make_lunarlander_env
from varshare.envs.suites import cartpole10, lunarlander20

SPECS = {spec.name: spec for spec in lunarlander20()}
MIXED = [SPECS["moon-calm"], SPECS["earth-stormy"], SPECS["jupiter-windy"]]
VEC_FIELDS = [
    "obs", "reward", "terminated", "truncated", "final_obs", "success",
    "episode_return", "episode_length", "episode_success",
]


def random_rollout(env: LunarLanderVecEnv, steps: int, action_seed: int = 0) -> list[VecStep]:
    rng = np.random.default_rng(action_seed)
    env.reset()
    shape = (env.num_tasks, env.envs_per_task)
    return [env.step(rng.integers(0, 4, size=shape)) for _ in range(steps)]


def policy_rollout(env: LunarLanderVecEnv, policy, steps: int) -> list[VecStep]:
    obs = env.reset()
    out = []
    for _ in range(steps):
        out.append(env.step(np.array([[policy(o) for o in row] for row in obs])))
        obs = out[-1].obs
    return out


def land(obs: np.ndarray) -> int:
    """gymnasium's demonstration lander (discrete)."""
    return int(heuristic(SimpleNamespace(unwrapped=SimpleNamespace(continuous=False)), obs))


def hover(obs: np.ndarray) -> int:
    """Hold the lander ~0.8 above the pad until the time limit (in Earth gravity without wind)."""
    angle_targ = np.clip(obs[0] * 0.5 + obs[2] * 1.0, -0.4, 0.4)
    angle_todo = (angle_targ - obs[4]) * 0.5 - obs[5] * 1.0
    hover_todo = (0.8 - obs[1]) * 0.5 - obs[3] * 0.5
    if hover_todo > abs(angle_todo) and hover_todo > 0.05:
        return 2
    if angle_todo < -0.05:
        return 3
    if angle_todo > 0.05:
        return 1
    return 0


def assert_same_steps(a: list[VecStep], b: list[VecStep]) -> None:
    for step_a, step_b in zip(a, b, strict=True):
        for name in VEC_FIELDS:
            np.testing.assert_array_equal(getattr(step_a, name), getattr(step_b, name), err_msg=name)


def test_shapes_dtypes_and_spaces():
    with LunarLanderVecEnv(MIXED, 2, seed=0) as env:
        assert env.single_action_space == gym.spaces.Discrete(4)
        assert env.single_observation_space.shape == (8,)
        assert env.obs_dim == 8 and env.is_discrete
        obs = env.reset()
        assert obs.shape == (3, 2, 8) and obs.dtype == np.float32
        step = env.step(np.zeros((3, 2), dtype=np.int64))
    assert step.obs.shape == step.final_obs.shape == (3, 2, 8)
    assert step.obs.dtype == step.final_obs.dtype == np.float32
    assert step.reward.shape == (3, 2) and step.reward.dtype == np.float32
    for name in ("terminated", "truncated", "success", "episode_success"):
        assert getattr(step, name).shape == (3, 2) and getattr(step, name).dtype == bool
    assert step.episode_return.dtype == np.float64 and step.episode_length.dtype == np.int64


def test_task_parameters_reach_the_simulator():
    with LunarLanderVecEnv(MIXED, 2, seed=0) as env:
        env.reset()
        envs = env.runner.chunk.envs
        assert len(envs) == 6
        for k, copy in enumerate(envs):
            params = MIXED[k // 2].parameters
            lander = copy.unwrapped
            assert lander.gravity == params["gravity"]
            assert lander.world.gravity[1] == pytest.approx(params["gravity"])
            assert lander.wind_power == params["wind_power"]
            assert lander.turbulence_power == params["turbulence_power"]
            assert lander.enable_wind == (params["wind_power"] > 0 or params["turbulence_power"] > 0)
            assert copy.spec.max_episode_steps == 1000
        # Engines off, nothing touched yet: the vertical velocity (obs[3], in units of
        # (VIEWPORT_H / SCALE / 2) / FPS = 2/15 per m/s) changes by gravity / FPS per step.
        before = env.step(np.zeros((3, 2), dtype=np.int64)).obs
        for _ in range(10):
            after = env.step(np.zeros((3, 2), dtype=np.int64)).obs
    gravity = np.array([[spec.parameters["gravity"]] * 2 for spec in MIXED])
    expected = gravity / 50 * 10 * (2 / 15)
    np.testing.assert_allclose(after[:, :, 3] - before[:, :, 3], expected, rtol=0.01)  # legs are jointed bodies


def test_same_seed_same_trajectory_different_seed_differs():
    def run(seed: int) -> list[VecStep]:
        with LunarLanderVecEnv(MIXED, 2, seed=seed) as env:
            return random_rollout(env, 150)

    first, again, other = run(7), run(7), run(8)
    assert_same_steps(first, again)
    assert not np.array_equal(first[0].obs, other[0].obs)
    assert not np.array_equal(np.stack([s.obs for s in first]), np.stack([s.obs for s in other]))


def test_reset_reseeds_every_copy():
    with LunarLanderVecEnv(MIXED, 2, seed=3) as env:
        first = env.reset()
        for _ in range(5):
            env.step(np.full((3, 2), 2))
        np.testing.assert_array_equal(env.reset(), first)
        # Copies of the same task start differently (own seeds), and seeds are unique.
        assert not np.array_equal(first[0, 0], first[0, 1])
        assert len(set(env.env_seeds)) == 6
    assert copy_seeds(3, 3, 2) == env.env_seeds


def test_sync_and_async_give_identical_trajectories():
    with LunarLanderVecEnv(MIXED, 2, seed=11) as sync_env:
        sync = random_rollout(sync_env, 250)
    with LunarLanderVecEnv(MIXED, 2, seed=11, mode="async", num_workers=2) as async_env:
        assert [b - a for a, b in async_env.runner.bounds] == [3, 3]
        asynchronous = random_rollout(async_env, 250)
    assert np.stack([s.done for s in sync]).sum() > 0, "the rollout should cross episode ends"
    assert_same_steps(sync, asynchronous)


def test_crash_terminates_and_autoresets_same_step():
    with LunarLanderVecEnv(MIXED, 2, seed=0) as env:
        steps = random_rollout(env, 300)
    done_steps = [(t, s) for t, s in enumerate(steps) if s.done.any()]
    assert done_steps, "random actions crash landers well within 300 steps"
    for _, step in done_steps:
        done = step.done
        assert not step.truncated.any()  # 300 < 1000 steps: only terminations
        assert not step.success[done].any()  # random actions crash
        assert np.all(np.any(step.final_obs[done] != step.obs[done], axis=-1))
        np.testing.assert_array_equal(step.final_obs[~done], step.obs[~done])
        np.testing.assert_array_equal(step.reward[done], -100.0)


def test_episode_statistics_match_the_rewards():
    with LunarLanderVecEnv(MIXED, 2, seed=1) as env:
        steps = random_rollout(env, 300)
    running_return = np.zeros((3, 2))
    running_length = np.zeros((3, 2), dtype=np.int64)
    checked = 0
    for step in steps:
        running_return += step.reward
        running_length += 1
        done = step.done
        np.testing.assert_array_equal(step.episode_return[done], running_return[done])
        np.testing.assert_array_equal(step.episode_length[done], running_length[done])
        checked += int(done.sum())
        running_return[done] = 0.0
        running_length[done] = 0
    assert checked > 0


def test_landing_at_rest_is_success():
    with LunarLanderVecEnv([SPECS["titan-calm"]], 2, seed=0) as env:
        steps = policy_rollout(env, land, 400)
    successes = [s for s in steps if s.success.any()]
    assert successes, "the heuristic lands in Titan gravity without wind"
    for step in successes:
        assert np.all(step.terminated[step.success]) and not step.truncated[step.success].any()
        np.testing.assert_array_equal(step.reward[step.success], 100.0)
        assert np.all(step.episode_success[step.success])
        assert np.all(step.final_obs[step.success][:, 6:] == 1.0)  # both legs on the ground
    ends = [s for s in steps if s.done.any()]
    assert all(not s.success[s.done & ~s.terminated].any() for s in ends)


def test_time_limit_truncates_at_1000_steps():
    with LunarLanderVecEnv([SPECS["earth-calm"]], 2, seed=0) as env:
        steps = policy_rollout(env, hover, 1000)
    assert not any(s.done.any() for s in steps[:-1])
    last = steps[-1]
    assert last.truncated.all() and not last.terminated.any()
    assert not last.success.any() and not last.episode_success.any()
    np.testing.assert_array_equal(last.episode_length, 1000)
    assert np.all(np.any(last.final_obs != last.obs, axis=-1))


@pytest.mark.parametrize(
    "actions",
    [np.zeros((3, 3), dtype=np.int64), np.zeros((3, 2, 1), dtype=np.int64), np.zeros(6, dtype=np.int64)],
)
def test_bad_action_shape_is_a_value_error(actions):
    with LunarLanderVecEnv(MIXED, 2, seed=0) as env:
        env.reset()
        with pytest.raises(ValueError, match=r"actions must have shape \(3, 2\)"):
            env.step(actions)


@pytest.mark.parametrize(
    "actions, message",
    [(np.full((3, 2), 4), "must lie in"), (np.full((3, 2), -1), "must lie in"),
     (np.zeros((3, 2), dtype=np.float32), "must be integers")],
)
def test_bad_action_values_are_value_errors(actions, message):
    with LunarLanderVecEnv(MIXED, 2, seed=0) as env:
        env.reset()
        with pytest.raises(ValueError, match=message):
            env.step(actions)


def test_wrong_family_or_mode_is_rejected():
    with pytest.raises(ValueError, match="takes only 'lunarlander' specs"):
        LunarLanderVecEnv(cartpole10()[:1], 1, seed=0)
    with pytest.raises(ValueError, match="mode must be"):
        LunarLanderVecEnv(MIXED, 1, seed=0, mode="threads")


def test_async_close_is_idempotent_and_stops_workers():
    env = LunarLanderVecEnv(MIXED, 2, seed=0, mode="async", num_workers=3)
    processes = env.runner.processes
    assert len(processes) == 3 and all(p.is_alive() for p in processes)
    env.reset()
    env.step(np.zeros((3, 2), dtype=np.int64))
    env.close()
    env.close()
    assert not any(p.is_alive() for p in processes)
    assert all(p.exitcode == 0 for p in processes)
    assert not set(processes) & set(mp.active_children())


def test_async_default_worker_count_is_bounded_by_copies():
    with LunarLanderVecEnv([SPECS["moon-calm"]], 1, seed=0, mode="async") as env:
        assert len(env.runner.processes) == 1


def test_worker_errors_carry_the_worker_traceback():
    bad_gravity = functools.partial(
        make_lunarlander_env, gravity=5.0, wind_power=0.0, turbulence_power=0.0
    )
    with pytest.raises(WorkerError, match=r"(?s)worker 0 .*Traceback.*gravity"):
        AsyncRunner([bad_gravity], num_workers=1)

    good = functools.partial(make_lunarlander_env, gravity=-10.0, wind_power=0.0, turbulence_power=0.0)
    runner = AsyncRunner([good, good], num_workers=2)
    try:
        runner.reset([0, 1])
        with pytest.raises(WorkerError, match=r"(?s)worker 1 .*Traceback.*lunar_lander\.py.*AssertionError"):
            runner.step(np.array([0, 9]))  # 9 is not a Discrete(4) action
        runner.step(np.array([0, 0]))  # every worker answered: the pipes are still in step
    finally:
        runner.close()
    assert not any(p.is_alive() for p in runner.processes)
