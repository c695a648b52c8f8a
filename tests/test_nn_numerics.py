"""Numerics of the layer formulas against independent computations: Flipout's two-matmul form and
the local reparameterisation against their einsum formulas (values and gradients), the KL with a
tensor prior against ``torch.distributions`` and its gradients against the closed form, the signs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from varshare.nn import gaussian_kl_per_task
from varshare.nn.kl import zero_mean_kl_per_task
from varshare.nn.noise import FlipoutNoise, LocalReparamNoise, rademacher

M, B, IN, OUT = 3, 5, 4, 2


def _randn(g, *shape, grad=True):
    t = torch.randn(*shape, generator=g, dtype=torch.float64)
    return t.requires_grad_() if grad else t


def _signs(g, *shape):
    return torch.randint(0, 2, shape, generator=g).double() * 2 - 1


def _flipout_by_einsum(x, theta_w, theta_b, mu_w, mu_b, rho_w, rho_b, eps_w, eps_b, sign_in, sign_out):
    """SCIENCE.md's per-example weight ``θ + μ + (σ∘ε)∘(s_out s_inᵀ)`` applied example by example."""
    delta_w, delta_b = F.softplus(rho_w) * eps_w, F.softplus(rho_b) * eps_b
    weight = (theta_w + mu_w).unsqueeze(1) + delta_w.unsqueeze(1) * (sign_out.unsqueeze(-1) * sign_in.unsqueeze(-2))
    bias = (theta_b + mu_b).unsqueeze(1) + delta_b.unsqueeze(1) * sign_out
    return torch.einsum("mbi,mboi->mbo", x, weight) + bias


def _flipout_layer_formula(x, theta_w, theta_b, mu_w, mu_b, rho_w, rho_b, eps_w, eps_b, sign_in, sign_out):
    noise = FlipoutNoise(eps_w, eps_b, sign_in, sign_out)
    return noise.affine(x, theta_w + mu_w, theta_b + mu_b, F.softplus(rho_w), F.softplus(rho_b))


@pytest.mark.parametrize("replicated_theta", [False, True])
def test_flipout_two_matmul_form_equals_per_example_weights_in_value_and_gradient(replicated_theta):
    g = torch.Generator().manual_seed(3)
    theta_w = _randn(g, M, OUT, IN) if replicated_theta else _randn(g, OUT, IN)
    theta_b = _randn(g, M, OUT) if replicated_theta else _randn(g, OUT)
    inputs = (_randn(g, M, B, IN), theta_w, theta_b, _randn(g, M, OUT, IN), _randn(g, M, OUT),
              _randn(g, M, OUT, IN), _randn(g, M, OUT), _randn(g, M, OUT, IN, grad=False),
              _randn(g, M, OUT, grad=False), _signs(g, M, B, IN), _signs(g, M, B, OUT))
    ours, reference = _flipout_layer_formula(*inputs), _flipout_by_einsum(*inputs)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(_flipout_layer_formula, inputs)
    upstream = torch.randn(M, B, OUT, generator=g, dtype=torch.float64)
    leaves = [t for t in inputs if t.requires_grad]
    for a, b in zip(torch.autograd.grad((ours * upstream).sum(), leaves),
                    torch.autograd.grad((reference * upstream).sum(), leaves)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_local_reparam_equals_its_formula_and_has_finite_gradients_at_zero_input():
    g = torch.Generator().manual_seed(4)
    x, mean_w, mean_b = _randn(g, M, B, IN), _randn(g, M, OUT, IN), _randn(g, M, OUT)
    sigma_w, sigma_b = _randn(g, M, OUT, IN).abs(), _randn(g, M, OUT).abs()
    noise = LocalReparamNoise(_randn(g, M, B, OUT, grad=False))
    y = noise.affine(x, mean_w, mean_b, sigma_w, sigma_b)
    variance = torch.einsum("mbi,moi->mbo", x.square(), sigma_w.square()) + sigma_b.square().unsqueeze(1) + 1e-8
    expected = torch.einsum("mbi,moi->mbo", x, mean_w) + mean_b.unsqueeze(1) + variance.sqrt() * noise.xi
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)
    zero = torch.zeros(M, B, IN, dtype=torch.float64, requires_grad=True)
    grads = torch.autograd.grad(noise.affine(zero, mean_w, mean_b, sigma_w * 0, sigma_b * 0).sum(), [zero, sigma_w])
    assert all(torch.isfinite(grad).all() for grad in grads)


def test_rademacher_signs_are_balanced_independent_and_reproducible():
    n = 40_000
    signs = rademacher((n, 100), torch.Generator().manual_seed(0), "cpu")
    assert signs.dtype == torch.float32 and set(signs.unique().tolist()) == {-1.0, 1.0}
    five_sigma = 5 / n**0.5
    assert signs.mean(dim=0).abs().max() < five_sigma
    correlation = (signs.T @ signs) / n - torch.eye(100)
    assert correlation.abs().max() < five_sigma
    assert torch.equal(signs, rademacher((n, 100), torch.Generator().manual_seed(0), "cpu"))


def test_kl_per_task_with_tensor_prior_matches_torch_distributions_and_closed_form_gradients():
    g = torch.Generator().manual_seed(5)
    mu = torch.randn(3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    sigma = (torch.rand(3, 4, 5, generator=g, dtype=torch.float64) + 0.05).requires_grad_()
    mu_prior = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    sigma_prior = (torch.rand(3, 4, 5, generator=g, dtype=torch.float64) + 0.1).requires_grad_()
    kl = gaussian_kl_per_task(mu, sigma, sigma_prior, mu_prior)
    expected = kl_divergence(Normal(mu, sigma), Normal(mu_prior, sigma_prior)).flatten(1).sum(1)
    torch.testing.assert_close(kl, expected, rtol=1e-12, atol=1e-12)
    upstream = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    g_mu, g_sigma, g_prior = torch.autograd.grad((kl * upstream).sum(), [mu, sigma, sigma_prior])
    w = upstream.view(3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(g_mu, w * (mu - mu_prior) / sigma_prior**2, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(g_sigma, w * (sigma / sigma_prior**2 - 1 / sigma), rtol=1e-12, atol=1e-12)
        closed = w * (1 / sigma_prior - (sigma**2 + (mu - mu_prior) ** 2) / sigma_prior**3)
        torch.testing.assert_close(g_prior, closed, rtol=1e-12, atol=1e-12)
    same = gaussian_kl_per_task(mu.detach(), sigma.detach(), sigma.detach(), mu.detach())
    assert torch.equal(same, torch.zeros(3, dtype=torch.float64))  # exactly 0 at the prior


@pytest.mark.parametrize("learned", [False, True])
def test_zero_mean_kl_from_moment_sums_equals_the_element_wise_kl_in_value_and_gradient(learned):
    g = torch.Generator().manual_seed(6)
    mu = torch.randn(3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    sigma = (torch.rand(3, 4, 5, generator=g, dtype=torch.float64) + 0.05).requires_grad_()
    prior = torch.tensor(0.3, dtype=torch.float64, requires_grad=True) if learned else 0.3
    fast, reference = zero_mean_kl_per_task(mu, sigma, prior), gaussian_kl_per_task(mu, sigma, prior)
    torch.testing.assert_close(fast, reference, rtol=1e-12, atol=1e-12)
    leaves = [mu, sigma, prior] if learned else [mu, sigma]
    upstream = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    for a, b in zip(torch.autograd.grad((fast * upstream).sum(), leaves),
                    torch.autograd.grad((reference * upstream).sum(), leaves)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
