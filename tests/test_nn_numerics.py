"""Numerical kernels used in training (fused KL, fused Flipout, activation) equal their reference
definitions."""

import pytest
import torch
import torch.nn.functional as F

from varshare.nn import gaussian_kl, softplus_gaussian_kl_per_task, softplus_gaussian_kls_per_task
from varshare.nn.flipout import flipout_linear
from varshare.nn.softplus_scale import softplus_scale


def test_fused_kl_matches_closed_form_and_torch_distributions():
    torch.manual_seed(0)
    mu = torch.randn(4, 6, 3, dtype=torch.float64)
    rho = torch.randn(4, 6, 3, dtype=torch.float64) - 2
    fused = softplus_gaussian_kl_per_task(mu, rho, 0.1)
    sigma = F.softplus(rho)
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, sigma), torch.distributions.Normal(0.0, 0.1)
    ).sum(dim=(1, 2))
    torch.testing.assert_close(fused, reference)
    torch.testing.assert_close(fused.sum(), gaussian_kl(mu, sigma, 0.1))


def test_fused_kl_gradient_is_exact():
    torch.manual_seed(1)
    mu = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    rho = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: softplus_gaussian_kl_per_task(a, b, 0.3), (mu, rho))
    # and against autograd through the element-wise formula, with a non-uniform upstream gradient
    weights = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    (softplus_gaussian_kl_per_task(mu, rho, 0.3) * weights).sum().backward()
    fused_grads = mu.grad.clone(), rho.grad.clone()
    mu.grad = rho.grad = None
    sum(w * gaussian_kl(mu[m], F.softplus(rho[m]), 0.3) for m, w in enumerate(weights)).backward()
    torch.testing.assert_close(fused_grads[0], mu.grad)
    torch.testing.assert_close(fused_grads[1], rho.grad)


def test_softplus_scale_is_softplus_and_its_graph_can_be_reused_until_rho_changes():
    rho = torch.linspace(-30, 30, 601, dtype=torch.float64, requires_grad=True)
    sigma = softplus_scale(rho)
    torch.testing.assert_close(sigma, F.softplus(rho), rtol=0, atol=0)
    assert torch.autograd.gradcheck(softplus_scale, (torch.randn(4, 3, dtype=torch.float64, requires_grad=True),))
    upstream = torch.randn(601, dtype=torch.float64)
    (first,) = torch.autograd.grad((sigma * upstream).sum(), rho)
    torch.testing.assert_close(first, upstream * torch.sigmoid(rho), rtol=0, atol=0)
    # a second loss through the same σ (as a cached σ feeds the forward pass and the KL) still works
    (second,) = torch.autograd.grad((sigma * upstream).sum(), rho)
    assert torch.equal(first, second)
    with torch.no_grad():
        rho.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        torch.autograd.grad(sigma.sum(), rho)


