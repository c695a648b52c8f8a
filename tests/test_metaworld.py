"""MetaWorldVecEnv: MT10 tasks, goal sampling, one-hot, time limit, determinism, sync vs async, and
the MT10 protocol against Meta-World's own benchmark (goal sets, ``metaworld.evaluation``)."""

from __future__ import annotations

import multiprocessing as mp
import pickle

import gymnasium as gym
import metaworld
import numpy as np
import pytest
import torch
from metaworld.env_dict import ALL_V3_ENVIRONMENTS
from metaworld.evaluation import evaluation as metaworld_evaluation
from metaworld.policies import ENV_POLICY_MAP, SawyerReachV3Policy

from varshare.envs.base import VecStep
from varshare.envs.gym_workers import copy_seeds
from varshare.envs.metaworld_mt import MetaWorldVecEnv, make_metaworld_env, mt10_benchmark, mt10_goals
from varshare.envs.specs import TaskSpec
from varshare.envs.suites import mt10
from varshare.eval.evaluate import evaluate

MT10 = {spec.name: spec for spec in mt10()}
TWO = [MT10["reach-v3"], MT10["push-v3"]]
VEC_FIELDS = [
    "obs", "reward", "terminated", "truncated", "final_obs", "success",
    "episode_return", "episode_length", "episode_success",
]


def with_horizon(spec: TaskSpec, steps: int) -> TaskSpec:
    return TaskSpec(spec.name, spec.family, {**spec.parameters, "max_episode_steps": steps}, spec.versions)


def random_rollout(env: MetaWorldVecEnv, steps: int, action_seed: int = 0) -> list[VecStep]:
    rng = np.random.default_rng(action_seed)
    env.reset()
    shape = (env.num_tasks, env.envs_per_task, 4)
    return [env.step(rng.uniform(-1, 1, size=shape).astype(np.float32)) for _ in range(steps)]


def goal_rand_vec(env_name: str, goal_index: int) -> np.ndarray:
    return pickle.loads(mt10_goals(env_name, 0)[goal_index].data)["rand_vec"]


def test_shapes_dtypes_and_one_hot():
    with MetaWorldVecEnv(TWO, 2, seed=0) as env:
        assert env.single_observation_space.shape == (49,)
        assert env.single_observation_space.dtype == np.float32
        assert env.single_action_space == gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
        assert not env.is_discrete
        obs = env.reset()
        step = env.step(np.zeros((2, 2, 4), dtype=np.float32))
    assert obs.shape == step.obs.shape == step.final_obs.shape == (2, 2, 49)
    assert obs.dtype == step.obs.dtype == step.final_obs.dtype == np.float32
    assert step.reward.shape == (2, 2) and step.reward.dtype == np.float32
    for name in ("terminated", "truncated", "success", "episode_success"):
        assert getattr(step, name).shape == (2, 2) and getattr(step, name).dtype == bool
    for m, spec in enumerate(TWO):
        one_hot = np.eye(10, dtype=np.float32)[spec.parameters["task_index"]]
        for observation in (obs, step.obs):
            np.testing.assert_array_equal(observation[m, :, 39:], np.broadcast_to(one_hot, (2, 10)))
    # The goal position (obs[36:39]) is observed, not zeroed (full observability).
    assert np.all(np.abs(obs[:, :, 36:39]).sum(axis=-1) > 0)


