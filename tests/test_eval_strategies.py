"""Evaluation strategies: mean weights, sample-1 (one full weight draw per episode), sample-5."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import network_config, randomise_
from varshare.algos.ppo import ActorCritic
from varshare.config import load_config
from varshare.envs import build_suite, make_vec_env
from varshare.eval.evaluate import evaluate
from varshare.eval.strategies import EvalPolicy, metric_suffix, parse_strategy
from varshare.methods import make_method
from varshare.nn import NetworkNoise, VariationalLoRALinear, VariationalResidualLinear, named_layers, slice_examples
from varshare.nn.noise import PerExampleFactorNoise, PerExampleWeightNoise, where_examples
from varshare.run_io import MetricsTable
from varshare.train import train

CONFIG = "configs/cartpole10_ppo.yaml"


def randomise(layer: VariationalResidualLinear, seed: int = 0) -> VariationalResidualLinear:
    """Non-trivial μ and σ (σ between ~0.1 and ~0.7)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mu in (layer.mu_weight, layer.mu_bias):
            mu.copy_(torch.randn(mu.shape, generator=g))
        for rho in (layer.rho_weight, layer.rho_bias):
            rho.copy_(torch.rand(rho.shape, generator=g) * 2 - 2)
    return layer


def randomise_model(model: ActorCritic) -> ActorCritic:
    for k, layer in enumerate(named_layers(model.networks()).values()):
        randomise(layer, k)
    return model


def build_model(method: str, obs_dim: int = 4, action_dim: int = 2, discrete: bool = True, num_tasks: int = 2,
                hidden=(8,), **overrides) -> ActorCritic:
    """The actor-critic of ``method`` (``M = num_tasks``) with the cartpole10 config and ``overrides``."""
    config = load_config(CONFIG, overrides)
    return ActorCritic(make_method(method, config, num_tasks, 0), obs_dim, action_dim, discrete,
                       network_config(hidden))


def tiny_model(discrete: bool = True, estimator: str = "flipout", hidden=(5,), num_tasks: int = 2) -> ActorCritic:
    torch.manual_seed(0)
    model = build_model("varshare", 3, 4, discrete, num_tasks, hidden, **{"varshare.estimator": estimator})
    return randomise_model(model)


def noise_tensors(noise: NetworkNoise) -> list[torch.Tensor]:
    """Every tensor of a network's per-example weight draws, layer by layer."""
    return [t for layer in noise.layers for t in (layer.eps_weight, layer.eps_bias)]


def test_strategy_names():
    assert [parse_strategy(s) for s in ("mean", "sample-1", "sample-5", "sample-12")] == [0, 1, 5, 12]
    assert [metric_suffix(s) for s in ("mean", "sample-1", "sample-5")] == ["", "_sample1", "_sample5"]
    for bad in ("sample-0", "sample", "median", "sample-1.5"):
        with pytest.raises(ValueError, match="evaluation strategy"):
            parse_strategy(bad)


def effective_weights(layer: VariationalResidualLinear, noise) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight [M, B, out, in], bias [M, B, out])`` that the forward pass applies to each example,
    read off the layer's outputs on the inputs 0 and the unit vectors."""
    M, B = layer.num_tasks, noise.eps_weight.shape[1]
    bias = layer(torch.zeros(M, B, layer.in_features), noise)
    columns = [layer(F.one_hot(torch.full((M, B), i), layer.in_features).float(), noise) - bias
               for i in range(layer.in_features)]
    return torch.stack(columns, dim=-1), bias


