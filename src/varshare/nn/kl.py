"""Closed-form KL divergence between diagonal Gaussians and a zero-mean isotropic prior."""

from __future__ import annotations

import math

import torch


def diagonal_gaussian_kl_elements(
    mu: torch.Tensor, sigma: torch.Tensor, mu_other: float | torch.Tensor, sigma_other: float | torch.Tensor
) -> torch.Tensor:
    """Element-wise ``KL(N(mu, sigma²) ‖ N(mu_other, sigma_other²))``, same shape as ``mu`` (nats):
    ``log(sigma_other / sigma) + (sigma² + (mu − mu_other)²) / (2 sigma_other²) − 1/2``."""
    sigma_other = torch.as_tensor(sigma_other, dtype=mu.dtype, device=mu.device)
    return (
        torch.log(sigma_other) - torch.log(sigma)
        + (sigma.square() + (mu - mu_other).square()) / (2 * sigma_other.square())
        - 0.5
    )


def gaussian_kl_elements(
    mu: torch.Tensor, sigma: torch.Tensor, sigma_prior: float | torch.Tensor
) -> torch.Tensor:
    """Element-wise ``KL(N(mu, sigma²) ‖ N(0, sigma_prior²))``, same shape as ``mu`` (nats):
    ``log(sigma_prior / sigma) + (sigma² + mu²) / (2 sigma_prior²) − 1/2``."""
    return diagonal_gaussian_kl_elements(mu, sigma, 0.0, sigma_prior)


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor, sigma_prior: float | torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag sigma²) ‖ N(0, sigma_prior² I))`` summed over every element: a scalar (nats).

    Args:
        mu: posterior means, any shape.
        sigma: posterior standard deviations (> 0), same shape as ``mu``.
        sigma_prior: prior standard deviation (> 0), a float or a tensor broadcastable to ``mu``.
    """
    return gaussian_kl_elements(mu, sigma, sigma_prior).sum()


class _SoftplusGaussianKL(torch.autograd.Function):
    """Per-task KL of ``N(mu, softplus(rho)²)`` from ``N(0, sigma_prior²)`` with a closed-form backward
    (a few fused element-wise passes instead of autograd's chain of nodes):
    ``KL_m = Σ [(σ² + μ²) / (2 σ_prior²) − log σ] + n·(log σ_prior − 1/2)`` over task m's ``n`` elements."""

    @staticmethod
    def forward(ctx, mu: torch.Tensor, rho: torch.Tensor, sigma_prior: float) -> torch.Tensor:
        sigma = torch.nn.functional.softplus(rho)
        ctx.save_for_backward(mu, rho, sigma)
        ctx.sigma_prior = sigma_prior
        quadratic = torch.addcmul(sigma * sigma, mu, mu).mul_(0.5 / sigma_prior**2).sub_(torch.log(sigma))
        per_task = quadratic.reshape(quadratic.shape[0], -1).sum(dim=1)
        return per_task.add_(mu[0].numel() * (math.log(sigma_prior) - 0.5))

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        mu, rho, sigma = ctx.saved_tensors
        prior_var = ctx.sigma_prior**2
        scale = grad_output.view(-1, *([1] * (mu.dim() - 1)))
        grad_mu = mu * (scale / prior_var)
        grad_rho = (sigma / prior_var).sub_(sigma.reciprocal()).mul_(torch.sigmoid(rho)).mul_(scale)
        return grad_mu, grad_rho, None


def softplus_gaussian_kl_per_task(mu: torch.Tensor, rho: torch.Tensor, sigma_prior: float) -> torch.Tensor:
    """``[M]``: ``KL(N(mu_m, softplus(rho_m)²) ‖ N(0, sigma_prior²))`` summed over each task's elements.

    Args:
        mu, rho: ``[M, ...]`` posterior means and pre-softplus scales (task axis first).
        sigma_prior: prior standard deviation (a fixed float).

    Gradients: ``∂/∂mu = mu / sigma_prior²``, ``∂/∂rho = (σ / sigma_prior² − 1/σ) · sigmoid(rho)``.
    """
    return _SoftplusGaussianKL.apply(mu, rho, float(sigma_prior))