def test_spec_parameters_reach_the_simulator():
    specs = [with_horizon(MT10["reach-v3"], 20), MT10["push-v3"]]
    with MetaWorldVecEnv(specs, 2, seed=0) as env:
        env.reset()
        envs = env.runner.chunk.envs
        for k, copy in enumerate(envs):
            spec = specs[k // 2]
            assert type(copy.unwrapped) is ALL_V3_ENVIRONMENTS[spec.name]
            assert copy.unwrapped.reward_function_version == "v2"
            assert copy.get_wrapper_attr("_max_episode_steps") == spec.parameters["max_episode_steps"]
            goal = copy.get_wrapper_attr("goal_index")
            np.testing.assert_array_equal(copy.unwrapped._last_rand_vec, goal_rand_vec(spec.name, goal))
        steps = [env.step(np.zeros((2, 2, 4), dtype=np.float32)) for _ in range(20)]
    assert not any(s.done.any() for s in steps[:19])
    np.testing.assert_array_equal(steps[19].truncated, [[True, True], [False, False]])


def test_goals_come_from_the_50_and_follow_the_env_seed():
    def goal_sequence(seed: int, resets: int = 12) -> list[int]:
        env = make_metaworld_env(**MT10["reach-v3"].parameters)
        env.reset(seed=seed)
        goals = [env.get_wrapper_attr("goal_index")]
        for _ in range(resets - 1):
            env.reset()
            goals.append(env.get_wrapper_attr("goal_index"))
            np.testing.assert_array_equal(env.unwrapped._last_rand_vec, goal_rand_vec("reach-v3", goals[-1]))
        env.reset(seed=seed)
        assert env.get_wrapper_attr("goal_index") == goals[0], "a seeded reset restarts the stream"
        env.close()
        return goals

    first = goal_sequence(5)
    assert all(0 <= g < 50 for g in first)
    assert len(set(first)) > 6, "episodes draw fresh goals"
    assert goal_sequence(5) == first
    assert goal_sequence(6) != first
    assert len(mt10_goals("reach-v3", 0)) == 50


def test_copies_draw_different_goals():
    with MetaWorldVecEnv([MT10["reach-v3"]], 4, seed=0) as env:
        obs = env.reset()
        goals = [copy.get_wrapper_attr("goal_index") for copy in env.runner.chunk.envs]
    assert len(set(goals)) > 1
    assert len({tuple(o) for o in obs[0, :, 36:39]}) == len(set(goals))


def test_same_seed_same_trajectory_different_seed_differs():
    def run(seed: int) -> list[VecStep]:
        with MetaWorldVecEnv(TWO, 1, seed=seed) as env:
            return random_rollout(env, 40)

    first, again, other = run(3), run(3), run(4)
    for a, b in zip(first, again, strict=True):
        for name in VEC_FIELDS:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert not np.array_equal(first[-1].obs, other[-1].obs)


def test_reset_reseeds_goals():
    with MetaWorldVecEnv(TWO, 2, seed=9) as env:
        first = env.reset()
        for _ in range(3):
            env.step(np.ones((2, 2, 4), dtype=np.float32))
        np.testing.assert_array_equal(env.reset(), first)


@pytest.mark.slow
def test_sync_and_async_identical_and_async_close():
    specs = [with_horizon(MT10["reach-v3"], 25), with_horizon(MT10["push-v3"], 25)]
    with MetaWorldVecEnv(specs, 1, seed=2) as sync_env:
        sync = random_rollout(sync_env, 60)
    env = MetaWorldVecEnv(specs, 1, seed=2, mode="async", num_workers=2)
    processes = env.runner.processes
    assert len(processes) == 2 and all(p.is_alive() for p in processes)
    asynchronous = random_rollout(env, 60)
    env.close()
    env.close()
    assert not any(p.is_alive() for p in processes)
    assert not set(processes) & set(mp.active_children())
    assert sum(int(s.truncated.sum()) for s in sync) == 4, "crosses auto-resets with new goals"
    for a, b in zip(sync, asynchronous, strict=True):
        for name in VEC_FIELDS:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_mt10_truncates_at_500_and_never_terminates():
    with MetaWorldVecEnv([MT10["reach-v3"]], 1, seed=0) as env:
        steps = random_rollout(env, 500)
    assert not any(s.terminated.any() for s in steps)
    assert not any(s.truncated.any() for s in steps[:499])
    last = steps[-1]
    assert last.truncated[0, 0] and last.episode_length[0, 0] == 500
    rewards = np.array([s.reward[0, 0] for s in steps], dtype=np.float64)
    assert last.episode_return[0, 0] == rewards.sum()
    assert np.any(last.final_obs != last.obs)
    np.testing.assert_array_equal(last.obs[..., 39:], last.final_obs[..., 39:])  # same task id
    for step in steps[:-1]:
        np.testing.assert_array_equal(step.final_obs, step.obs)


@pytest.mark.filterwarnings("ignore:Constant\\(s\\) may be too high")
def test_success_is_reported_without_terminating():
    with MetaWorldVecEnv([with_horizon(MT10["reach-v3"], 80)], 2, seed=0) as env:
        policy = SawyerReachV3Policy()
        obs = env.reset()
        steps = []
        for _ in range(80):
            actions = np.array([[policy.get_action(o[:39]) for o in obs[0]]], dtype=np.float32)
            steps.append(env.step(actions))
            obs = steps[-1].obs
    assert all(s.success.dtype == bool for s in steps)
    assert any(s.success.any() for s in steps), "the scripted policy reaches the goal"
    assert not any(s.terminated.any() for s in steps), "success never ends an episode"
    assert steps[-1].truncated.all() and steps[-1].episode_success.all()


def test_numpy_global_rng_is_untouched():
    before = np.random.get_state()
    mt10_benchmark.cache_clear()  # so that the goal sets are built here
    with MetaWorldVecEnv([MT10["window-close-v3"]], 1, seed=0) as env:
        random_rollout(env, 10)
    after = np.random.get_state()
    assert before[0] == after[0] and before[2:] == after[2:]
    np.testing.assert_array_equal(before[1], after[1])


@pytest.mark.parametrize("shape", [(2, 1, 4), (1, 4), (1, 1, 3), (1, 1)])
def test_bad_action_shape_is_a_value_error(shape):
    with MetaWorldVecEnv([MT10["reach-v3"]], 1, seed=0) as env:
        env.reset()
        with pytest.raises(ValueError, match=r"actions must have shape \(1, 1, 4\)"):
            env.step(np.zeros(shape, dtype=np.float32))


# -- the MT10 protocol against Meta-World's own benchmark --------------------------------------------
# Meta-World's official MT10 vector env (`gym.make_vec("Meta-World/MT10")`, one env per task, goals
# from `metaworld.MT10(seed)`) and its evaluation function are the reference. Building it takes
# ~10 s (more on a loaded machine), so it is built once for these tests.
PROTOCOL_HORIZON = 150  # short episodes, so that the scripted policy below fails some goals
SCRIPT_SCALE = 0.5      # ... with its actions halved


@pytest.fixture(scope="module")
def official_mt10():
    envs = gym.make_vec("Meta-World/MT10", seed=0, vector_strategy="sync", use_one_hot=True,
                        max_episode_steps=PROTOCOL_HORIZON)
    yield envs
    envs.close()


def rand_vecs(goals) -> np.ndarray:
    return np.stack([pickle.loads(goal.data)["rand_vec"] for goal in goals])


@pytest.mark.slow
def test_goal_sets_are_metaworlds_mt10(official_mt10):
    """Our goal set of every task equals the official MT10 env's, goal for goal, and a reset sets
    one of them; ten single-task benchmarks (MT1) would give other goals for nine of the tasks."""
    official = dict(zip((tasks[0].env_name for tasks in official_mt10.get_attr("tasks")),
                        official_mt10.get_attr("tasks")))
    assert list(official) == [spec.name for spec in mt10()]
    differ_from_mt1 = 0
    for spec in mt10():
        ours = rand_vecs(mt10_goals(spec.name, 0))
        np.testing.assert_array_equal(ours, rand_vecs(official[spec.name]), err_msg=spec.name)
        assert len(np.unique(ours, axis=0)) == 50
        differ_from_mt1 += not np.array_equal(ours, rand_vecs(metaworld.MT1(spec.name, seed=0).train_tasks))
    assert differ_from_mt1 == 9
    with MetaWorldVecEnv([MT10["pick-place-v3"]], 3, seed=4) as env:
        env.reset()
        for copy in env.runner.chunk.envs:
            assert any(np.array_equal(copy.unwrapped._last_rand_vec, goal)
                       for goal in rand_vecs(official["pick-place-v3"]))


class ScriptedActor:
    """Meta-World's scripted expert of each task, actions scaled by SCRIPT_SCALE: a deterministic
    policy that succeeds on some goals and fails on others within PROTOCOL_HORIZON steps."""

    stochastic = False

    def __init__(self):
        self.policies = [ENV_POLICY_MAP[spec.name]() for spec in mt10()]

    def __call__(self, obs: torch.Tensor, noise=None) -> torch.Tensor:
        """``[M, N, 49]`` (our task-major copies) → actions ``[M, N, 4]``."""
        obs = obs.numpy()
        return torch.as_tensor(np.array([[self.action(m, o) for o in copies] for m, copies in enumerate(obs)]))

    def action(self, task: int, obs: np.ndarray) -> np.ndarray:
        return (SCRIPT_SCALE * self.policies[task].get_action(obs[:39])).astype(np.float32)


class ScriptedModel:
    """The scripted actor as a :class:`~varshare.algos.agent.TrainedModel` for our evaluator."""

    num_tasks = 10

    def __init__(self):
        self.actor = ScriptedActor()

    def network_input(self, obs):
        return obs

    def greedy_actions(self, actor_outputs):
        return actor_outputs.mean(dim=2)


class ScriptedAgent:
    """The same actor as a ``metaworld.evaluation.Agent`` (observations ``[10, 49]``, one env per task)."""

    def __init__(self, actor: ScriptedActor):
        self.actor = actor

    def eval_action(self, obs):
        return np.stack([self.actor.action(m, o) for m, o in enumerate(obs)])

    def reset(self, env_mask):
        pass


def metaworld_success(official_mt10, agent: ScriptedAgent, env_seeds: list[int], episodes: int) -> dict[str, float]:
    """``metaworld.evaluation`` with task ``m``'s env seeded ``env_seeds[m]`` (as our copies seed a reset)."""
    for env, seed in zip(official_mt10.envs, env_seeds, strict=True):
        env.unwrapped.seed(seed)
    _, _, per_task, _ = metaworld_evaluation(agent, official_mt10, num_episodes=episodes)
    return per_task


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Constant\\(s\\) may be too high")
def test_our_evaluator_equals_metaworld_evaluation(official_mt10):
    """Same scripted policy, goals and seeds: our evaluator's per-task success rates equal
    ``metaworld.evaluation``'s — with one copy per task running the episodes back to back (Meta-World's
    own layout) and with one episode on each of several copies (the same seeds, one
    ``metaworld.evaluation`` call per copy). Meta-World ends an evaluation episode at success, we run
    it to the time limit; the success rule (the flag fired at any step) makes the rates equal."""
    specs = [with_horizon(spec, PROTOCOL_HORIZON) for spec in mt10()]
    model, episodes, seed = ScriptedModel(), 3, 11
    agent = ScriptedAgent(model.actor)
    names = [spec.name for spec in specs]

    back_to_back = evaluate(model, lambda n: MetaWorldVecEnv(specs, n, seed=seed), episodes, copies=1)
    official = metaworld_success(official_mt10, agent, copy_seeds(seed, 10, 1), episodes)
    ours = {name: float(np.mean(s)) for name, s in zip(names, back_to_back.successes)}
    assert ours == official
    assert 0 < np.mean(list(ours.values())) < 1, "the policy must fail some goals for the test to mean much"
    assert all(len(s) == episodes for s in back_to_back.successes)

    one_each = evaluate(model, lambda n: MetaWorldVecEnv(specs, n, seed=seed), episodes)
    seeds = copy_seeds(seed, 10, episodes)  # copy n of task m: index m·episodes + n
    per_copy = [metaworld_success(official_mt10, agent, seeds[n::episodes], 1) for n in range(episodes)]
    official = {name: float(np.mean([rates[name] for rates in per_copy])) for name in names}
    assert {name: float(np.mean(s)) for name, s in zip(names, one_each.successes)} == official
