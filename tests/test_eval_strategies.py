"""Evaluation strategies: mean weights, sample-1 (one full weight draw per episode), sample-5."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from varshare.algos.ppo import evaluate, greedy_actions
from varshare.config import load_config
from varshare.envs import build_suite, make_vec_env
from varshare.eval.strategies import EvalPolicy, WeightDraws, has_stochastic_weights, metric_suffix, parse_strategy
from varshare.methods import make_method
from varshare.nn import ActorCritic, MultiTaskLinear, VariationalResidualLinear
from varshare.run_io import MetricsTable
from varshare.train import train


def randomise(layer: VariationalResidualLinear, seed: int = 0) -> VariationalResidualLinear:
    """Non-trivial μ and σ (σ between ~0.1 and ~0.7)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mu in (layer.mu_weight, layer.mu_bias):
            mu.copy_(torch.randn(mu.shape, generator=g))
        for rho in (layer.rho_weight, layer.rho_bias):
            rho.copy_(torch.rand(rho.shape, generator=g) * 2 - 2)
    return layer


def tiny_model(discrete: bool = True, estimator: str = "flipout", hidden=(5,), num_tasks: int = 2,
               layer_class=VariationalResidualLinear) -> ActorCritic:
    torch.manual_seed(0)
    model = ActorCritic(3, 4, discrete, num_tasks, list(hidden), "tanh",
                        lambda i, o, head, gain: layer_class(i, o, num_tasks, gain, estimator=estimator))
    for k, layer in enumerate(model.multitask_layers()):
        randomise(layer, k)
    return model


def test_strategy_names():
    assert [parse_strategy(s) for s in ("mean", "sample-1", "sample-5", "sample-12")] == [0, 1, 5, 12]
    assert [metric_suffix(s) for s in ("mean", "sample-1", "sample-5")] == ["", "_sample1", "_sample5"]
    for bad in ("sample-0", "sample", "median", "sample-1.5"):
        with pytest.raises(ValueError, match="evaluation strategy"):
            parse_strategy(bad)


@pytest.mark.parametrize("estimator", ["flipout", "shared_noise", "local_reparam"])
def test_per_example_weight_draws_are_gaussian_around_the_mean_weights(estimator):
    layer = randomise(VariationalResidualLinear(3, 2, 2, estimator=estimator))
    assert layer.stochastic_weights
    B = 40_000
    noise = layer.weight_sample_noise(B, torch.Generator().manual_seed(1))
    assert noise["sample_eps_weight"].shape == (2, B, 2, 3) and noise["sample_eps_bias"].shape == (2, B, 2)
    with torch.no_grad():
        weight, bias = layer.sampled_weights(noise)
        mean_w, mean_b = layer.theta_weight + layer.mu_weight, layer.theta_bias + layer.mu_bias
        sigma_w, sigma_b = F.softplus(layer.rho_weight), F.softplus(layer.rho_bias)
        # Monte Carlo: 4 standard errors of the mean, ~2% for the std
        assert (weight.mean(1) - mean_w).abs().le(4 * sigma_w / math.sqrt(B)).all()
        assert (bias.mean(1) - mean_b).abs().le(4 * sigma_b / math.sqrt(B)).all()
        torch.testing.assert_close(weight.std(1), sigma_w, rtol=0.025, atol=0)
        torch.testing.assert_close(bias.std(1), sigma_b, rtol=0.025, atol=0)
        # the forward pass computes each example with its own weight, whatever the estimator
        x = torch.randn(2, 7, 3)
        small = {k: v[:, :7] for k, v in noise.items()}
        w = mean_w.unsqueeze(1) + sigma_w.unsqueeze(1) * small["sample_eps_weight"]
        b = mean_b.unsqueeze(1) + sigma_b.unsqueeze(1) * small["sample_eps_bias"]
        expected = torch.stack([torch.stack([w[m, n] @ x[m, n] + b[m, n] for n in range(7)]) for m in range(2)])
        torch.testing.assert_close(layer(x, small), expected)
        torch.testing.assert_close(layer(x, layer.weight_sample_cache(small)), expected)


