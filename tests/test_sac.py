"""Multi-task SAC: its maths against independent computations (a hand-worked discrete case,
``torch.distributions``), the replay buffer, per-task independence, truncation vs termination, and
every method training a few SAC steps on each task family."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import gen, randomise_
from torch.distributions import Categorical, Normal, TransformedDistribution
from torch.distributions.transforms import AffineTransform, TanhTransform

from varshare.algos.agent import NonFiniteLossError
from varshare.algos.replay import MultiTaskReplayBuffer
from varshare.algos.sac import (
    SAC,
    CriticNoise,
    SACModel,
    discrete_actor_loss,
    discrete_soft_value,
    polyak_update_,
    soft_td_target,
    tanh_gaussian_log_prob,
    temperature_loss,
)
from varshare.config import METHODS, ConfigError, load_config
from varshare.envs import build_suite, make_vec_env
from varshare.eval.evaluate import evaluate
from varshare.methods import REGISTRY, make_method
from varshare.train import train

#: a small but real SAC setting: 100-step iterations, updates from step 40, every 2 vector steps
SAC_OVERRIDES = {
    "algo": "sac", "envs_per_task": 2, "total_steps_per_task": 200, "network.hidden_sizes": [16, 16],
    "sac.steps_per_iteration": 100, "sac.learning_starts": 40, "sac.train_freq": 2, "sac.batch_per_task": 8,
    "sac.buffer_size": 64, "sac.method_phase_steps": 5,
}


def make_sac(method_name: str, suite: str = "cartpole10", tasks: int = 3, seed: int = 0, specs=None, **overrides):
    base = {"suite": suite, "methods": [method_name], "seeds": [0], "total_steps_per_task": 1000}
    config = load_config(base, {**SAC_OVERRIDES, **overrides})
    specs = specs if specs is not None else build_suite(suite)[:tasks]
    env = make_vec_env(specs, config.envs_per_task, seed=seed)
    return SAC(config, make_method(method_name, config, len(specs), seed), env, seed=seed)


# ---------------------------------------------------------------------------------------------
# the maths
def test_discrete_soft_value_actor_and_temperature_losses_match_a_hand_worked_case():
    # one task, one state, two actions: π = (1/4, 3/4), Q1 = (1, 4), Q2 = (2, 3), α = 0.5
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    q1, q2 = torch.tensor([[[1.0, 4.0]]]), torch.tensor([[[2.0, 3.0]]])
    alpha = torch.tensor([0.5])
    # by hand: min Q = (1, 3); V = 1/4 (1 − ½ log ¼) + 3/4 (3 − ½ log ¾)
    v = 0.25 * (1 - 0.5 * math.log(0.25)) + 0.75 * (3 - 0.5 * math.log(0.75))
    assert discrete_soft_value(logits, q1, q2, alpha).item() == pytest.approx(v, rel=1e-6)
    assert discrete_actor_loss(logits, q1, q2, alpha).item() == pytest.approx(-v, rel=1e-6)
    # y = r + γ (1 − terminated) V: r = 1, γ = 0.9
    value = torch.tensor([[v]])
    assert soft_td_target(torch.tensor([[1.0]]), torch.tensor([[0.0]]), value, 0.9).item() == pytest.approx(1 + 0.9 * v)
    assert soft_td_target(torch.tensor([[1.0]]), torch.tensor([[1.0]]), value, 0.9).item() == 1.0
    # temperature: −log α · (Σ_a π log π + H̄), H̄ = 0.7 log 2
    expected_log_pi = 0.25 * math.log(0.25) + 0.75 * math.log(0.75)
    log_alpha = torch.tensor([math.log(0.5)], requires_grad=True)
    loss = temperature_loss(log_alpha, torch.tensor([[expected_log_pi]]), 0.7 * math.log(2))
    assert loss.item() == pytest.approx(-math.log(0.5) * (expected_log_pi + 0.7 * math.log(2)), rel=1e-6)
    loss.backward()  # entropy 0.562 > H̄ = 0.485: α must fall, so the gradient on log α is positive
    assert log_alpha.grad.item() == pytest.approx(-(expected_log_pi + 0.7 * math.log(2)))
    assert log_alpha.grad.item() > 0


def test_discrete_losses_match_torch_distributions_and_their_gradient_flows_to_the_logits_only():
    g = gen(0)
    logits = torch.randn(3, 5, 4, generator=g, requires_grad=True)
    q1, q2 = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    alpha = torch.rand(3, generator=g) + 0.1
    dist = Categorical(logits=logits)
    reference = (dist.probs * torch.minimum(q1, q2)).sum(-1) + alpha[:, None] * dist.entropy()
    assert torch.allclose(discrete_soft_value(logits, q1, q2, alpha), reference, atol=1e-6)
    per_task = discrete_actor_loss(logits, q1, q2, alpha)
    assert torch.allclose(per_task, -reference.mean(dim=1), atol=1e-6)
    per_task[1].backward()
    assert logits.grad[1].abs().sum() > 0 and logits.grad[0].abs().sum() == 0 and logits.grad[2].abs().sum() == 0


def test_tanh_gaussian_log_prob_matches_transformed_distribution():
    g = gen(1)
    mean, log_std = torch.randn(2, 6, 3, generator=g), torch.randn(2, 6, 3, generator=g).clamp(-2, 1)
    scale, bias = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0.0, 1.0, -0.5])
    u = mean + log_std.exp() * torch.randn(mean.shape, generator=g)
    # the reference inverts the action back to u: in float64, where tanh is still invertible
    reference = TransformedDistribution(Normal(mean.double(), log_std.exp().double()),
                                        [TanhTransform(), AffineTransform(bias.double(), scale.double())])
    expected = reference.log_prob(bias.double() + scale.double() * torch.tanh(u.double())).sum(-1)
    invertible = (torch.tanh(u.double()).abs() < 1 - 1e-6).all(dim=-1)
    assert invertible.sum() >= 6
    ours = tanh_gaussian_log_prob(u, mean, log_std, scale)
    assert torch.allclose(ours[invertible].double(), expected[invertible], atol=1e-4)
    # the stable form stays finite where the naive log(1 − tanh² u) is −inf
    big = torch.tensor([[[30.0, -30.0, 0.0]]])
    assert torch.isfinite(tanh_gaussian_log_prob(big, torch.zeros(1, 1, 3), torch.zeros(1, 1, 3), scale)).all()
    assert not torch.isfinite(torch.log(1 - torch.tanh(big).square())).all()


def test_continuous_sampling_has_the_tanh_gaussian_density_and_stays_in_the_action_box():
    space = gym.spaces.Box(low=np.array([-1, 0, -3], dtype=np.float32), high=np.array([1, 2, 1], dtype=np.float32))
    config = load_config({"suite": "mt10", "methods": ["hard_sharing"], "seeds": [0], "total_steps_per_task": 10})
    model = SACModel(make_method("hard_sharing", config, 2, 0), 5, space, config)
    out = torch.randn(2, 4000, 2 * model.action_dim, generator=gen(2)) * 2
    actions, log_pi = model.sample_continuous(out, gen(3))
    assert (actions >= torch.as_tensor(space.low)).all() and (actions <= torch.as_tensor(space.high)).all()
    mean, log_std = model.split_actor_output(out)
    assert log_std.min() >= config.sac.log_std_min and log_std.max() <= config.sac.log_std_max
    # independently: invert the action to u and apply the change of variables by hand
    u = torch.atanh(((actions - model.action_bias) / model.action_scale).clamp(-1 + 1e-6, 1 - 1e-6))
    by_hand = (Normal(mean, log_std.exp()).log_prob(u)
               - torch.log(model.action_scale * (1 - torch.tanh(u) ** 2))).sum(-1)
    inside = ((actions - model.action_bias).abs() < 0.99 * model.action_scale).all(dim=-1)
    assert inside.sum() > 1000
    assert torch.allclose(log_pi[inside], by_hand[inside], atol=1e-3)
    assert model.target_entropy == -3.0


def test_twin_minimum_and_polyak_update():
    agent = make_sac("varshare")
    model = agent.model
    # targets start equal to the online critics, every parameter (θ, μ, ρ)
    for target, online in ((model.q1_target, model.q1), (model.q2_target, model.q2)):
        assert all(torch.equal(t, o) for t, o in zip(target.parameters(), online.parameters()))
        assert not any(p.requires_grad for p in target.parameters())
    before = [p.clone() for p in model.q1_target.parameters()]
    with torch.no_grad():
        for p in model.q1.parameters():
            p.add_(1.0)
    polyak_update_(model.q1_target, model.q1, 0.25)
    for old, new, online in zip(before, model.q1_target.parameters(), model.q1.parameters()):
        assert torch.allclose(new, 0.75 * old + 0.25 * online)
    # the target value takes the smaller of the two target critics, action by action
    q1, q2 = torch.tensor([[[1.0, 5.0]]]), torch.tensor([[[3.0, 2.0]]])
    uniform = torch.zeros(1, 1, 2)
    assert discrete_soft_value(uniform, q1, q2, torch.zeros(1)).item() == pytest.approx(0.5 * 1 + 0.5 * 2)
    agent.env.close()


def test_the_agent_target_is_the_soft_bellman_backup_of_the_target_critics():
    agent = make_sac("hard_sharing")
    for _ in range(30):
        agent.env_step()
    batch = agent.buffer.sample(8, gen(4))
    alpha = torch.tensor([0.1, 0.5, 2.0])
    model = agent.model
    with torch.no_grad():
        value = agent._target_value(batch, alpha)
        dist = Categorical(logits=model.actor(batch.next_obs))
        q = torch.minimum(model.q1_target(batch.next_obs), model.q2_target(batch.next_obs))
        expected = (dist.probs * q).sum(-1) + alpha[:, None] * dist.entropy()
    assert torch.allclose(value, expected, atol=1e-5)
    agent.env.close()


# ---------------------------------------------------------------------------------------------
# the replay buffer
def test_replay_buffer_is_fifo_per_task_and_samples_a_balanced_batch():
    buffer = MultiTaskReplayBuffer(num_tasks=3, capacity=5, obs_dim=2, action_shape=(), discrete=True)
    for step in range(7):  # 2 transitions per task per add: wraps around
        obs = torch.tensor([[[100 * m + 10 * step + n, 0.0] for n in range(2)] for m in range(3)])
        actions = torch.full((3, 2), step)
        buffer.add(obs, actions, obs[..., 0], obs + 1, torch.zeros(3, 2))
        assert buffer.size == min(2 * (step + 1), 5)
    # 14 transitions per task went in; the last 5 are kept, written round the ring: step 4's
    # second transition at slot 4, steps 5 and 6 over slots 0-3
    assert buffer.obs[0, :, 0].tolist() == [50.0, 51.0, 60.0, 61.0, 41.0] and buffer.position == 4
    batch = buffer.sample(1000, gen(0))
    assert batch.obs.shape == (3, 1000, 2) and batch.actions.shape == (3, 1000)
    for m in range(3):  # each task's rows come from that task's own buffer, and every kept one is drawn
        drawn = set(batch.obs[m, :, 0].tolist())
        assert drawn == {100 * m + v for v in (41.0, 50.0, 51.0, 60.0, 61.0)}
        assert torch.equal(batch.rewards[m], batch.obs[m, :, 0]) and torch.equal(batch.next_obs[m], batch.obs[m] + 1)
    state = buffer.state_dict()
    copy_ = MultiTaskReplayBuffer(3, 5, 2, (), True)
    copy_.load_state_dict(state)
    assert torch.equal(copy_.sample(50, gen(1)).obs, buffer.sample(50, gen(1)).obs)


def test_truncation_bootstraps_and_termination_does_not():
    specs = [dataclasses.replace(spec, parameters={**spec.parameters, "max_episode_steps": 3})
             for spec in build_suite("mt10")[:2]]
    agent = make_sac("hard_sharing", suite="mt10", specs=specs, **{"envs_per_task": 1, "network.hidden_sizes": [8],
                                                                  "sac.steps_per_iteration": 6})
    for _ in range(3):
        agent.env_step()
    buffer = agent.buffer
    assert buffer.size == 3
    # the third step truncated every episode: its successor is the episode's final observation,
    # not the reset observation the agent acts on next, and it is not terminal
    assert torch.all(buffer.terminated[:, :3] == 0)
    assert not torch.allclose(buffer.next_obs[:, 2], agent.next_obs)
    assert torch.equal(buffer.next_obs[:, 1], buffer.obs[:, 2])
    agent.env.close()
    # CartPole terminates (the pole falls) under random actions: terminal transitions are marked
    cartpole = make_sac("hard_sharing", **{"sac.learning_starts": 10_000, "sac.buffer_size": 200})
    for _ in range(100):
        cartpole.env_step()
    ended = int(cartpole.buffer.terminated.sum())
    assert ended > 0
    terminal = cartpole.buffer.terminated.bool()
    # a terminal transition's successor is the fallen pole's state (|angle| > 12° or |x| > 2.4)
    fallen = (cartpole.buffer.next_obs[..., 2].abs() > 0.2094) | (cartpole.buffer.next_obs[..., 0].abs() > 2.4)
    assert torch.equal(fallen[terminal], torch.ones(ended, dtype=torch.bool))
    # and the target zeroes its bootstrap
    value = torch.full((3, 200), 7.0)
    target = soft_td_target(cartpole.buffer.rewards, cartpole.buffer.terminated, value, 0.99)
    assert torch.allclose(target[terminal], cartpole.buffer.rewards[terminal])
    assert torch.allclose(target[~terminal], cartpole.buffer.rewards[~terminal] + 0.99 * 7.0)
    cartpole.env.close()


# ---------------------------------------------------------------------------------------------
# per-task independence
def test_task_temperature_and_head_gradients_depend_only_on_that_tasks_data():
    """Changing task 2's transitions leaves task 0's and 1's head and temperature gradients as they
    were (hard_sharing: shared trunk, per-task heads); the learning rates are 0, so both batches
    see the same networks. The gradients of the loss, that is: clipping is off here, since a
    global norm clip scales every task's step by one common factor."""
    agent = make_sac("hard_sharing", **{"sac.max_grad_norm": 1e9})
    for optimizer in (agent.actor_optimizer, agent.critic_optimizer, agent.alpha_optimizer):
        for group in optimizer.param_groups:
            group["lr"] = 0.0
    randomise_(agent.model.actor, 0)  # a policy that depends on the state (the head gain 0.01 makes it uniform)
    for _ in range(30):
        agent.env_step()
    batch = agent.buffer.sample(8, gen(5))
    other = copy.deepcopy(batch)
    other.obs[2] = torch.randn_like(other.obs[2])
    other.rewards[2] += 10.0

    def gradients(transitions):
        model, alpha, noise = agent.model, agent.model.log_alpha.detach().exp(), CriticNoise(None, None)
        agent._critic_step(transitions, alpha, noise)
        q1_head = model.q1.layers[-1].weight.grad.clone()
        agent._actor_and_temperature_step(transitions, alpha, noise)
        return {"q1_head": q1_head, "actor_head": model.actor.layers[-1].weight.grad.clone(),
                "log_alpha": model.log_alpha.grad.clone()}

    a, b = gradients(batch), gradients(other)
    for key in a:
        assert torch.allclose(a[key][:2], b[key][:2], atol=1e-6), key
        assert not torch.allclose(a[key][2], b[key][2]), key
    agent.env.close()


