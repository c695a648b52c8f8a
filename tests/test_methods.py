"""Sharing methods: registry, parameter counts by hand, per-task gradients from replicated shared
parameters vs separate backward passes, gradient combination inside PPO, extra-loss gradients,
and one PPO iteration of every method with exact noise replay."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from varshare.algos.per_task_gradients import apply_combined_gradients, task_replicas
from varshare.algos.ppo import ActorCritic
from varshare.config import METHODS, load_config
from varshare.methods import REGISTRY, make_method
from varshare.methods.hard_sharing import MultiHead
from varshare.nn import ESTIMATORS, ResidualLinear, shared_parameters

from helpers import PPO_OVERRIDES, gen, make_ppo, randomise_

OBS_DIM, N_ACTIONS = 4, 2


def config(method: str, **overrides):
    base = {"suite": "cartpole10", "methods": [method], "seeds": [0], "total_steps_per_task": 1000}
    return load_config(base, overrides)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build(method_obj, cfg) -> ActorCritic:
    return ActorCritic(method_obj, OBS_DIM, N_ACTIONS, True, cfg.network)


# ------------------------------------------------------------------------------------------
# 1. Registry and parameter counts


def test_registry_matches_config_method_names():
    assert set(REGISTRY) == set(METHODS)
    assert all(REGISTRY[name].name == name for name in REGISTRY)


def test_unknown_method_raises_listing_registered_names():
    with pytest.raises(ValueError) as info:
        make_method("nope", config("hard_sharing"), 3, 0)
    message = str(info.value)
    assert "nope" in message
    assert all(name in message for name in METHODS)


# hidden [64, 64], obs 4, 2 actions, M = 10
_M = 10
_ACTOR = (4 * 64 + 64) + (64 * 64 + 64) + (64 * 2 + 2)  # 4610
_CRITIC = (4 * 64 + 64) + (64 * 64 + 64) + (64 * 1 + 1)  # 4545
_SINGLE = _ACTOR + _CRITIC  # one task's actor + critic: 9155
_SHARED_HIDDEN = 2 * ((4 * 64 + 64) + (64 * 64 + 64))  # actor and critic hidden layers: 8960
_HEADS = _M * ((64 * 2 + 2) + (64 * 1 + 1))  # 1950
_LORA_IN_OUT = (4 + 64) + (64 + 64) + (64 + 2) + (4 + 64) + (64 + 64) + (64 + 1)  # Σ (in + out): 523
_CTX_ACTOR = ((4 + 32) * 64 + 64) + (64 * 64 + 64) + (64 * 2 + 2)
_CTX_CRITIC = ((4 + 32) * 64 + 64) + (64 * 64 + 64) + (64 * 1 + 1)
EXPECTED_PARAMS = {
    "independent": _M * _SINGLE,  # 91550
    "hard_sharing": _SHARED_HIDDEN + _HEADS,  # 10910
    "contextual": _CTX_ACTOR + _CTX_CRITIC + 2 * _M * 32,  # 13891
    "l2_soft": _SINGLE + _M * _SINGLE,  # θ + M φ: 100705
    "pcgrad": _SHARED_HIDDEN + _HEADS,
    "cagrad": _SHARED_HIDDEN + _HEADS,
    "varshare": _SINGLE + 2 * _M * _SINGLE,  # θ + M (μ, ρ): 192255
    **dict.fromkeys(
        ["varshare_reptile", "varshare_trust_region", "varshare_shared_noise", "varshare_lrt",
         "varshare_kl_anneal", "varshare_mean_rollout"],
        _SINGLE + 2 * _M * _SINGLE,
    ),
    "varshare_adaptive_prior": _SINGLE + 2 * _M * _SINGLE + 6,  # + one log σ_prior per layer
    "varshare_horseshoe": _SINGLE + 2 * _M * _SINGLE + 2 * _M * (64 + 64 + 2 + 64 + 64 + 1),  # + (ℓ, ρ_λ) per unit
    "varshare_lora": _SINGLE + _M * 2 * 4 * _LORA_IN_OUT,  # θ + M (μ, ρ) of A and B, rank 4: 50995
}
EXPECTED_SHARED = {
    "independent": 0,
    "hard_sharing": _SHARED_HIDDEN,
    "contextual": _CTX_ACTOR + _CTX_CRITIC,
    "l2_soft": _SINGLE,
    "pcgrad": _SHARED_HIDDEN,
    "cagrad": _SHARED_HIDDEN,
    "varshare": _SINGLE,
    **{m: _SINGLE for m in METHODS if m.startswith("varshare_")},
}


def test_expected_numbers_are_what_the_comments_say():
    assert (_SINGLE, _SHARED_HIDDEN, _HEADS) == (9155, 8960, 1950)
    assert EXPECTED_PARAMS["contextual"] == 13891 and EXPECTED_PARAMS["varshare"] == 192255
    assert EXPECTED_PARAMS["varshare_lora"] == 50995


@pytest.mark.parametrize("method", METHODS)
def test_parameter_count_matches_hand_computation(method):
    cfg = config(method)
    model = build(make_method(method, cfg, _M, 0), cfg)
    assert n_params(model) == EXPECTED_PARAMS[method]
    assert sum(p.numel() for p in shared_parameters(model.networks()).values()) == EXPECTED_SHARED[method]
    out = model(torch.zeros(_M, 3, OBS_DIM))
    assert out.logits.shape == (_M, 3, N_ACTIONS) and out.value.shape == (_M, 3)


# ------------------------------------------------------------------------------------------
# 2. Per-task gradients through replicated shared parameters


def per_task_loss(output) -> torch.Tensor:
    """An arbitrary non-linear per-task loss ``[M]``."""
    return (output.logits.square().sum(-1) + torch.sin(3 * output.value) + output.value.square()).mean(dim=1)


@pytest.mark.parametrize("method", ["hard_sharing", "pcgrad", "cagrad", "contextual", "l2_soft", "varshare"])
def test_replica_gradients_equal_separate_per_task_backward_passes(method):
    M = 4
    cfg = config(method, **{"network.hidden_sizes": [32, 16]})
    m_obj = make_method(method, cfg, M, 0)
    torch.manual_seed(0)
    model = build(m_obj, cfg).double()
    randomise_(model, 1, scale=0.4)
    obs = torch.randn(M, 6, OBS_DIM, generator=gen(2), dtype=torch.float64)
    noise = model.draw_noise(6, gen(3))

    # (a) the algorithms' replicas, one backward of the summed loss
    shared = shared_parameters(model.networks())
    replicas = task_replicas(shared, M)
    assert set(replicas) == set(shared)
    for name, rep in replicas.items():
        assert rep.is_leaf and rep.requires_grad and rep.shape == (M, *shared[name].shape)
    per_task_loss(functional_call(model, replicas, (obs, noise))).sum().backward()
    assert all(p.grad is None for p in shared.values()), "shared gradients must go to the replicas only"
    own = {n: p for n, p in model.named_parameters() if n not in shared}
    own_grads = {n: p.grad.clone() for n, p in own.items() if p.grad is not None}

    # (b) M separate backward passes through the ordinary model
    losses = per_task_loss(model(obs, noise))
    names = list(shared)
    for m in range(M):
        grads = torch.autograd.grad(losses[m], [shared[n] for n in names], retain_graph=True)
        for name, grad in zip(names, grads):
            torch.testing.assert_close(replicas[name].grad[m], grad, rtol=1e-9, atol=1e-12)
    # parameters owned by tasks (heads, residuals, embeddings) get their ordinary gradient
    ordinary = torch.autograd.grad(losses.sum(), list(own.values()), allow_unused=True)
    for (name, p), grad in zip(own.items(), ordinary):
        if grad is None:
            assert name not in own_grads
        else:
            torch.testing.assert_close(own_grads[name], grad, rtol=1e-9, atol=1e-12)
    # the tasks' gradients differ (the test is not trivially about one task)
    first = replicas[names[0]].grad
    assert not torch.allclose(first[0], first[1])


def test_replicas_are_none_when_every_shared_parameter_is_frozen():
    cfg = config("hard_sharing")
    model = build(make_method("hard_sharing", cfg, 3, 0), cfg)
    shared = shared_parameters(model.networks())
    for param in shared.values():
        param.requires_grad_(False)
    assert task_replicas(shared, 3) is None


def test_apply_combined_gradients_places_the_combined_direction_on_each_shared_parameter():
    M = 3
    cfg = config("hard_sharing", **{"network.hidden_sizes": [8, 5]})
    model = build(make_method("hard_sharing", cfg, M, 0), cfg)
    shared = shared_parameters(model.networks())
    g = gen(4)
    replicas = {}
    for i, (name, p) in enumerate(shared.items()):
        replicas[name] = torch.zeros(M, *p.shape, requires_grad=True)
        if i != 1:  # one replica without a gradient counts as zero
            replicas[name].grad = torch.randn(M, *p.shape, generator=g)
    extra = {}
    for i, (name, p) in enumerate(shared.items()):
        if i % 2 == 0:  # an extra-loss gradient already there on some parameters
            extra[name] = torch.randn(p.shape, generator=g)
            p.grad = extra[name].clone()

    weights = torch.tensor([1.0, -2.0, 0.5])
    received = {}

    def weighted(grads):
        received["grads"] = grads
        return (weights[:, None] * grads).sum(0)

    apply_combined_gradients(shared, replicas, weighted)
    assert received["grads"].shape == (M, sum(p.numel() for p in shared.values()))
    for i, (name, p) in enumerate(shared.items()):
        rep_grad = replicas[name].grad if i != 1 else torch.zeros(M, *p.shape)
        expected = torch.einsum("m,m...->...", weights, rep_grad) + extra.get(name, 0)
        torch.testing.assert_close(p.grad, expected, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------
# 3. One PPO iteration of every method: the first minibatch replays the rollout exactly

@pytest.mark.parametrize(
    "method,estimator",
    # mean-weight rollouts replay nothing by design (tests/test_variants.py checks that variant)
    [(m, "flipout") for m in METHODS if not REGISTRY[m].act_with_mean_weights]
    + [("varshare", e) for e in ESTIMATORS if e != "flipout"],
)
def test_one_ppo_iteration_replays_the_rollout_exactly(method, estimator):
    ppo = make_ppo(method, **{"varshare.estimator": estimator})
    before = {n: p.detach().clone() for n, p in ppo.model.named_parameters()}
    for _ in range(2):  # the second iteration rolls out with updated parameters and fresh noise
        stats = ppo.iterate()
        assert stats["ratio_first_minibatch"] == 1.0
        assert stats["approx_kl_first_minibatch"] == 0.0
        assert stats["logprob_replay_error"] < 1e-5
        for key in ("loss", "policy_loss", "value_loss", "entropy", "grad_norm"):
            assert torch.isfinite(torch.tensor(stats[key])), key
    assert ppo.steps_per_task == 2 * 8 * 2
    changed = [n for n, p in ppo.model.named_parameters() if not torch.equal(p, before[n])]
    assert changed, "training did not move any parameter"
    if method == "varshare":
        assert stats["kl"] > 0 and stats["extra_loss"] > 0
        assert "actor.layers.0.mu_weight" in changed and "critic.layers.2.rho_bias" in changed


class SumMultiHead(MultiHead):
    """Multi-head network whose shared gradients go through the per-task path and are summed."""

    name = "sum_multihead_test"  # deliberately not registered
    per_task_gradients = True

    def combine_gradients(self, grads):
        return grads.sum(dim=0)


def test_per_task_path_with_sum_combiner_reproduces_ordinary_backward():
    plain = make_ppo("hard_sharing", seed=5)
    cfg = config("hard_sharing", **PPO_OVERRIDES)
    summed = make_ppo("hard_sharing", seed=5, method=SumMultiHead(cfg, 3, 5))
    for a, b in zip(plain.model.parameters(), summed.model.parameters()):
        assert torch.equal(a, b)  # same init
    start = {n: p.detach().clone() for n, p in plain.model.named_parameters()}
    stats_plain, stats_summed = plain.iterate(), summed.iterate()
    assert stats_plain["loss"] == pytest.approx(stats_summed["loss"], rel=1e-6)
    for (name, a), b in zip(plain.model.named_parameters(), summed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=name)
    moved = max((p - start[n]).abs().max().item() for n, p in plain.model.named_parameters()
                if n in shared_parameters(plain.model.networks()))
    assert moved > 1e-5  # the shared parameters really trained


# ------------------------------------------------------------------------------------------
# 5. L2-soft penalty gradient


def test_l2_soft_penalty_value_and_gradient():
    coef = 0.03
    method = make_method("l2_soft", config("l2_soft", **{"l2_soft.coef": coef, "network.hidden_sizes": [16, 8]}), 3, 0)
    model = build(method, method.config).double()
    layers = [m for m in model.modules() if isinstance(m, ResidualLinear)]
    assert len(layers) == 6
    g = gen(6)
    with torch.no_grad():
        for layer in layers:
            layer.phi_weight.copy_(torch.randn(layer.phi_weight.shape, generator=g, dtype=torch.float64))
            layer.phi_bias.copy_(torch.randn(layer.phi_bias.shape, generator=g, dtype=torch.float64))
    loss, stats = method.extra_loss(model.networks(), 17)
    expected = sum(layer.phi_weight.detach().square().sum() + layer.phi_bias.detach().square().sum() for layer in layers)
    torch.testing.assert_close(loss.detach(), coef * expected, rtol=1e-12, atol=1e-12)
    assert stats["l2_residual_sq"] == pytest.approx(expected.item(), rel=1e-9)
    loss.backward()
    for layer in layers:
        for theta in (layer.theta_weight, layer.theta_bias):
            assert theta.grad is None or torch.count_nonzero(theta.grad) == 0
        for phi in (layer.phi_weight, layer.phi_bias):
            torch.testing.assert_close(phi.grad, 2 * coef * phi.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["independent", "hard_sharing", "contextual", "pcgrad", "cagrad"])
def test_methods_without_extra_loss_return_zero(method):
    m_obj = make_method(method, config(method), 3, 0)
    model = build(m_obj, m_obj.config)
    loss, _ = m_obj.extra_loss(model.networks(), 16)
    assert float(loss) == 0.0
