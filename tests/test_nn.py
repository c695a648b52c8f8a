"""Multi-task layers and networks against independent computations: closed-form KL vs
``torch.distributions``, Flipout / shared-noise / local-reparameterisation moments vs closed forms
and explicit per-example weight sampling, noise slicing, KL gradients, task isolation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence
from torch.func import functional_call

from varshare.algos.ppo import ActorCritic
from varshare.config import METHODS, load_config
from varshare.methods import make_method
from helpers import gen, randomise_
from varshare.nn import (
    ESTIMATORS,
    ResidualLinear,
    VariationalResidualLinear,
    affine,
    gaussian_kl,
    shared_parameters,
    slice_examples,
)
from varshare.nn.noise import FlipoutNoise, LocalReparamNoise, SharedWeightNoise

OBS_DIM, N_ACTIONS, M = 4, 2, 3
Z = 5.0  # tolerance in standard errors for Monte Carlo comparisons


def config(method: str, **overrides):
    base = {"suite": "cartpole10", "methods": [method], "seeds": [0], "total_steps_per_task": 1000}
    return load_config(base, {"network.hidden_sizes": [16, 16], **overrides})


def build(method: str, num_tasks: int = M, seed: int = 0, **overrides) -> ActorCritic:
    torch.manual_seed(seed)
    cfg = config(method, **overrides)
    return ActorCritic(make_method(method, cfg, num_tasks, seed), OBS_DIM, N_ACTIONS, True, cfg.network)


# ------------------------------------------------------------------------------------------
# 1. KL


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 4, 6), (1,)])
def test_gaussian_kl_matches_torch_distributions(shape):
    g = gen(sum(shape))
    mu = torch.randn(shape, generator=g, dtype=torch.float64)
    sigma = torch.rand(shape, generator=g, dtype=torch.float64) * 2 + 0.01
    for sigma_prior in (0.1, 1.0, 2.5):
        expected = kl_divergence(Normal(mu, sigma), Normal(torch.zeros_like(mu), torch.full_like(mu, sigma_prior))).sum()
        torch.testing.assert_close(gaussian_kl(mu, sigma, sigma_prior), expected, rtol=1e-12, atol=1e-12)
    # a tensor prior std, broadcast to mu (per last-axis element) and full shape
    prior_last = torch.rand(shape[-1:], generator=g, dtype=torch.float64) + 0.05
    prior_full = torch.rand(shape, generator=g, dtype=torch.float64) + 0.05
    for sigma_prior in (prior_last, prior_full, torch.tensor(0.3, dtype=torch.float64)):
        p = Normal(torch.zeros_like(mu), sigma_prior.expand_as(mu))
        expected = kl_divergence(Normal(mu, sigma), p).sum()
        torch.testing.assert_close(gaussian_kl(mu, sigma, sigma_prior), expected, rtol=1e-12, atol=1e-12)


def test_gaussian_kl_is_zero_at_the_prior_and_positive_elsewhere():
    sigma = torch.full((4, 3), 0.2, dtype=torch.float64)
    assert gaussian_kl(torch.zeros(4, 3, dtype=torch.float64), sigma, 0.2).abs().item() < 1e-14
    assert gaussian_kl(torch.full((4, 3), 0.01, dtype=torch.float64), sigma, 0.2).item() > 0


def test_layer_kl_per_task_matches_torch_distributions():
    prior = 0.3
    layer = VariationalResidualLinear(5, 4, 3, prior_std=prior).double()
    randomise_(layer, 1)
    p = Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(prior, dtype=torch.float64))
    for m in range(3):
        w = kl_divergence(Normal(layer.mu_weight[m], F.softplus(layer.rho_weight[m])), p).sum()
        b = kl_divergence(Normal(layer.mu_bias[m], F.softplus(layer.rho_bias[m])), p).sum()
        torch.testing.assert_close(layer.kl_per_task()[m], w + b, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------
# 2-3. Stochastic estimators: moments vs closed form and explicit per-example sampling

IN, OUT, B, S = 5, 4, 3, 20_000


def random_layer(estimator: str, seed: int = 0) -> tuple[VariationalResidualLinear, torch.Tensor]:
    layer = VariationalResidualLinear(IN, OUT, 2, estimator=estimator).double()
    randomise_(layer, seed)
    g = gen(seed + 100)
    # inputs of varied magnitude so that the x_i² weighting of the variance matters
    x = torch.randn(2, B, IN, generator=g, dtype=torch.float64) * torch.tensor([0.3, 1.0, 2.0, 0.5, 1.5], dtype=torch.float64)
    return layer, x


def tiled(layer: VariationalResidualLinear, copies: int) -> VariationalResidualLinear:
    """The same layer with its tasks repeated ``copies`` times on the task axis (copy s, task m at
    index s·M + m): one forward pass then yields ``copies`` independent draws of the noise."""
    big = VariationalResidualLinear(layer.in_features, layer.out_features, layer.num_tasks * copies,
                                    estimator=layer.estimator).double()
    with torch.no_grad():
        big.theta_weight.copy_(layer.theta_weight)
        big.theta_bias.copy_(layer.theta_bias)
        for name in ("mu_weight", "mu_bias", "rho_weight", "rho_bias"):
            src = getattr(layer, name)
            getattr(big, name).copy_(src.repeat(copies, *([1] * (src.dim() - 1))))
    return big


def layer_samples(layer, x, copies: int, seed: int) -> torch.Tensor:
    """``[copies, M, B, out]`` outputs of independent noise draws (the layer's own noise functions)."""
    big = tiled(layer, copies)
    noise = big.draw_noise(x.shape[1], gen(seed))
    with torch.no_grad():
        y = big(x.repeat(copies, 1, 1), noise)
    return y.view(copies, layer.num_tasks, x.shape[1], layer.out_features)


def closed_form(layer, x) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``x(θ+μ)ᵀ + θ_b+μ_b`` and variance ``Σ_i x_i² σ_ji² + σ_bj²`` per output ``[M, B, out]``."""
    with torch.no_grad():
        W = layer.theta_weight + layer.mu_weight
        b = layer.theta_bias + layer.mu_bias
        mean = torch.einsum("mbi,moi->mbo", x, W) + b[:, None, :]
        var = torch.einsum("mbi,moi->mbo", x.square(), F.softplus(layer.rho_weight).square())
        var = var + F.softplus(layer.rho_bias).square()[:, None, :]
    return mean, var


def explicit_samples(layer, x, copies: int, seed: int) -> torch.Tensor:
    """Per-example weights ``W_b ~ N(θ+μ, σ²)``, drawn independently per example and copy."""
    g = gen(seed)
    with torch.no_grad():
        Mt, Bt = x.shape[:2]
        W = layer.theta_weight + layer.mu_weight
        b = layer.theta_bias + layer.mu_bias
        sw, sb = F.softplus(layer.rho_weight), F.softplus(layer.rho_bias)
        Wb = W[None, :, None] + sw[None, :, None] * torch.randn(copies, Mt, Bt, *W.shape[1:], generator=g, dtype=x.dtype)
        bb = b[None, :, None] + sb[None, :, None] * torch.randn(copies, Mt, Bt, b.shape[-1], generator=g, dtype=x.dtype)
        return torch.einsum("mbi,smboi->smbo", x, Wb) + bb


def assert_moments(samples: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
    n = samples.shape[0]
    m_hat, v_hat = samples.mean(0), samples.var(0)
    mean_err = (m_hat - mean).abs() / (var / n).sqrt()
    var_err = (v_hat - var).abs() / (var * math.sqrt(2 / (n - 1)))  # outputs are Gaussian
    assert mean_err.max() < Z, f"mean off by {mean_err.max():.2f} SE"
    assert var_err.max() < Z, f"variance off by {var_err.max():.2f} SE"


def assert_same_moments(a: torch.Tensor, b: torch.Tensor) -> None:
    n = a.shape[0]
    va, vb = a.var(0), b.var(0)
    mean_err = (a.mean(0) - b.mean(0)).abs() / ((va + vb) / n).sqrt()
    var_err = (va - vb).abs() / (math.sqrt(2 / (n - 1)) * (va.square() + vb.square()).sqrt())
    assert mean_err.max() < Z, f"means differ by {mean_err.max():.2f} SE"
    assert var_err.max() < Z, f"variances differ by {var_err.max():.2f} SE"


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_output_moments_match_closed_form_and_explicit_per_example_sampling(estimator):
    layer, x = random_layer(estimator, seed=3)
    samples = layer_samples(layer, x, S, seed=11)
    mean, var = closed_form(layer, x)
    if estimator == "local_reparam":
        var = var + 1e-8
    assert_moments(samples, mean, var)
    explicit = explicit_samples(layer, x, S, seed=12)
    assert_moments(explicit, mean, var)  # the reference itself is right
    assert_same_moments(samples, explicit)


@pytest.mark.parametrize("estimator", ["flipout", "local_reparam"])
def test_examples_of_a_task_are_decorrelated(estimator):
    """Flipout's per-example signs (and LRT's per-example ξ) make two examples' perturbations
    uncorrelated, as independent per-example weights would; shared noise correlates them."""
    layer, x = random_layer(estimator, seed=4)
    y = layer_samples(layer, x, S, seed=13)
    d = y - y.mean(0)
    prod = d[:, :, 0] * d[:, :, 1]  # examples 0 and 1 of each task, every output
    z = prod.mean(0).abs() / (prod.std(0) / math.sqrt(S))
    assert z.max() < Z

    shared, _ = random_layer("shared_noise", seed=4)
    ys = layer_samples(shared, x, S, seed=13)
    ds = ys - ys.mean(0)
    cov = (ds[:, :, 0] * ds[:, :, 1]).mean(0)
    expected = torch.einsum("mi,mi,moi->mo", x[:, 0], x[:, 1], F.softplus(shared.rho_weight).square())
    expected = expected + F.softplus(shared.rho_bias).square()
    torch.testing.assert_close(cov, expected.detach(), rtol=0.1, atol=0.05)
    assert expected.abs().max() > 0.3  # the correlation is really there to detect


def test_flipout_equals_explicit_per_example_weights_for_one_draw():
    layer, x = random_layer("flipout", seed=5)
    noise = layer.draw_noise(B, gen(21))
    assert isinstance(noise, FlipoutNoise)
    assert noise.eps_weight.shape == (2, OUT, IN) and noise.eps_bias.shape == (2, OUT)
    assert noise.sign_in.shape == (2, B, IN) and noise.sign_out.shape == (2, B, OUT)
    assert set(noise.sign_in.unique().tolist()) == {-1.0, 1.0}
    with torch.no_grad():
        y = layer(x, noise)
        sw, sb = F.softplus(layer.rho_weight), F.softplus(layer.rho_bias)
        s_in, s_out = noise.sign_in.double(), noise.sign_out.double()
        # [M, B, out, in]: W_b = θ + μ + (σ∘ε)∘(s_out s_inᵀ)
        Wb = (layer.theta_weight + layer.mu_weight)[:, None] + (sw * noise.eps_weight)[:, None] * (
            s_out[..., :, None] * s_in[..., None, :]
        )
        bb = (layer.theta_bias + layer.mu_bias)[:, None] + (sb * noise.eps_bias)[:, None] * s_out
        expected = torch.stack(
            [torch.stack([Wb[m, b] @ x[m, b] + bb[m, b] for b in range(B)]) for m in range(2)]
        )
    torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-6)
    # and the weights of different examples really differ (signs are per example)
    assert not torch.allclose(Wb[:, 0], Wb[:, 1])


def test_shared_noise_uses_one_weight_for_every_example_of_a_task():
    layer, x = random_layer("shared_noise", seed=6)
    noise = layer.draw_noise(B, gen(22))
    assert isinstance(noise, SharedWeightNoise)
    with torch.no_grad():
        y = layer(x, noise)
        W = layer.theta_weight + layer.mu_weight + F.softplus(layer.rho_weight) * noise.eps_weight
        b = layer.theta_bias + layer.mu_bias + F.softplus(layer.rho_bias) * noise.eps_bias
        expected = torch.einsum("mbi,moi->mbo", x, W) + b[:, None]
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)
    # one weight per task: the map x ↦ y is affine with the same W for every example
    with torch.no_grad():
        x2 = x.clone()
        x2[:, 1] = x[:, 0]
        y2 = layer(x2, noise)
    torch.testing.assert_close(y2[:, 1], y2[:, 0], rtol=0, atol=0)


def test_local_reparam_output_for_one_draw():
    layer, x = random_layer("local_reparam", seed=7)
    noise = layer.draw_noise(B, gen(23))
    assert isinstance(noise, LocalReparamNoise) and noise.xi.shape == (2, B, OUT)
    mean, var = closed_form(layer, x)
    with torch.no_grad():
        y = layer(x, noise)
    torch.testing.assert_close(y, mean + (var + 1e-8).sqrt() * noise.xi, rtol=1e-10, atol=1e-10)


def test_noise_draws_depend_only_on_the_generator():
    layer, _ = random_layer("flipout", seed=8)
    a, b, c = layer.draw_noise(B, gen(1)), layer.draw_noise(B, gen(1)), layer.draw_noise(B, gen(3))
    for name in ("eps_weight", "eps_bias", "sign_in", "sign_out"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.eps_weight, c.eps_weight)


# ------------------------------------------------------------------------------------------
# 4. Mean weights, slicing a batch's noise


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_no_noise_gives_the_mean_weight_output(estimator):
    layer, x = random_layer(estimator, seed=9)
    mean, _ = closed_form(layer, x)
    with torch.no_grad():
        y = layer(x, None)
    torch.testing.assert_close(y, mean, rtol=1e-12, atol=1e-12)
    assert torch.equal(layer(x, None), layer(x, None))


@pytest.mark.parametrize("method,estimator", [("varshare", e) for e in ESTIMATORS] + [("varshare_lora", "flipout")])
def test_a_slice_of_a_batch_noise_gives_that_slice_of_the_batch_output(method, estimator):
    """What PPO's rollout relies on: one weight sample drawn for T·N examples, sliced per step,
    computes each step's examples exactly as the whole batch does."""
    model = build(method, **{"varshare.estimator": estimator}).double()
    randomise_(model, 12)
    obs = torch.randn(M, 6, OBS_DIM, generator=gen(26), dtype=torch.float64)
    noise = model.draw_noise(6, gen(27))
    with torch.no_grad():
        whole = model(obs, noise)
        parts = [model(obs[:, a:b], slice_examples(noise, a, b)) for a, b in ((0, 2), (2, 5), (5, 6))]
        mean = model(obs, None)
    torch.testing.assert_close(torch.cat([p.logits for p in parts], dim=1), whole.logits, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.cat([p.value for p in parts], dim=1), whole.value, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(whole.logits, mean.logits)  # noise really enters


def test_residual_linear_mean():
    layer = ResidualLinear(IN, OUT, 2).double()
    randomise_(layer, 11)
    x = torch.randn(2, B, IN, generator=gen(25), dtype=torch.float64)
    with torch.no_grad():
        expected = torch.einsum("mbi,moi->mbo", x, layer.theta_weight + layer.phi_weight)
        expected = expected + (layer.theta_bias + layer.phi_bias)[:, None]
        y = layer(x, None)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    assert layer.draw_noise(B, gen(1)) is None


# ------------------------------------------------------------------------------------------
# 5. KL gradient asymmetry


def test_kl_gradients_theta_none_mu_and_rho_closed_form():
    beta, prior, n_data = 0.7, 0.2, 37
    cfg = config("varshare", **{"varshare.beta": beta, "varshare.sigma_prior": prior})
    method = make_method("varshare", cfg, M, 0)
    model = ActorCritic(method, OBS_DIM, N_ACTIONS, True, cfg.network).double()
    randomise_(model, 13)
    loss, stats = method.extra_loss(model.networks(), n_data)
    loss.backward()

    layers = [m for m in model.modules() if isinstance(m, VariationalResidualLinear)]
    assert len(layers) == 6  # 3 in the actor (head included), 3 in the critic
    kl = 0.0
    for layer in layers:
        for theta in (layer.theta_weight, layer.theta_bias):
            assert theta.grad is None or torch.count_nonzero(theta.grad) == 0
        for mu_param, rho_param in ((layer.mu_weight, layer.rho_weight), (layer.mu_bias, layer.rho_bias)):
            mu, rho = mu_param.detach(), rho_param.detach()
            sigma = F.softplus(rho)
            torch.testing.assert_close(mu_param.grad, beta * mu / prior**2 / n_data, rtol=1e-10, atol=1e-12)
            d_sigma = -1 / sigma + sigma / prior**2  # dKL/dσ
            torch.testing.assert_close(rho_param.grad, beta * d_sigma * torch.sigmoid(rho) / n_data,
                                       rtol=1e-10, atol=1e-12)
            p = Normal(torch.zeros_like(sigma), torch.full_like(sigma, prior))
            kl = kl + kl_divergence(Normal(mu.detach(), sigma), p).sum()
    torch.testing.assert_close(loss.detach(), beta * kl / n_data, rtol=1e-10, atol=1e-10)
    assert stats["kl"] == pytest.approx(kl.item(), rel=1e-9)


# ------------------------------------------------------------------------------------------
# 6. Task-replicated shared parameters


def test_affine_with_replicated_weights_equals_shared():
    g = gen(28)
    x = torch.randn(4, 5, 3, generator=g, dtype=torch.float64)
    W = torch.randn(6, 3, generator=g, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    shared = affine(x, W, b)
    torch.testing.assert_close(shared, x @ W.T + b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(affine(x, W.expand(4, 6, 3), b.expand(4, 6)), shared, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(affine(x, W.repeat(4, 1, 1), b.repeat(4, 1)), shared, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["hard_sharing", "contextual", "l2_soft", "varshare"])
def test_functional_call_with_replicated_shared_parameters_gives_same_outputs(method):
    model = build(method)
    randomise_(model, 14)
    shared = shared_parameters(model.networks())
    assert shared, "method should have shared parameters"
    assert set(shared) <= dict(model.named_parameters()).keys()  # functional_call's names
    replicas = {n: p.detach().unsqueeze(0).repeat(M, *([1] * p.dim())) for n, p in shared.items()}
    obs = torch.randn(M, 5, OBS_DIM, generator=gen(29))
    g = gen(30)
    for noise in (None, model.draw_noise(5, g)):
        with torch.no_grad():
            ref = model(obs, noise)
            out = functional_call(model, replicas, (obs, noise))
        torch.testing.assert_close(out.logits, ref.logits, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out.value, ref.value, rtol=1e-5, atol=1e-6)
    # changing task 0's replicas affects only task 0
    for replica in replicas.values():
        replica[0] += 0.1 * torch.randn(replica[0].shape, generator=g)
    with torch.no_grad():
        out = functional_call(model, replicas, (obs, None))
        ref = model(obs, None)
    for new, old in ((out.logits, ref.logits), (out.value, ref.value)):
        assert not torch.allclose(new[0], old[0])
        torch.testing.assert_close(new[1:], old[1:], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------
# 7. Contextual embedding


def test_contextual_embedding_is_normalised_and_concatenated():
    model = build("contextual", **{"network.hidden_sizes": [64, 64]})
    emb_dim = 32
    for net in (model.actor, model.critic):
        assert net.layers[0].in_features == OBS_DIM + emb_dim
        assert net.layers[0].weight.shape == (64, OBS_DIM + emb_dim)
        assert net.task_embedding.shape == (M, emb_dim)
    with torch.no_grad():
        model.actor.task_embedding.mul_(torch.tensor([[3.0], [0.2], [7.0]]))  # non-unit norms

    seen = {}
    hook = model.actor.layers[0].register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0]))
    obs = torch.randn(M, 5, OBS_DIM, generator=gen(31))
    with torch.no_grad():
        ref = model(obs)
    hook.remove()
    x = seen["x"]
    assert x.shape == (M, 5, OBS_DIM + emb_dim)
    assert torch.equal(x[..., :OBS_DIM], obs)
    e = model.actor.task_embedding.detach()
    expected = e / e.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(x[..., OBS_DIM:], expected[:, None].expand(M, 5, emb_dim), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(x[..., OBS_DIM:].norm(dim=-1), torch.ones(M, 5), rtol=1e-6, atol=1e-6)

    # scaling an embedding leaves outputs unchanged (normalised); changing its direction changes
    # only that task's outputs
    with torch.no_grad():
        model.actor.task_embedding[1].mul_(5.0)
        scaled = model(obs)
        torch.testing.assert_close(scaled.logits, ref.logits, rtol=1e-5, atol=1e-6)
        model.actor.task_embedding[1].add_(torch.randn(emb_dim, generator=gen(32)))
        model.critic.task_embedding[1].add_(torch.randn(emb_dim, generator=gen(33)))
        changed = model(obs)
    for out_new, out_ref in ((changed.logits, ref.logits), (changed.value, ref.value)):
        assert torch.equal(out_new[0], out_ref[0]) and torch.equal(out_new[2], out_ref[2])
        assert not torch.allclose(out_new[1], out_ref[1])


# ------------------------------------------------------------------------------------------
# 8. Task isolation


@pytest.mark.parametrize(
    "method,estimator",
    [(m, "flipout") for m in METHODS] + [("varshare", "shared_noise"), ("varshare", "local_reparam")],
)
def test_perturbing_one_task_changes_only_that_task(method, estimator):
    model = build(method, **{"varshare.estimator": estimator})
    randomise_(model, 15)
    obs = torch.randn(M, 4, OBS_DIM, generator=gen(34))
    noise = model.draw_noise(4, gen(35))
    for nz in (None, noise):
        with torch.no_grad():
            ref = model(obs, nz)
            for m in range(M):
                moved = obs.clone()
                moved[m, 2] += torch.randn(OBS_DIM, generator=gen(36 + m))
                out = model(moved, nz)
                for new, old in ((out.logits, ref.logits), (out.value, ref.value)):
                    others = [k for k in range(M) if k != m]
                    assert torch.equal(new[others], old[others]), f"task {m} leaked into other tasks"
                    # and within task m, only the perturbed example moves
                    assert torch.equal(new[m, [0, 1, 3]], old[m, [0, 1, 3]])
                    assert not torch.allclose(new[m, 2], old[m, 2])