# ---------------------------------------------------------------------------------------------
# every method, every family
@pytest.mark.parametrize("name", METHODS)
def test_every_method_trains_sac_steps_on_cartpole(name):
    agent = make_sac(name)
    before = {k: v.clone() for k, v in agent.model.state_dict().items()}
    stats = agent.iterate()
    stats.update(agent.iterate())
    # gradient steps at 40, 44, ..., 200 env steps per task (2 envs × train_freq 2)
    assert agent.steps_per_task == 200 and agent.gradient_steps_done == 41
    assert all(math.isfinite(v) for v in stats.values())
    after = agent.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("actor.") for k in changed) and any(k.startswith("q1.") for k in changed)
    assert any(k.startswith("q2_target.") for k in changed) and "log_alpha" in changed
    task_stats = agent.task_statistics()
    assert set(task_stats) >= {"alpha", "critic_loss", "q1_mean", "entropy", "actor_loss"}
    assert all(len(v) == 3 for v in task_stats.values())
    log = evaluate(agent.model, lambda n: make_vec_env(agent.env.specs, n, seed=1), 1,
                   strategy="sample-5" if agent.model.actor.stochastic else "mean")
    assert all(len(r) == 1 for r in log.returns)
    agent.env.close()


@pytest.fixture(scope="module", params=["lunarlander20", "mt10"])
def family_env(request):
    """Two tasks of a simulator-backed family, one copy each; shared by the methods' tests."""
    env = make_vec_env(build_suite(request.param)[:2], 1, seed=0)
    yield request.param, env
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_every_method_trains_sac_steps_on_lunarlander_and_mt10(name, family_env):
    suite, env = family_env
    config = load_config({"suite": suite, "methods": [name], "seeds": [0], "total_steps_per_task": 60},
                         {**SAC_OVERRIDES, "envs_per_task": 1, "total_steps_per_task": 60,
                          "sac.steps_per_iteration": 60, "sac.learning_starts": 30, "sac.train_freq": 1})
    agent = SAC(config, make_method(name, config, 2, 0), env, seed=0)
    stats = agent.iterate()
    assert agent.gradient_steps_done == 31 and all(math.isfinite(v) for v in stats.values())
    assert agent.model.discrete == (suite == "lunarlander20")
    if suite == "mt10":
        assert agent.model.target_entropy == -4.0 and agent.buffer.actions.shape == (2, 64, 4)