@pytest.mark.parametrize("estimator", ["flipout", "shared_noise", "local_reparam"])
def test_per_example_weight_draws_are_gaussian_around_the_mean_weights(estimator):
    layer = randomise(VariationalResidualLinear(3, 2, 2, estimator=estimator))
    assert layer.stochastic
    B = 40_000
    noise = layer.draw_weight_samples(B, torch.Generator().manual_seed(1))
    assert isinstance(noise, PerExampleWeightNoise)
    assert noise.eps_weight.shape == (2, B, 2, 3) and noise.eps_bias.shape == (2, B, 2)
    with torch.no_grad():
        weight, bias = effective_weights(layer, noise)
        mean_w, mean_b = layer.theta_weight + layer.mu_weight, layer.theta_bias + layer.mu_bias
        sigma_w, sigma_b = F.softplus(layer.rho_weight), F.softplus(layer.rho_bias)
        # Monte Carlo: 4 standard errors of the mean, ~2% for the std
        assert (weight.mean(1) - mean_w).abs().le(4 * sigma_w / math.sqrt(B)).all()
        assert (bias.mean(1) - mean_b).abs().le(4 * sigma_b / math.sqrt(B)).all()
        torch.testing.assert_close(weight.std(1), sigma_w, rtol=0.025, atol=0)
        torch.testing.assert_close(bias.std(1), sigma_b, rtol=0.025, atol=0)
        # the forward pass computes each example with its own weight, whatever the estimator
        x = torch.randn(2, 7, 3)
        small = slice_examples(noise, 0, 7)
        w = mean_w.unsqueeze(1) + sigma_w.unsqueeze(1) * small.eps_weight
        b = mean_b.unsqueeze(1) + sigma_b.unsqueeze(1) * small.eps_bias
        expected = torch.stack([torch.stack([w[m, n] @ x[m, n] + b[m, n] for n in range(7)]) for m in range(2)])
        torch.testing.assert_close(layer(x, small), expected)


def test_deterministic_layers_have_no_weight_draws():
    model = build_model("hard_sharing")
    assert not model.actor.stochastic and not model.critic.stochastic
    assert all(layer.draw_weight_samples(3, None) is None for layer in named_layers(model.networks()).values())
    assert model.actor.draw_weight_samples(3, None) is None
    assert tiny_model().actor.stochastic


def test_mean_strategy_is_the_mean_weight_greedy_policy():
    model = tiny_model()
    obs = torch.randn(2, 6, 3)
    actions = EvalPolicy(model, "mean", 6).act(obs)
    with torch.no_grad():
        logits = model(obs, None).logits
    assert torch.equal(actions, model.greedy_actions(logits.unsqueeze(2)))
    assert torch.equal(actions, logits.argmax(-1))


def manual_logits(model: ActorCritic, noise: NetworkNoise, obs: torch.Tensor, example: int) -> torch.Tensor:
    """The actor by hand for every task's ``obs`` ``[M, obs_dim]`` with draw ``example``:
    ``W = θ + μ + softplus(ρ) ε`` from the draws' ε."""
    h = obs
    layers = list(model.actor.layers)
    for i, layer in enumerate(layers):
        eps_w = noise.layers[i].eps_weight[:, example]
        eps_b = noise.layers[i].eps_bias[:, example]
        w = layer.theta_weight + layer.mu_weight + F.softplus(layer.rho_weight) * eps_w
        b = layer.theta_bias + layer.mu_bias + F.softplus(layer.rho_bias) * eps_b
        h = torch.einsum("moi,mi->mo", w, h) + b
        if i < len(layers) - 1:
            h = torch.tanh(h)
    return h


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("strategy", ["sample-1", "sample-5"])
def test_sample_strategies_average_the_draws_action_distributions(discrete, strategy):
    model = tiny_model(discrete)
    K, N = parse_strategy(strategy), 3
    policy = EvalPolicy(model, strategy, N, seed=7)
    obs = torch.randn(2, N, 3)
    with torch.no_grad():
        actions = policy.act(obs)
        for n in range(N):
            per_draw = torch.stack([manual_logits(model, policy.noise, obs[:, n], n * K + k) for k in range(K)])
            if discrete:
                probs = torch.softmax(per_draw, -1).mean(0)
                assert torch.equal(actions[:, n], probs.argmax(-1))
            else:
                torch.testing.assert_close(actions[:, n], per_draw.mean(0))
    assert actions.shape == ((2, N) if discrete else (2, N, 4))


def test_sample5_differs_from_any_single_draw_on_the_averaged_probabilities():
    """A case where the averaged distribution's argmax differs from the first draw's: sample-5 is
    not 'the first of five draws'."""
    model = tiny_model(True, hidden=(16,))
    policy = EvalPolicy(model, "sample-5", 64, seed=3)
    obs = torch.randn(2, 64, 3) * 3
    with torch.no_grad():
        actions = policy.act(obs)
        first = torch.stack([manual_logits(model, policy.noise, obs[:, n], 5 * n).argmax(-1) for n in range(64)], 1)
    assert (actions != first).any()