def test_deterministic_layers_have_no_weight_draws():
    model = make_method("hard_sharing", load_config("configs/cartpole10_ppo.yaml"), 2, 0).build_model(4, 2, True)
    assert not has_stochastic_weights(model)
    assert all(layer.weight_sample_noise(3, None) == {} for layer in model.multitask_layers())
    assert has_stochastic_weights(tiny_model())


def test_mean_strategy_is_the_mean_weight_greedy_policy():
    model = tiny_model()
    obs = torch.randn(2, 6, 3)
    actions = EvalPolicy(model, "mean", 6).act(obs)
    assert torch.equal(actions, greedy_actions(model(obs, None)))
    assert torch.equal(actions, model(obs, None).logits.argmax(-1))


def manual_logits(model: ActorCritic, draws: WeightDraws, obs: torch.Tensor, example: int) -> torch.Tensor:
    """The actor by hand for every task's ``obs`` ``[M, obs_dim]`` with draw ``example``:
    ``W = θ + μ + softplus(ρ) ε`` from the draws' ε."""
    h = obs
    layers = list(model.actor.layers)
    for i, layer in enumerate(layers):
        eps_w = draws.noise[f"{i}.sample_eps_weight"][:, example]
        eps_b = draws.noise[f"{i}.sample_eps_bias"][:, example]
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
            per_draw = torch.stack([manual_logits(model, policy.weights, obs[:, n], n * K + k) for k in range(K)])
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
        first = torch.stack([manual_logits(model, policy.weights, obs[:, n], 5 * n).argmax(-1) for n in range(64)], 1)
    assert (actions != first).any()