def test_gradient_combining_methods_combine_the_critic_and_the_actor_gradients_separately():
    agent = make_sac("pcgrad")
    stats = agent.iterate()
    assert -1 <= stats["critic_grad_cosine_mean"] <= 1 and -1 <= stats["actor_grad_cosine_mean"] <= 1
    agent.env.close()


def test_stochastic_methods_pay_the_kl_with_the_buffer_size_as_n_data():
    agent = make_sac("varshare", **{"varshare.rho_init": 0.0})
    stats = agent.iterate()
    kl_critic = agent.method.kl(agent.model.critics())
    extra, _ = agent.method.extra_loss(agent.model.critics(), agent.buffer.size)
    assert agent.buffer.size == 64  # full (capacity 64 < 100 steps)
    assert extra.item() == pytest.approx(kl_critic.item() / 64, rel=1e-5)
    assert stats["critic_kl"] > 0 and stats["actor_kl"] > 0
    agent.env.close()


def test_sac_runs_are_reproducible():
    a, b = make_sac("varshare"), make_sac("varshare")
    assert a.iterate() .keys() == b.iterate().keys()
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    a.env.close(), b.env.close()


def test_sac_config_rejects_iterations_that_are_not_whole_gradient_phases():
    base = {"suite": "cartpole10", "algo": "sac", "methods": ["varshare"], "seeds": [0], "total_steps_per_task": 100}
    with pytest.raises(ConfigError, match=r"sac.steps_per_iteration = 10 must be a multiple of envs_per_task × "
                                          r"sac.train_freq = 2 × 4 = 8"):
        load_config(base, {"envs_per_task": 2, "sac.train_freq": 4, "sac.steps_per_iteration": 10})
    with pytest.raises(ConfigError, match=r"sac.log_std_min = 2 must be below sac.log_std_max = 1"):
        load_config(base, {"sac.log_std_min": 2.0, "sac.log_std_max": 1.0})
    with pytest.raises(ConfigError, match=r"sac.target_entropy_ratio: got 1.5; must be a finite number in \(0, 1\)"):
        load_config(base, {"sac.target_entropy_ratio": 1.5})