def test_low_rank_residual_layers_draw_both_factors_per_copy():
    """varshare_lora trains with one factor draw per task and batch; its sample strategies still
    give every copy its own ``θ + B A`` with ``A = μ_A + σ_A ε_A``, ``B = μ_B + σ_B ε_B``."""
    torch.manual_seed(0)
    model = build_model("varshare_lora", 3, 4, True, 2, (5,))
    randomise_(model, seed=1)
    policy = EvalPolicy(model, "sample-1", 3, seed=0)
    assert all(isinstance(noise, PerExampleFactorNoise) for noise in policy.noise.layers)
    obs = torch.randn(2, 3, 3)
    with torch.no_grad():
        logits = model.actor(obs, policy.noise)
        assert torch.equal(policy.act(obs), logits.argmax(-1))
        for n in range(3):
            h = obs[:, n]
            for i, layer in enumerate(model.actor.layers):
                assert isinstance(layer, VariationalLoRALinear)
                noise = policy.noise.layers[i]
                A = layer.mu_A + layer.sigma_A * noise.eps_A[:, n]
                B = layer.mu_B + layer.sigma_B * noise.eps_B[:, n]
                w = layer.theta_weight + torch.bmm(B, A)
                h = torch.einsum("moi,mi->mo", w, h) + layer.theta_bias
                h = torch.tanh(h) if i == 0 else h
            torch.testing.assert_close(logits[:, n], h)
    first = policy.noise.layers[0]
    assert not torch.equal(first.eps_A[:, 0], first.eps_A[:, 1])  # independent per copy


def test_draws_differ_between_copies_and_are_held_through_an_episode(monkeypatch):
    """Spy on the per-example weights of every forward pass of a sample-1 evaluation on CartPole."""
    model = randomise_model(build_model("varshare"))
    seen: list[torch.Tensor] = []
    original = VariationalResidualLinear.forward

    def spy(self, x, noise=None):
        if isinstance(noise, PerExampleWeightNoise) and self.out_features == 2:  # the policy head
            mean, sigma = self.theta_weight + self.mu_weight, self.sigma_weight
            seen.append((mean.unsqueeze(1) + sigma.unsqueeze(1) * noise.eps_weight).detach())  # W per example
        return original(self, x, noise)

    monkeypatch.setattr(VariationalResidualLinear, "forward", spy)
    specs = build_suite("cartpole10")[:2]
    log = evaluate(model, lambda n: make_vec_env(specs, n, seed=11), 4, strategy="sample-1", seed=5)
    assert len(seen) == max(max(lengths) for lengths in log.lengths) > 1
    assert all(torch.equal(w, seen[0]) for w in seen)  # one draw per copy for the whole episode
    weights = seen[0]  # [M, N, out, in]
    assert weights.shape[:2] == (2, 4)
    for m in range(2):
        for a in range(4):
            for b in range(a + 1, 4):
                assert not torch.allclose(weights[m, a], weights[m, b])  # independent per copy


def test_same_seed_same_draws_and_evaluation_other_seed_other_draws():
    model = tiny_model()
    a, b, c = (noise_tensors(EvalPolicy(model, "sample-5", 4, seed=s).noise) for s in (1, 1, 2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, z) for x, z in zip(a, c))
    one = EvalPolicy(model, "sample-1", 4, seed=1).noise
    assert not torch.equal(one.layers[0].eps_weight, a[0][:, :4])  # own streams

    model = randomise_model(build_model("varshare"))
    specs = build_suite("cartpole10")[:2]
    runs = [evaluate(model, lambda n: make_vec_env(specs, n, seed=3), 3, strategy="sample-5", seed=9) for _ in range(2)]
    assert runs[0] == runs[1]


def test_deterministic_model_sample_strategies_are_the_mean_policy():
    model = build_model("hard_sharing")
    specs = build_suite("cartpole10")[:2]
    logs = {s: evaluate(model, lambda n: make_vec_env(specs, n, seed=3), 3, strategy=s, seed=1)
            for s in ("mean", "sample-1", "sample-5")}
    assert logs["mean"] == logs["sample-1"] == logs["sample-5"]
    assert EvalPolicy(model, "sample-5", 3).noise is None


def tiny_train(tmp_path, method: str, out: str, **overrides):
    config = load_config(CONFIG, {
        "methods": [method], "seeds": [0], "total_steps_per_task": 64, "envs_per_task": 2, "ppo.num_steps": 16,
        "ppo.num_minibatches": 2, "eval.every_steps": 32, "eval.episodes": 2, "network.hidden_sizes": [8],
        **overrides})
    train(config, build_suite("cartpole10")[:2], method, 0, tmp_path / out)
    return MetricsTable.load_rows(tmp_path / out / "metrics.csv")


