"""The VarShare variants (SCIENCE.md "Variants"): each variant's defining property against an
independent computation, and two PPO iterations of each with exact noise replay."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.distributions import LogNormal, Normal, kl_divergence

from varshare.config import ConfigError, load_config
from varshare.methods import make_method
from varshare.methods.reptile import reptile_recenter_, reptile_shift_
from varshare.methods.varshare_variants import kl_anneal_factor
from helpers import gen, make_ppo, randomise_
from varshare.algos.ppo import ActorCritic
from varshare.nn import (
    HorseshoeResidualLinear,
    VariationalLoRALinear,
    VariationalResidualLinear,
    affine,
    gaussian_kl,
    shared_parameters,
)
from varshare.nn.horseshoe import expected_log1p_square, lognormal_halfcauchy_kl
from varshare.nn.noise import FactorNoise

OBS_DIM, N_ACTIONS, M = 4, 2, 3
Z = 5.0  # tolerance in standard errors for Monte Carlo comparisons
VARIANTS = (
    "varshare_reptile", "varshare_lora", "varshare_trust_region", "varshare_horseshoe",
    "varshare_shared_noise", "varshare_lrt", "varshare_adaptive_prior", "varshare_kl_anneal",
    "varshare_mean_rollout",
)


def config(method: str, **overrides):
    base = {"suite": "cartpole10", "methods": [method], "seeds": [0], "total_steps_per_task": 1000}
    return load_config(base, {"network.hidden_sizes": [16, 16], **overrides})


def build(method: str, num_tasks: int = M, seed: int = 0, **overrides):
    """``(method, float64 model)``."""
    torch.manual_seed(seed)
    cfg = config(method, **overrides)
    method_obj = make_method(method, cfg, num_tasks, seed)
    return method_obj, ActorCritic(method_obj, OBS_DIM, N_ACTIONS, True, cfg.network).double()


def layer_tensors(model) -> dict[str, torch.Tensor]:
    """Every parameter of ``model`` by name (``actor.layers.0.mu_weight``, ...)."""
    return dict(model.named_parameters())


def outputs(model, obs, noise) -> torch.Tensor:
    """Logits and value of every task, ``[M, B, N_ACTIONS + 1]``."""
    with torch.no_grad():
        out = model(obs, noise)
    return torch.cat([out.logits, out.value.unsqueeze(-1)], dim=-1)


def assert_close64(a, b):
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------
# registry and config


def test_every_variant_is_registered_and_selectable():
    for name in VARIANTS:
        assert make_method(name, config(name), M, 0).name == name


def test_variant_sections_validate_their_bounds():
    message = str(pytest.raises(ConfigError, config, "varshare_reptile",
                                **{"reptile.alpha": 0, "reptile.recenter": "median", "lora.rank": 0,
                                   "kl_anneal.warmup_fraction": 1.5, "horseshoe.tau0": -1,
                                   "trust_region.coef": -0.1}).value)
    for text in ("reptile.alpha", "reptile.recenter", "'per_task', 'mean'", "lora.rank", "kl_anneal.warmup_fraction",
                 "horseshoe.tau0", "trust_region.coef"):
        assert text in message


# ------------------------------------------------------------------------------------------
# Reptile


@pytest.mark.parametrize("with_noise", [False, True])
def test_reptile_shift_keeps_its_own_task_and_moves_the_others(with_noise):
    _, model = build("varshare_reptile")
    randomise_(model, 1)
    obs = torch.randn(M, 5, OBS_DIM, generator=gen(2), dtype=torch.float64)
    noise = model.draw_noise(5, gen(3)) if with_noise else None
    ref = outputs(model, obs, noise)
    for m in range(M):
        shifted = copy.deepcopy(model)
        layers = [x for x in shifted.modules() if isinstance(x, VariationalResidualLinear)]
        assert len(layers) == 6
        for layer in layers:
            reptile_shift_(layer, m, 0.3)
        new = outputs(shifted, obs, noise)
        assert_close64(new[m], ref[m])
        for k in range(M):
            if k != m:
                assert (new[k] - ref[k]).abs().max() > 1e-3, f"task {k} should move when task {m} shifts"


def test_reptile_mean_recenter_preserves_every_task():
    _, model = build("varshare_reptile", **{"reptile.recenter": "mean"})
    randomise_(model, 4)
    obs = torch.randn(M, 5, OBS_DIM, generator=gen(5), dtype=torch.float64)
    noise = model.draw_noise(5, gen(6))
    ref_mean, ref_noisy = outputs(model, obs, None), outputs(model, obs, noise)
    theta_before = model.actor.layers[0].theta_weight.detach().clone()
    for layer in model.modules():
        if isinstance(layer, VariationalResidualLinear):
            reptile_recenter_(layer, 0.5)
    assert_close64(outputs(model, obs, None), ref_mean)
    assert_close64(outputs(model, obs, noise), ref_noisy)
    assert not torch.allclose(model.actor.layers[0].theta_weight, theta_before)


@pytest.mark.parametrize("recenter", ["per_task", "mean"])
def test_reptile_end_update_closed_form(recenter):
    alpha = 0.25
    method, model = build("varshare_reptile", **{"reptile.alpha": alpha, "reptile.recenter": recenter})
    randomise_(model, 7)
    before = {n: p.detach().clone() for n, p in layer_tensors(model).items()}
    method.end_update(model.networks())
    for name, p in layer_tensors(model).items():
        prefix, _, leaf = name.rpartition(".")
        kind = leaf.split("_")[-1]  # weight / bias
        if leaf.startswith("theta"):
            mu = before[f"{prefix}.mu_{kind}"]
            expected = before[name] + alpha * (mu.sum(0) if recenter == "per_task" else mu.mean(0))
        elif leaf.startswith("mu"):
            mu = before[name]
            expected = (1 - alpha) * mu if recenter == "per_task" else mu - alpha * mu.mean(0)
        else:  # ρ untouched
            expected = before[name]
        assert_close64(p.detach(), expected)
    assert method.diagnostics(model.networks())["reptile_shift_norm"] > 0


def test_reptile_carries_adam_state_unchanged():
    """The documented choice: end_update moves parameters in place and leaves Adam's moments and
    step counts exactly as they were, attached to the same parameter tensors."""
    ppo = make_ppo("varshare_reptile", **{"reptile.alpha": 0.5})
    seen = {}
    real_end_update = ppo.method.end_update

    def spy(networks):
        state, model = ppo.optimizer.state, ppo.model
        seen["before"] = {id(p): {k: v.clone() for k, v in state[p].items()} for p in model.parameters()}
        seen["params"] = {n: (p.detach().clone(), p.data_ptr()) for n, p in model.named_parameters()}
        real_end_update(networks)
        seen["after"] = {id(p): {k: v.clone() for k, v in state[p].items()} for p in model.parameters()}

    ppo.method.end_update = spy
    ppo.iterate()
    params = list(ppo.model.parameters())
    assert set(map(id, ppo.optimizer.state)) == set(map(id, params))  # still keyed by the model's tensors
    for p in params:
        before, after = seen["before"][id(p)], seen["after"][id(p)]
        assert set(before) == {"step", "exp_avg", "exp_avg_sq"} and set(after) == set(before)
        for key in before:
            assert torch.equal(before[key], after[key])
    moved = [n for n, p in ppo.model.named_parameters() if not torch.equal(p, seen["params"][n][0])]
    assert moved and all(("theta" in n or "mu" in n) for n in moved)
    assert all(p.data_ptr() == seen["params"][n][1] for n, p in ppo.model.named_parameters())


# ------------------------------------------------------------------------------------------
# LoRA


def test_lora_parameter_counts_and_layout():
    rank = 3
    _, model = build("varshare_lora", **{"lora.rank": rank})
    layers = [(n, x) for n, x in model.named_modules() if isinstance(x, VariationalLoRALinear)]
    assert len(layers) == 6
    expected_per_task = 0
    for _, layer in layers:
        i, o = layer.in_features, layer.out_features
        assert layer.parameter_count_per_task() == (o * i + o, rank * (i + o) * 2)
        assert layer.mu_A.shape == layer.rho_A.shape == (M, rank, i)
        assert layer.mu_B.shape == layer.rho_B.shape == (M, o, rank)
        assert torch.count_nonzero(layer.mu_B) == 0 and torch.count_nonzero(layer.mu_A) > 0
        expected_per_task += rank * (i + o) * 2
    shared = sum(p.numel() for p in shared_parameters(model.networks()).values())
    assert sum(p.numel() for p in model.parameters()) == shared + M * expected_per_task
    noise = layers[0][1].draw_noise(5, gen(0))
    assert isinstance(noise, FactorNoise) and noise.example_fields == ()  # one draw per task


def test_lora_starts_at_zero_residual_and_matches_explicit_weights():
    _, model = build("varshare_lora")
    layer = model.actor.layers[1]
    x = torch.randn(M, 6, layer.in_features, generator=gen(8), dtype=torch.float64)
    base = affine(x, layer.theta_weight, layer.theta_bias)
    assert torch.equal(layer(x, None), base)  # φ = μ_B μ_A = 0 at init
    randomise_(model, 9)
    noise = layer.draw_noise(6, gen(10))
    for nz in (None, noise):
        A, B = (layer.mu_A, layer.mu_B) if nz is None else (
            layer.mu_A + layer.sigma_A * nz.eps_A, layer.mu_B + layer.sigma_B * nz.eps_B)
        weight = layer.theta_weight + torch.einsum("mor,mri->moi", B, A)
        expected = torch.einsum("mbi,moi->mbo", x, weight) + layer.theta_bias
        assert_close64(layer(x, nz), expected)
    # per-example full draws (evaluation): example b uses its own A and B
    sample = layer.draw_weight_samples(6, gen(11))
    y = layer(x, sample)
    for b in (0, 5):
        A = layer.mu_A + layer.sigma_A * sample.eps_A[:, b]
        B = layer.mu_B + layer.sigma_B * sample.eps_B[:, b]
        expected = torch.einsum("mi,moi->mo", x[:, b], layer.theta_weight + B @ A) + layer.theta_bias
        assert_close64(y[:, b], expected)


def test_lora_kl_is_kl_of_a_plus_kl_of_b():
    sigma_prior = 0.3
    _, model = build("varshare_lora", **{"varshare.sigma_prior": sigma_prior})
    randomise_(model, 12)
    total = 0
    for layer in (x for x in model.modules() if isinstance(x, VariationalLoRALinear)):
        per_task = layer.kl_per_task()
        for m in range(M):
            expected = sum(
                kl_divergence(Normal(mu[m], sigma[m]), Normal(torch.zeros_like(mu[m]), sigma_prior)).sum()
                for mu, sigma in ((layer.mu_A, layer.sigma_A), (layer.mu_B, layer.sigma_B))
            )
            assert_close64(per_task[m], expected)
        total = total + per_task.sum()
    method = make_method("varshare_lora", config("varshare_lora", **{"varshare.sigma_prior": sigma_prior}), M, 0)
    loss, stats = method.extra_loss(model.networks(), 17)
    assert_close64(loss, 1.0 * total / 17)
    assert stats["kl"] == pytest.approx(total.item(), rel=1e-12)


# ------------------------------------------------------------------------------------------
# Trust region


def test_trust_region_kl_zero_at_snapshot_positive_after_change_and_matches_torch():
    coef = 0.7
    method, model = build("varshare_trust_region", **{"trust_region.coef": coef})
    randomise_(model, 13)
    networks = model.networks()
    base = make_method("varshare", config("varshare"), M, 0)
    method.begin_update(networks, 0.0)
    kl = method.trust_region_kl(networks)
    assert kl.dim() == 0 and kl.item() == 0.0  # exactly zero at the snapshot
    loss, stats = method.extra_loss(networks, 11)
    assert_close64(loss, base.extra_loss(networks, 11)[0])
    assert stats["trust_region_kl"] == 0.0
    loss.backward()  # the trust region adds no gradient at the snapshot
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    base.extra_loss(networks, 11)[0].backward()
    for n, p in model.named_parameters():
        if p.grad is not None:
            assert_close64(grads[n], p.grad)

    old = {n: p.detach().clone() for n, p in layer_tensors(model).items()}
    with torch.no_grad():
        for n, p in layer_tensors(model).items():
            if "mu" in n or "rho" in n:
                p.add_(torch.randn(p.shape, generator=gen(len(n)), dtype=p.dtype) * 0.1)
    kl = method.trust_region_kl(networks)
    assert kl > 0
    expected = torch.zeros(M, dtype=torch.float64)
    for name, layer in model.named_modules():
        if isinstance(layer, VariationalResidualLinear):
            for kind in ("weight", "bias"):
                q_new = Normal(getattr(layer, f"mu_{kind}"), getattr(layer, f"sigma_{kind}"))
                q_old = Normal(old[f"{name}.mu_{kind}"], torch.nn.functional.softplus(old[f"{name}.rho_{kind}"]))
                expected += kl_divergence(q_new, q_old).flatten(1).sum(1)
    assert_close64(kl, expected.sum())
    loss, stats = method.extra_loss(networks, 11)
    assert_close64(loss, base.extra_loss(networks, 11)[0] + coef * expected.sum() / 11)
    assert stats["trust_region_kl"] == pytest.approx(expected.sum().item(), rel=1e-12)


# ------------------------------------------------------------------------------------------
# Horseshoe


def test_gauss_hermite_expectation_matches_fine_quadrature():
    loc = torch.tensor([0.0, -2.0, 1.5, 0.3], dtype=torch.float64)
    scale = torch.tensor([0.1, 1.0, 0.5, 2.0], dtype=torch.float64)
    z = torch.linspace(-14, 14, 400_001, dtype=torch.float64)
    density = torch.exp(-z.square() / 2) / math.sqrt(2 * math.pi)
    fine = (torch.nn.functional.softplus(2 * (loc[:, None] + scale[:, None] * z)) * density).sum(1) * (z[1] - z[0])
    torch.testing.assert_close(expected_log1p_square(loc, scale), fine, rtol=1e-6, atol=1e-6)


def test_gauss_hermite_expectation_has_exact_gradients():
    loc = torch.tensor([0.0, -2.0, 1.5], dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([0.1, 1.0, 0.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(expected_log1p_square, (loc, scale))


def test_lognormal_to_half_cauchy_kl_matches_monte_carlo():
    torch.manual_seed(1)
    loc = torch.tensor([0.0, -1.5, 1.0, 0.4], dtype=torch.float64)
    scale = torch.tensor([0.13, 0.7, 0.3, 1.5], dtype=torch.float64)
    q = LogNormal(loc, scale)
    lam = q.sample((400_000,))
    sample = q.log_prob(lam) - (math.log(2 / math.pi) - torch.log1p(lam.square()))
    estimate, stderr = sample.mean(0), sample.std(0) / math.sqrt(sample.shape[0])
    analytic = lognormal_halfcauchy_kl(loc, scale)
    assert ((analytic - estimate).abs() < Z * stderr).all(), (analytic, estimate, stderr)
    assert (stderr < 3e-3).all()


def test_horseshoe_kl_matches_monte_carlo():
    tau0 = 0.3
    torch.manual_seed(0)
    layer = HorseshoeResidualLinear(3, 2, 2, tau0=tau0).double()
    g = gen(14)
    with torch.no_grad():
        layer.mu_weight.copy_(torch.randn(layer.mu_weight.shape, generator=g, dtype=torch.float64) * 0.3)
        layer.mu_bias.copy_(torch.randn(layer.mu_bias.shape, generator=g, dtype=torch.float64) * 0.3)
        layer.rho_weight.copy_(torch.rand(layer.rho_weight.shape, generator=g, dtype=torch.float64) * 1.5 - 2.0)
        layer.rho_bias.copy_(torch.rand(layer.rho_bias.shape, generator=g, dtype=torch.float64) * 1.5 - 2.0)
        layer.scale_loc.copy_(torch.randn(layer.scale_loc.shape, generator=g, dtype=torch.float64) * 0.5)
        layer.scale_rho.copy_(torch.rand(layer.scale_rho.shape, generator=g, dtype=torch.float64) - 1.0)
        analytic = layer.kl_per_task()

        S = 400_000
        loc, s = layer.scale_loc, layer.scale_sigma
        u = loc + s * torch.randn((S, *loc.shape), generator=g, dtype=torch.float64)  # log λ: [S, M, out]
        lam = u.exp()
        q_w, q_b = Normal(layer.mu_weight, layer.sigma_weight), Normal(layer.mu_bias, layer.sigma_bias)
        phi_w, phi_b = q_w.sample((S,)), q_b.sample((S,))
        log_ratio_w = q_w.log_prob(phi_w) - Normal(0.0, tau0 * lam.unsqueeze(-1)).log_prob(phi_w)
        log_ratio_b = q_b.log_prob(phi_b) - Normal(0.0, tau0 * lam).log_prob(phi_b)
        log_q_lam = LogNormal(loc, s).log_prob(lam)
        log_p_lam = math.log(2 / math.pi) - torch.log1p(lam.square())
        sample = log_ratio_w.sum(-1) + log_ratio_b + log_q_lam - log_p_lam  # [S, M, out]
        per_task = sample.sum(-1)  # [S, M]
    estimate, stderr = per_task.mean(0), per_task.std(0) / math.sqrt(S)
    assert ((analytic - estimate).abs() < Z * stderr).all(), (analytic, estimate, stderr)
    assert (stderr < 0.02 * analytic.abs()).all()  # the check has teeth


def test_horseshoe_method_uses_horseshoe_layers_and_kl():
    method, model = build("varshare_horseshoe", **{"horseshoe.tau0": 0.2})
    randomise_(model, 15)
    layers = [x for x in model.modules() if isinstance(x, HorseshoeResidualLinear)]
    assert len(layers) == 6
    assert all(layer.tau0 == 0.2 for layer in layers)
    loss, stats = method.extra_loss(model.networks(), 9)
    total = sum(layer.kl_per_task().sum() for layer in layers)
    assert_close64(loss, total / 9)
    loss.backward()
    assert all(layer.scale_loc.grad is not None and layer.scale_loc.grad.abs().sum() > 0 for layer in layers)
    names = {n for n, x in model.named_modules() if isinstance(x, HorseshoeResidualLinear)}
    assert set(method.task_diagnostics(model.networks())) >= {f"prior_std_mean/{n}" for n in names}
    assert set(method.diagnostics(model.networks())) >= {f"lambda_median_mean/{n}" for n in names}


# ------------------------------------------------------------------------------------------
# Estimators, adaptive prior, KL annealing


@pytest.mark.parametrize("method,estimator",
                         [("varshare_shared_noise", "shared_noise"), ("varshare_lrt", "local_reparam")])
def test_estimator_variants_pick_their_estimator(method, estimator):
    _, model = build(method, **{"varshare.estimator": "flipout"})
    layers = [x for x in model.modules() if isinstance(x, VariationalResidualLinear)]
    assert len(layers) == 6 and all(layer.estimator == estimator for layer in layers)


def adaptive_layers(model) -> dict[str, VariationalResidualLinear]:
    return {n: x for n, x in model.named_modules() if isinstance(x, VariationalResidualLinear)}


def test_adaptive_prior_gradient_matches_closed_form():
    beta, n_data = 0.6, 13
    method, model = build("varshare_adaptive_prior", **{"varshare.beta": beta, "varshare.sigma_prior": 0.2})
    layers = adaptive_layers(model)
    assert len(layers) == 6
    assert all(layer.log_prior_std.item() == pytest.approx(math.log(0.2)) for layer in layers.values())
    randomise_(model, 16)
    with torch.no_grad():  # one learned prior per layer, each away from the initial value
        for index, layer in enumerate(layers.values()):
            layer.log_prior_std.copy_(torch.tensor(math.log(0.2) + 0.3 * (-1) ** index))
    loss, stats = method.extra_loss(model.networks(), n_data)
    reference = 0
    for layer in layers.values():
        sigma_p = layer.log_prior_std.detach().exp()
        reference = reference + gaussian_kl(layer.mu_weight, layer.sigma_weight, sigma_p) + \
            gaussian_kl(layer.mu_bias, layer.sigma_bias, sigma_p)
    assert_close64(loss, beta / n_data * reference)
    loss.backward()
    for layer in layers.values():
        sigma_p = layer.log_prior_std.detach().exp()
        second_moment = torch.cat([
            (layer.sigma_weight.square() + layer.mu_weight.square()).flatten(),
            (layer.sigma_bias.square() + layer.mu_bias.square()).flatten(),
        ]).detach()
        d_kl_d_sigma_p = (1 / sigma_p - second_moment / sigma_p**3).sum()
        expected = beta / n_data * d_kl_d_sigma_p * sigma_p  # chain rule through σ_p = exp(log σ_p)
        assert_close64(layer.log_prior_std.grad, expected)
    assert all(f"sigma_prior/{n}" in method.diagnostics(model.networks()) for n in
               (f"{net}.layers.{i}" for net in ("actor", "critic") for i in range(3)))
    assert "log_prior_std" not in "".join(shared_parameters(model.networks()))  # not shared weight


def test_adaptive_prior_parameters_are_trained_by_ppo():
    ppo = make_ppo("varshare_adaptive_prior")
    priors = {n: layer.log_prior_std for n, layer in adaptive_layers(ppo.model).items()}
    optimized = {id(p) for group in ppo.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in optimized for p in priors.values())
    before = {k: p.item() for k, p in priors.items()}
    ppo.iterate()
    assert all(p.item() != before[k] for k, p in priors.items())


def test_kl_anneal_schedule():
    assert [kl_anneal_factor(p, 0.2) for p in (0.0, 0.05, 0.1, 0.2, 0.5, 1.0)] == [0.0, 0.25, 0.5, 1.0, 1.0, 1.0]
    assert kl_anneal_factor(0.3, 1.0) == 0.3
    beta = 2.0
    method, model = build("varshare_kl_anneal", **{"varshare.beta": beta, "kl_anneal.warmup_fraction": 0.4})
    randomise_(model, 17)
    networks = model.networks()
    full = make_method("varshare", config("varshare", **{"varshare.beta": beta}), M, 0).extra_loss(networks, 5)[0]
    assert float(method.extra_loss(networks, 5)[0].detach()) == 0.0  # before any update phase: progress 0
    for progress, factor in ((0.0, 0.0), (0.1, 0.25), (0.3, 0.75), (0.4, 1.0), (0.9, 1.0)):
        method.begin_update(networks, progress)
        loss, stats = method.extra_loss(networks, 5)
        assert_close64(loss, factor * full)
        assert stats["beta"] == pytest.approx(factor * beta) and method.diagnostics(networks)["kl_beta"] == stats["beta"]
    # inside PPO: 10 iterations, the second begins at progress 0.1 → β = 0.5 with warmup 0.2
    ppo = make_ppo("varshare_kl_anneal")
    assert ppo.num_iterations == 10
    assert ppo.iterate()["beta"] == 0.0
    assert ppo.iterate()["beta"] == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------
# Mean-weight rollouts


def test_mean_rollout_acts_with_mean_weights_and_updates_with_noise():
    ppo = make_ppo("varshare_mean_rollout")
    randomise_(ppo.model, 18)
    with torch.no_grad():  # keep the policy sane but σ non-trivial (≈ 0.3-1)
        for layer in ppo.model.modules():
            if isinstance(layer, VariationalResidualLinear):
                layer.mu_weight.zero_()
                layer.mu_bias.zero_()
                layer.theta_weight.mul_(0.5)
    calls = []
    forward = ppo.model.forward

    def spy(obs, noise=None):
        calls.append((phase[0], noise is None))
        return forward(obs, noise)

    phase = ["rollout"]
    ppo.model.forward = spy
    rollout = ppo.collect_rollout()
    assert rollout.mean_weights and rollout.noise is None
    assert calls and all(no_noise for _, no_noise in calls)
    phase[0] = "update"
    calls.clear()
    stats = ppo.update(rollout)
    update_calls = [no_noise for p, no_noise in calls if p == "update"]
    assert update_calls and not any(update_calls[len(update_calls) // 2:])  # training steps carry noise
    assert stats["ratio_first_minibatch"] != 1.0 and stats["approx_kl_first_minibatch"] > 0
    for _ in range(2):
        stats = ppo.iterate()
        assert all(math.isfinite(stats[k]) for k in ("loss", "policy_loss", "value_loss", "kl"))


# ------------------------------------------------------------------------------------------
# Two PPO iterations of every variant: the first minibatch replays the rollout exactly

@pytest.mark.parametrize("method", [v for v in VARIANTS if v != "varshare_mean_rollout"])
def test_two_ppo_iterations_replay_the_rollout_exactly(method):
    ppo = make_ppo(method)
    before = {n: p.detach().clone() for n, p in ppo.model.named_parameters()}
    for _ in range(2):
        stats = ppo.iterate()
        assert stats["ratio_first_minibatch"] == 1.0
        assert stats["approx_kl_first_minibatch"] == 0.0
        assert stats["logprob_replay_error"] < 1e-5
        for key in ("loss", "policy_loss", "value_loss", "entropy", "grad_norm", "kl"):
            assert math.isfinite(stats[key]), key
        assert stats["kl"] > 0
    changed = [n for n, p in ppo.model.named_parameters() if not torch.equal(p, before[n])]
    assert any("mu" in n for n in changed), "the residuals did not train"
    if method == "varshare_trust_region":
        assert stats["trust_region_kl"] > 0