def test_draws_differ_between_copies_and_are_held_through_an_episode(monkeypatch):
    """Spy on the per-example weights of every forward pass of a sample-1 evaluation on CartPole."""
    config = load_config("configs/cartpole10_ppo.yaml", {"network.hidden_sizes": [8]})
    model = make_method("varshare", config, 2, 0).build_model(4, 2, True)
    for k, layer in enumerate(model.multitask_layers()):
        randomise(layer, k)
    seen: list[torch.Tensor] = []
    original = VariationalResidualLinear.forward

    def spy(self, x, noise=None):
        if noise is not None and "sample_weight" in noise and self.out_features == 2:  # the policy head
            seen.append(noise["sample_weight"].clone())
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
    a, b, c = (EvalPolicy(model, "sample-5", 4, seed=s).weights.noise for s in (1, 1, 2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    one = EvalPolicy(model, "sample-1", 4, seed=1).weights.noise
    assert not torch.equal(one["0.sample_eps_weight"], a["0.sample_eps_weight"][:, :4])  # own streams

    config = load_config("configs/cartpole10_ppo.yaml", {"network.hidden_sizes": [8]})
    model = make_method("varshare", config, 2, 0).build_model(4, 2, True)
    for k, layer in enumerate(model.multitask_layers()):
        randomise(layer, k)
    specs = build_suite("cartpole10")[:2]
    runs = [evaluate(model, lambda n: make_vec_env(specs, n, seed=3), 3, strategy="sample-5", seed=9) for _ in range(2)]
    assert runs[0] == runs[1]


def test_deterministic_model_sample_strategies_are_the_mean_policy():
    model = make_method("hard_sharing", load_config("configs/cartpole10_ppo.yaml"), 2, 0).build_model(4, 2, True)
    specs = build_suite("cartpole10")[:2]
    logs = {s: evaluate(model, lambda n: make_vec_env(specs, n, seed=3), 3, strategy=s, seed=1)
            for s in ("mean", "sample-1", "sample-5")}
    assert logs["mean"] == logs["sample-1"] == logs["sample-5"]
    assert EvalPolicy(model, "sample-5", 3).weights is None


class RolloutNoiseOnly(VariationalResidualLinear):
    """A stochastic layer without native per-example draws whose randomness is all rollout noise
    (like the LoRA residual): the evaluation draws its full weights from that noise."""

    weight_sample_noise = MultiTaskLinear.weight_sample_noise
    weight_sample_cache = MultiTaskLinear.weight_sample_cache


def test_layers_with_only_rollout_noise_are_drawn_per_example_from_it():
    model = tiny_model(estimator="shared_noise", layer_class=RolloutNoiseOnly)
    with pytest.raises(NotImplementedError):
        model.actor.layers[0].weight_sample_noise(2, None)
    policy = EvalPolicy(model, "sample-1", 3, seed=0)
    assert not policy.weights.native and len(policy.weights.per_example) == 3
    obs = torch.randn(2, 3, 3)
    with torch.no_grad():
        logits = policy.weights.actor_output(obs)
        for n, noise in enumerate(policy.weights.per_example):
            h = obs[:, n]
            for i, layer in enumerate(model.actor.layers):
                w = layer.theta_weight + layer.mu_weight + layer.sigma_weight * noise[f"{i}.eps_weight"]
                b = layer.theta_bias + layer.mu_bias + layer.sigma_bias * noise[f"{i}.eps_bias"]
                h = torch.einsum("moi,mi->mo", w, h) + b
                h = torch.tanh(h) if i == 0 else h
            torch.testing.assert_close(logits[:, n], h)
    assert not torch.equal(policy.weights.per_example[0]["0.eps_weight"], policy.weights.per_example[1]["0.eps_weight"])

    flipout = tiny_model(estimator="flipout", layer_class=RolloutNoiseOnly)  # per-example noise: cannot draw
    with pytest.raises(NotImplementedError, match="weight_sample_noise"):
        EvalPolicy(flipout, "sample-1", 3)


def tiny_train(tmp_path, method: str, out: str):
    config = load_config("configs/cartpole10_ppo.yaml", {
        "methods": [method], "seeds": [0], "total_steps_per_task": 64, "envs_per_task": 2, "ppo.num_steps": 16,
        "ppo.num_minibatches": 2, "eval.every_steps": 32, "eval.episodes": 2, "network.hidden_sizes": [8]})
    train(config, build_suite("cartpole10")[:2], method, 0, tmp_path / out)
    return MetricsTable.load_rows(tmp_path / out / "metrics.csv")


def test_training_logs_sample_strategies_for_stochastic_weights_only_and_reproducibly(tmp_path):
    rows = tiny_train(tmp_path, "varshare", "a")
    tiny_train(tmp_path, "varshare", "b")
    assert (tmp_path / "a/metrics.csv").read_text() == (tmp_path / "b/metrics.csv").read_text()
    tasks = [s.name for s in build_suite("cartpole10")[:2]]
    eval_metrics = {(r[3], r[4], r[5]) for r in rows if r[5].startswith("eval_")}
    for step in (0, 32, 64):
        for suffix in ("", "_sample1", "_sample5"):
            assert ("all", step, f"eval_return_mean{suffix}") in eval_metrics
            for task in tasks:
                for name in ("eval_return", "eval_length", "eval_success"):
                    assert (task, step, name + suffix) in eval_metrics
    values = {(r[3], r[4], r[5]): r[6] for r in rows}
    for suffix in ("", "_sample1", "_sample5"):
        per_task = [values[t, 64, f"eval_return{suffix}"] for t in tasks]
        assert values["all", 64, f"eval_return_mean{suffix}"] == pytest.approx(np.mean(per_task))

    deterministic = tiny_train(tmp_path, "hard_sharing", "c")
    names = {r[5] for r in deterministic}
    assert "eval_return" in names and not any("sample" in n for n in names)