def test_training_logs_sample_strategies_for_stochastic_weights_only_and_reproducibly(tmp_path):
    rows = tiny_train(tmp_path, "varshare", "a")
    tiny_train(tmp_path, "varshare", "b")
    assert (tmp_path / "a/metrics.csv").read_text() == (tmp_path / "b/metrics.csv").read_text()
    tasks = [s.name for s in build_suite("cartpole10")[:2]]
    eval_metrics = {(r[4], r[5], r[6]) for r in rows if r[6].startswith("eval_")}
    for step in (0, 32, 64):
        for suffix in ("", "_sample1", "_sample5"):
            assert ("all", step, f"eval_return_mean{suffix}") in eval_metrics
            for task in tasks:
                for name in ("eval_return", "eval_length", "eval_success"):
                    assert (task, step, name + suffix) in eval_metrics
    values = {(r[4], r[5], r[6]): r[7] for r in rows}
    for suffix in ("", "_sample1", "_sample5"):
        for metric in ("return", "success"):
            per_task = [values[t, 64, f"eval_{metric}{suffix}"] for t in tasks]
            assert values["all", 64, f"eval_{metric}_mean{suffix}"] == pytest.approx(np.mean(per_task))

    deterministic = tiny_train(tmp_path, "hard_sharing", "c")
    names = {r[6] for r in deterministic}
    assert "eval_return" in names and not any("sample" in n for n in names)

    mean_only = tiny_train(tmp_path, "varshare", "d", **{"eval.sample_strategies": []})  # MT10's setting
    names = {r[6] for r in mean_only}
    assert "eval_success_mean" in names and not any("sample" in n for n in names)


@pytest.mark.parametrize("value", [["mean"], ["sample-0"], ["sample-1", "sample-1"]])
def test_bad_sample_strategies_are_refused(value):
    with pytest.raises(ValueError, match="eval.sample_strategies"):
        load_config(CONFIG, {"eval.sample_strategies": value})


# -- episodes back to back on fewer copies (eval.envs_per_task; Meta-World's one env per task) ------
def test_back_to_back_episodes_get_fresh_draws_per_episode(monkeypatch):
    """2 copies × 2 episodes each: every copy's weights change exactly once, when its first episode
    ends, and 4 complete episodes per task are logged."""
    model = randomise_model(build_model("varshare"))
    seen: list[torch.Tensor] = []
    original = VariationalResidualLinear.forward

    def spy(self, x, noise=None):
        if isinstance(noise, PerExampleWeightNoise) and self.out_features == 2:  # the policy head
            seen.append((self.sigma_weight.unsqueeze(1) * noise.eps_weight).detach())
        return original(self, x, noise)

    monkeypatch.setattr(VariationalResidualLinear, "forward", spy)
    specs = build_suite("cartpole10")[:2]
    log = evaluate(model, lambda n: make_vec_env(specs, n, seed=11), 4, strategy="sample-1", seed=5, copies=2)
    assert [len(r) for r in log.returns] == [4, 4]
    assert all(length >= 8 for lengths in log.lengths for length in lengths)  # whole CartPole episodes
    for m in range(2):
        for n in range(2):
            draws = [w[m, n] for w in seen]
            changes = sum(not torch.equal(a, b) for a, b in zip(draws, draws[1:]))
            assert changes == 1, f"task {m} copy {n}: {changes} redraws for 2 episodes"


def test_where_examples_mixes_per_example_draws():
    model = tiny_model()
    old = model.actor.draw_weight_samples(3, torch.Generator().manual_seed(0))
    new = model.actor.draw_weight_samples(3, torch.Generator().manual_seed(1))
    mask = torch.tensor([[True, False, False], [False, False, True]])
    mixed = where_examples(mask, new, old)
    for layer_mixed, layer_new, layer_old in zip(mixed.layers, new.layers, old.layers):
        for name in ("eps_weight", "eps_bias"):
            got, a, b = (getattr(x, name) for x in (layer_mixed, layer_new, layer_old))
            for m in range(2):
                for n in range(3):
                    assert torch.equal(got[m, n], (a if mask[m, n] else b)[m, n])
    flipout = model.actor.draw_noise(3, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="per-task fields"):
        where_examples(mask, flipout, flipout)


def test_copies_must_divide_the_episodes():
    model = tiny_model()
    with pytest.raises(ValueError, match="copies = 2 must divide episodes = 3"):
        evaluate(model, lambda n: make_vec_env(build_suite("cartpole10")[:2], n, seed=0), 3, copies=2)