def test_tanh_activation_equals_torch_tanh_in_value_and_gradient():
    from varshare.nn.activations import tanh

    x = torch.linspace(-12, 12, 20001, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(tanh(x), torch.tanh(x), rtol=0, atol=1e-15)
    assert torch.autograd.gradcheck(tanh, (torch.randn(7, 3, dtype=torch.float64, requires_grad=True),))
    x32 = torch.linspace(-12, 12, 20001)
    assert (tanh(x32) - torch.tanh(x32)).abs().max() < 5e-7


def assert_fused_equals_autograd(fused_fn, reference_fn, inputs, out_shape, generator):
    """A fused layer node equals its plain-autograd formula (float64): values to 1e-12, ``gradcheck``,
    and every input's gradient under a random upstream gradient of ``out_shape`` to 1e-12."""
    torch.testing.assert_close(fused_fn(*inputs), reference_fn(*inputs), rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(fused_fn, inputs)
    upstream = torch.randn(*out_shape, generator=generator, dtype=torch.float64)
    differentiable = [t for t in inputs if t.requires_grad]
    fused = torch.autograd.grad((fused_fn(*inputs) * upstream).sum(), differentiable)
    reference = torch.autograd.grad((reference_fn(*inputs) * upstream).sum(), differentiable)
    for ours, theirs in zip(fused, reference):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def _flipout_by_autograd(x, theta_w, theta_b, mu_w, mu_b, rho_w, rho_b, eps_w, eps_b, sign_in, sign_out):
    """SCIENCE.md's Flipout formula written with plain autograd ops."""
    mean_w, mean_b = theta_w + mu_w, theta_b + mu_b
    delta_w, delta_b = F.softplus(rho_w) * eps_w, F.softplus(rho_b) * eps_b
    mean_out = torch.einsum("mbi,moi->mbo", x, mean_w.expand_as(mu_w)) + mean_b.unsqueeze(1)
    perturbation = torch.einsum("mbi,moi->mbo", x * sign_in, delta_w) + delta_b.unsqueeze(1)
    return mean_out + perturbation * sign_out


def _flipout_of_rho(x, theta_w, theta_b, mu_w, mu_b, rho_w, rho_b, *noise):
    """The fused Flipout node fed σ = softplus(ρ) by the shared softplus node, as networks do."""
    return flipout_linear(x, theta_w, theta_b, mu_w, mu_b, softplus_scale(rho_w), softplus_scale(rho_b), *noise)


@pytest.mark.parametrize("replicated_theta", [False, True])
def test_fused_flipout_values_and_gradients_are_exact(replicated_theta):
    g = torch.Generator().manual_seed(3)
    M, B, n_in, n_out = 3, 5, 4, 2

    def randn(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()

    def signs(*shape):
        return torch.randint(0, 2, shape, generator=g).double() * 2 - 1

    theta_w = randn(M, n_out, n_in) if replicated_theta else randn(n_out, n_in)
    theta_b = randn(M, n_out) if replicated_theta else randn(n_out)
    inputs = (randn(M, B, n_in), theta_w, theta_b, randn(M, n_out, n_in), randn(M, n_out),
              randn(M, n_out, n_in), randn(M, n_out),
              torch.randn(M, n_out, n_in, generator=g, dtype=torch.float64),
              torch.randn(M, n_out, generator=g, dtype=torch.float64),
              signs(M, B, n_in), signs(M, B, n_out))
    assert_fused_equals_autograd(_flipout_of_rho, _flipout_by_autograd, inputs, (M, B, n_out), g)


def test_rademacher_signs_are_balanced_independent_and_reproducible():
    from varshare.nn.layers import rademacher

    n = 40_000
    stored = rademacher((n, 100), torch.Generator().manual_seed(0), "cpu")  # two words per row
    assert stored.dtype == torch.int8 and set(stored.unique().tolist()) == {-1, 1}
    signs = stored.float()
    five_sigma = 5 / n**0.5
    assert signs.mean(dim=0).abs().max() < five_sigma  # every bit position is a fair coin
    correlation = (signs.T @ signs) / n - torch.eye(100)
    assert correlation.abs().max() < five_sigma  # no two positions (same word or not) correlate
    again = rademacher((n, 100), torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(stored, again)


def random_posterior_and_prior(seed: int) -> tuple[torch.Tensor, ...]:
    """``(mu, rho, mu_prior, sigma_prior)`` ``[3, 4, 5]`` float64; ``mu``, ``rho`` and ``sigma_prior``
    require grad (``sigma_prior`` in [0.1, 1.1))."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    rho = (torch.randn(3, 4, 5, generator=g, dtype=torch.float64) - 1).requires_grad_()
    mu_prior = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    sigma_prior = (torch.rand(3, 4, 5, generator=g, dtype=torch.float64) + 0.1).requires_grad_()
    return mu, rho, mu_prior, sigma_prior


def test_fused_kl_with_tensor_prior_matches_torch_distributions_and_its_gradients_are_exact():
    mu, rho, mu_prior, sigma_prior = random_posterior_and_prior(4)
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, F.softplus(rho)), torch.distributions.Normal(mu_prior, sigma_prior)
    ).sum(dim=(1, 2))
    torch.testing.assert_close(softplus_gaussian_kl_per_task(mu, rho, sigma_prior, mu_prior), reference)
    assert torch.autograd.gradcheck(
        lambda a, b, s: softplus_gaussian_kl_per_task(a, b, s, mu_prior), (mu, rho, sigma_prior))
    scalar_prior = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)  # broadcast: grad summed
    assert torch.autograd.gradcheck(lambda a, b, s: softplus_gaussian_kl_per_task(a, b, s), (mu, rho, scalar_prior))
    # a posterior equal to its prior has exactly zero KL (the trust region relies on it)
    sigma = F.softplus(rho.detach())
    assert torch.count_nonzero(softplus_gaussian_kl_per_task(mu.detach(), rho.detach(), sigma, mu.detach())) == 0


def test_fused_kl_against_several_priors_equals_one_call_per_prior_in_value_and_gradient():
    mu, rho, mu_prior, sigma_tensor = random_posterior_and_prior(5)
    priors = [(None, 0.2), (mu_prior, sigma_tensor), (mu_prior, 0.7)]
    together = softplus_gaussian_kls_per_task(mu, rho, priors)
    assert together.shape == (3, 3)
    for row, (prior_mu, prior_sigma) in zip(together, priors):
        torch.testing.assert_close(row, softplus_gaussian_kl_per_task(mu, rho, prior_sigma, prior_mu))
    assert torch.autograd.gradcheck(
        lambda a, b, s: softplus_gaussian_kls_per_task(a, b, [(None, 0.2), (mu_prior, s), (mu_prior, 0.7)]),
        (mu, rho, sigma_tensor))


def test_constant_gaussian_prior_equals_the_same_prior_given_as_tensors():
    from varshare.nn.kl import ConstantGaussian, gaussian_kls_per_task

    mu, rho, mu_prior, sigma_prior = random_posterior_and_prior(6)
    sigma_prior = sigma_prior.detach()
    constant = ConstantGaussian.of(mu_prior, sigma_prior)
    together = gaussian_kls_per_task(mu, F.softplus(rho), [(None, 0.3), constant])
    reference = gaussian_kls_per_task(mu, F.softplus(rho), [(None, 0.3), (mu_prior, sigma_prior)])
    torch.testing.assert_close(together, reference, rtol=1e-14, atol=1e-14)
    upstream = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -3.0]], dtype=torch.float64)
    ours = torch.autograd.grad((together * upstream).sum(), (mu, rho))
    theirs = torch.autograd.grad((reference * upstream).sum(), (mu, rho))
    for got, expected in zip(ours, theirs):
        torch.testing.assert_close(got, expected, rtol=1e-13, atol=1e-13)
    assert torch.autograd.gradcheck(lambda a, b: gaussian_kls_per_task(a, F.softplus(b), [constant]), (mu, rho))
    # a posterior equal to the constant prior has exactly zero KL
    at_prior = gaussian_kls_per_task(mu_prior, sigma_prior, [ConstantGaussian.of(mu_prior, sigma_prior)])
    assert torch.count_nonzero(at_prior) == 0


# groups 0-2: rows of a [3, 4] block plus one element each of a [3, 1] block; groups 3-4: rows of [2, 2]
TILING_LAYOUT = (((0, 3, 4), (0, 3, 1), (3, 2, 2)),
                 [[0, 1, 2, 3, 12], [4, 5, 6, 7, 13], [8, 9, 10, 11, 14], [15, 16], [17, 18]])
# group 0 and 1 span two blocks that start at group 0 but cover different rows: summed by scatter
SCATTER_LAYOUT = (((0, 3, 4), (0, 2, 2), (2, 3, 1)),
                  [[0, 1, 2, 3, 12, 13], [4, 5, 6, 7, 14, 15], [8, 9, 10, 11, 16], [17], [18]])


@pytest.mark.parametrize("layout, tiles", [(TILING_LAYOUT, True), (SCATTER_LAYOUT, False)], ids=["tiling", "scatter"])
def test_fused_group_moments_match_a_per_group_loop(layout, tiles):
    from varshare.nn.kl import _tiles, gaussian_group_moments

    def softplus_gaussian_group_moments(mu, rho, blocks):
        return gaussian_group_moments(mu, softplus_scale(rho), blocks)

    g = torch.Generator().manual_seed(5)
    blocks, members = layout
    assert _tiles(blocks) == tiles
    mu = torch.randn(2, 19, generator=g, dtype=torch.float64, requires_grad=True)
    rho = torch.randn(2, 19, generator=g, dtype=torch.float64, requires_grad=True)
    second_moment, log_sigma = softplus_gaussian_group_moments(mu, rho, blocks)
    sigma = F.softplus(rho)
    assert second_moment.shape == (2, len(members))
    for group, elements in enumerate(members):
        torch.testing.assert_close(second_moment[:, group], (sigma**2 + mu**2)[:, elements].sum(dim=1))
    torch.testing.assert_close(log_sigma, sigma.log().sum(dim=1))
    assert torch.autograd.gradcheck(lambda a, b: softplus_gaussian_group_moments(a, b, blocks), (mu, rho))
    with pytest.raises(ValueError, match="cover 18 elements"):
        softplus_gaussian_group_moments(mu, rho, ((0, 3, 4), (0, 3, 1), (3, 2, 1), (3, 1, 1)))


def _local_reparam_by_autograd(x, theta_w, theta_b, mu_w, mu_b, rho_w, rho_b, xi):
    """The local reparameterisation written with plain autograd ops."""
    mean_w, mean_b = theta_w + mu_w, theta_b + mu_b
    mean_out = torch.einsum("mbi,moi->mbo", x, mean_w.expand_as(mu_w)) + mean_b.unsqueeze(1)
    variance = torch.einsum("mbi,moi->mbo", x**2, F.softplus(rho_w) ** 2) + F.softplus(rho_b).unsqueeze(1) ** 2
    return mean_out + torch.sqrt(variance + 1e-8) * xi


@pytest.mark.parametrize("replicated_theta", [False, True])
def test_fused_local_reparam_values_and_gradients_are_exact(replicated_theta):
    from varshare.nn.local_reparam import local_reparam_linear

    g = torch.Generator().manual_seed(6)
    M, B, n_in, n_out = 3, 5, 4, 2

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()

    theta_w = randn(M, n_out, n_in) if replicated_theta else randn(n_out, n_in)
    theta_b = randn(M, n_out) if replicated_theta else randn(n_out)
    inputs = (randn(M, B, n_in), theta_w, theta_b, randn(M, n_out, n_in), randn(M, n_out),
              randn(M, n_out, n_in), randn(M, n_out), torch.randn(M, B, n_out, generator=g, dtype=torch.float64))
    def local_reparam_of_rho(x, theta_w, theta_b, mu_w, mu_b, rho_w, rho_b, xi):
        return local_reparam_linear(x, theta_w, theta_b, mu_w, mu_b, softplus_scale(rho_w), softplus_scale(rho_b), xi)

    assert_fused_equals_autograd(local_reparam_of_rho, _local_reparam_by_autograd, inputs, (M, B, n_out), g)