@pytest.mark.parametrize("suite", ["cartpole10", "lunarlander20", "mt10"])
def test_sac_experiment_configs_are_valid_and_name_sac(suite):
    config = load_config(f"configs/{suite}_sac.yaml")
    assert config.algo == "sac" and config.suite == suite and len(config.methods) == len(METHODS)
    if suite == "mt10":
        assert config.network.hidden_sizes == [400, 400, 400] and config.sac.batch_per_task == 128
        assert config.sac.buffer_size == 100_000 and config.sac.max_grad_norm == 1.0
    else:
        assert config.network.hidden_sizes == [64, 64]


def test_an_sac_run_writes_the_run_directory_contract(tmp_path):
    config = load_config("configs/cartpole10_sac.yaml", {
        **SAC_OVERRIDES, "methods": ["varshare"], "seeds": [2], "eval.every_steps": 100, "eval.episodes": 1})
    out = tmp_path / "run"
    summary = train(config, build_suite("cartpole10")[:2], "varshare", 2, out)
    assert summary["run"] == "cartpole10/sac/varshare/seed2" and summary["algo"] == "sac"
    for name in ("config.yaml", "manifest.json", "tasks.json", "metrics.csv", "progress.log", "checkpoint.pt",
                 "done.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "manifest.json").read_text())["algo"] == "sac"
    assert load_config(out / "config.yaml").sac == config.sac
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert {r["algo"] for r in rows} == {"sac"}
    per_task = {(r["task"], r["metric"]) for r in rows if r["task"] != "all"}
    tasks = [spec.name for spec in build_suite("cartpole10")[:2]]
    for metric in ("alpha", "q1_mean", "critic_loss", "actor_loss", "entropy", "eval_return", "eval_return_sample5"):
        assert all((task, metric) in per_task for task in tasks), metric
    overall = {r["metric"] for r in rows if r["task"] == "all"}
    assert {"critic_kl", "actor_kl", "critic_grad_norm", "buffer_size", "gradient_steps"} <= overall
    assert "gradient_steps_per_second" not in overall and "sps" not in overall  # wall clock: progress.log only
    progress = (out / "progress.log").read_text()
    assert " sps " in progress and " gradient_steps_per_second " in progress
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["buffer"]["size"] == 64 and {"actor_optimizer", "critic_optimizer", "alpha_optimizer"} <= set(state)


def test_a_nan_loss_stops_an_sac_run_with_the_last_good_checkpoint(tmp_path, monkeypatch):
    class Exploding(REGISTRY["hard_sharing"]):
        """hard_sharing whose extra loss turns NaN on its 60th call: the actor loss of gradient step 29
        (two calls per step, critic then actor), in the second iteration."""

        name = "exploding"
        calls = 0

        def extra_loss(self, networks, examples_per_task):
            Exploding.calls += 1
            return torch.tensor(math.nan if Exploding.calls >= 60 else 0.0), {}

    monkeypatch.setitem(REGISTRY, "exploding", Exploding)
    config = load_config("configs/cartpole10_sac.yaml", {**SAC_OVERRIDES, "methods": ["hard_sharing"], "seeds": [0],
                                                         "total_steps_per_task": 400, "checkpoint.every_steps": 100})
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"non-finite actor loss at gradient step 29 \(iteration 1\)"):
        train(config, build_suite("cartpole10")[:2], "exploding", 0, out)
    state = torch.load(out / "resume.pt", weights_only=False)
    assert state["iteration"] == 1 and state["gradient_steps_done"] == 16  # steps 40, 44, ..., 100
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (out / "done.json").exists()
