"""PPO pieces against hand computations, and learning on a tiny deterministic task."""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from varshare.algos.obs_norm import RunningObsNorm
from varshare.algos.ppo import PPO, compute_gae
from varshare.config import load_config
from varshare.envs.base import MultiTaskVecEnv, RawStep
from varshare.envs.specs import TaskSpec
from varshare.eval.strategies import EvalPolicy
from varshare.methods import make_method


class ContextBandit(MultiTaskVecEnv):
    """A tiny deterministic multi-task problem: the observation is a one-hot of a state s ∈ {0, 1}
    that alternates every step; reward 1 when the action equals ``s XOR (m mod 2)``, else 0. Each
    episode lasts ``horizon`` steps and ends by truncation (or by termination if ``terminate``).
    Task m's optimal policy flips with m's parity, so tasks must be told apart."""

    def __init__(self, num_tasks: int, envs_per_task: int, horizon: int = 4, terminate: bool = False):
        specs = [TaskSpec(f"t{m}", "cartpole", {"length": 0.5, "masscart": 1.0, "masspole": 0.1, "gravity": 9.8})
                 for m in range(num_tasks)]
        super().__init__(specs, envs_per_task, seed=0)
        self.single_observation_space = gym.spaces.Box(0, 1, (2,), np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.horizon, self.terminate = horizon, terminate
        self.parity = (np.arange(num_tasks) % 2)[:, None]
        self.t = np.zeros((num_tasks, envs_per_task), dtype=np.int64)

    def _obs(self) -> np.ndarray:
        return np.eye(2, dtype=np.float32)[self.t % 2]

    def _reset_envs(self) -> np.ndarray:
        self.t[:] = 0
        return self._obs()

    def _step_envs(self, actions: np.ndarray) -> RawStep:
        reward = (actions == ((self.t % 2) ^ self.parity)).astype(np.float32)
        self.t += 1
        ended = self.t >= self.horizon
        final_obs = self._obs()
        self.t[ended] = 0
        false = np.zeros_like(ended)
        return RawStep(obs=self._obs(), reward=reward, terminated=ended if self.terminate else false,
                       truncated=false if self.terminate else ended, final_obs=final_obs, success=false)


def tiny_config(method: str, **overrides):
    return load_config({
        "suite": "cartpole10", "methods": [method], "seeds": [0], "total_steps_per_task": 4096,
        "envs_per_task": 4, "ppo": {"num_steps": 16, "num_minibatches": 2, "learning_rate": 0.01,
                                     "anneal_lr": False, "ent_coef": 0.0},
        "network": {"hidden_sizes": [16]}, **overrides,
    })


def test_gae_matches_a_hand_computation():
    gamma, lam = 0.9, 0.8
    rewards = [1.0, 2.0, 0.5, 1.5]
    values = [0.3, 0.6, 0.2, 0.9]
    ended = [0.0, 1.0, 0.0, 0.0]
    next_value = 0.4
    expected, following = [0.0] * 4, 0.0
    for t in (3, 2, 1, 0):  # written out without vectorisation
        v_next = next_value if t == 3 else values[t + 1]
        delta = rewards[t] + gamma * v_next * (1 - ended[t]) - values[t]
        following = delta + gamma * lam * (1 - ended[t]) * following
        expected[t] = following

    def as_tensor(x):
        return torch.tensor(x).view(1, 4, 1)

    advantages, returns = compute_gae(as_tensor(rewards), as_tensor(values), as_tensor(ended),
                                      torch.tensor([[next_value]]), gamma, lam)
    torch.testing.assert_close(advantages.flatten(), torch.tensor(expected))
    torch.testing.assert_close(returns.flatten(), torch.tensor(expected) + torch.tensor(values))


@pytest.mark.parametrize("terminate", [False, True])
def test_rollout_bootstraps_truncation_but_not_termination(terminate):
    env = ContextBandit(num_tasks=2, envs_per_task=3, horizon=3, terminate=terminate)
    config = tiny_config("hard_sharing")
    agent = PPO(config, make_method("hard_sharing", config, 2, 0), env, seed=0)
    rollout = agent.collect_rollout()
    ended = rollout.episode_ended.bool()
    assert ended[:, 2::3].all() and ended.sum() == 2 * 3 * (16 // 3)
    gamma = config.ppo.gamma
    final_obs = torch.tensor(np.eye(2, dtype=np.float32)[1]).expand(2, 3, 2)  # t = 3 is odd
    with torch.no_grad():
        final_value = agent.model(final_obs).value  # deterministic network: no noise
    raw_reward = torch.stack([torch.tensor(((np.arange(16) % 3 % 2) ^ m) == a.numpy(), dtype=torch.float32)
                              for m, a in enumerate(rollout.actions[:, :, 0])])
    at_end = rollout.rewards[:, 2::3, 0]
    if terminate:
        torch.testing.assert_close(at_end, raw_reward[:, 2::3])
    else:
        torch.testing.assert_close(at_end, raw_reward[:, 2::3] + gamma * final_value[:, :1].expand_as(at_end))
    torch.testing.assert_close(rollout.rewards[:, 0::3, 0], raw_reward[:, 0::3])


@pytest.mark.parametrize("method, overrides", [
    ("hard_sharing", {}), ("independent", {}), ("pcgrad", {}),
    # With only 64 transitions per task and update, the default prior (β = 1, σ_prior = 0.1) holds
    # the residuals that tell these tasks apart near zero; a weaker prior tests PPO itself.
    ("varshare", {"varshare": {"beta": 0.01}}),
])
def test_ppo_learns_a_tiny_deterministic_multitask_problem(method, overrides):
    env = ContextBandit(num_tasks=4, envs_per_task=4, horizon=4)
    config = tiny_config(method, **overrides)
    agent = PPO(config, make_method(method, config, 4, 0), env, seed=0)
    first = None
    while agent.iteration < agent.num_iterations:
        agent.iterate()
        returns = agent.pop_episodes().returns
        mean_return = np.mean([np.mean(r) for r in returns])
        first = mean_return if first is None else first
    assert first < 3.0  # random play: 2 of 4 steps rewarded on average
    assert mean_return >= 3.9, f"{method}: final mean return {mean_return:.2f} of a possible 4"


@pytest.mark.parametrize("method", ["varshare", "pcgrad"])  # weight noise; a method state (projection order)
def test_a_loaded_state_continues_exactly_as_the_original_agent(method):
    config = tiny_config(method)

    def agent(seed: int) -> PPO:
        return PPO(config, make_method(method, config, 4, seed), ContextBandit(num_tasks=4, envs_per_task=4), seed=seed)

    original = agent(0)
    assert original.steps_per_iteration == config.ppo.num_steps * config.envs_per_task
    original.iterate()
    restored = agent(1)  # other weights, generators and method state: loading overwrites them all
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    restored.env = copy.deepcopy(original.env)  # the env's state is the run's business, not the agent's
    assert (restored.iteration, restored.steps_per_task) == (1, original.steps_per_task)
    stats, restored_stats = original.iterate(), restored.iterate()
    del stats["sps"], restored_stats["sps"]
    assert set(stats) == set(restored_stats)
    assert all(v == restored_stats[k] or (math.isnan(v) and math.isnan(restored_stats[k])) for k, v in stats.items())
    final = restored.model.state_dict()
    assert all(torch.equal(v, final[k]) for k, v in original.model.state_dict().items())


# -- per-task observation normalisation (ppo.normalize_obs, MT10) -----------------------------------
def test_running_obs_norm_equals_the_statistics_of_everything_seen():
    """Batch-by-batch merges equal numpy's mean and population variance over all observations of a
    task (plus gymnasium's 1e-4 prior count at mean 0, variance 1), per task; output clipped."""
    rng = np.random.default_rng(0)
    norm = RunningObsNorm(num_tasks=2, obs_dim=3, clip=2.0)
    batches = [rng.normal([[[0.0]], [[5.0]]], [[[1.0]], [[3.0]]], size=(2, b, 3)) for b in (1, 7, 4, 30)]
    for batch in batches:
        norm.update(torch.as_tensor(batch, dtype=torch.float32))
    seen = np.concatenate([b.astype(np.float32) for b in batches], axis=1).astype(np.float64)  # [2, 42, 3]
    count = 1e-4 + seen.shape[1]
    mean = seen.sum(axis=1) / count
    var = (1e-4 * (1.0 + mean**2) + ((seen - mean[:, None]) ** 2).sum(axis=1)) / count
    np.testing.assert_allclose(norm.count.numpy(), count)
    np.testing.assert_allclose(norm.mean.numpy(), mean, rtol=1e-9)
    np.testing.assert_allclose(norm.var.numpy(), var, rtol=1e-7)
    x = torch.tensor([[[0.0, 100.0, -100.0]], [[5.0, 5.0, 5.0]]])
    expected = np.clip((x.numpy().astype(np.float64) - mean[:, None]) / np.sqrt(var[:, None] + 1e-8), -2, 2)
    np.testing.assert_allclose(norm(x).numpy(), expected, rtol=1e-6)
    assert norm(x).dtype == torch.float32


def test_normalised_rollout_stores_what_the_networks_saw_and_evaluation_uses_the_statistics():
    config = tiny_config("varshare", ppo={"num_steps": 8, "num_minibatches": 2, "normalize_obs": True})
    agent = PPO(config, make_method("varshare", config, 2, 0), ContextBandit(num_tasks=2, envs_per_task=3), seed=0)
    seen = [agent.next_obs.clone()]
    env_step = agent.env.step

    def recording_step(actions):
        step = env_step(actions)
        seen.append(torch.as_tensor(step.obs))
        return step

    agent.env.step = recording_step
    rollout = agent.collect_rollout()
    raw = torch.stack(seen[:8], dim=1).double()  # [M, T, N, D]: the observations the agent acted on
    norm = agent.model.obs_norm
    np.testing.assert_allclose(norm.count.numpy(), 1e-4 + 8 * 3)
    np.testing.assert_allclose(norm.mean.numpy(), (raw.sum(dim=(1, 2)) / (1e-4 + 24)).numpy(), rtol=1e-9)
    torch.testing.assert_close(rollout.obs[:, -1], norm(seen[7]))  # the last step saw the final statistics
    assert not torch.equal(rollout.obs[:, 0], norm(seen[0]))        # the first step saw earlier ones
    state = agent.model.state_dict()
    assert {"obs_norm.mean", "obs_norm.var", "obs_norm.count"} <= set(state)
    obs = seen[-1]
    greedy = agent.model.greedy_actions(agent.model.actor(norm(obs), None).unsqueeze(2))
    assert torch.equal(EvalPolicy(agent.model, "mean", 3).act(obs), greedy)


def test_without_normalisation_the_networks_see_raw_observations():
    config = tiny_config("hard_sharing")
    agent = PPO(config, make_method("hard_sharing", config, 2, 0), ContextBandit(num_tasks=2, envs_per_task=3), seed=0)
    assert agent.model.obs_norm is None
    first = agent.next_obs.clone()
    assert torch.equal(agent.collect_rollout().obs[:, 0], first)
