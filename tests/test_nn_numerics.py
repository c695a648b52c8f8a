"""Numerical kernels used in training (fused KL, activation) equal their reference definitions."""

import torch
import torch.nn.functional as F

from varshare.nn import gaussian_kl, softplus_gaussian_kl_per_task


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


def test_tanh_activation_equals_torch_tanh_in_value_and_gradient():
    from varshare.nn.activations import tanh

    x = torch.linspace(-12, 12, 20001, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(tanh(x), torch.tanh(x), rtol=0, atol=1e-15)
    assert torch.autograd.gradcheck(tanh, (torch.randn(7, 3, dtype=torch.float64, requires_grad=True),))
    x32 = torch.linspace(-12, 12, 20001)
    assert (tanh(x32) - torch.tanh(x32)).abs().max() < 5e-7
