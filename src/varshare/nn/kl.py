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
    """Per-task ``KL(N(mu, softplus(rho)²) ‖ N(mu_prior, sigma_prior²))`` with a closed-form backward
    (a few fused element-wise passes instead of autograd's chain of nodes):
    ``KL_m = Σ [(σ² + (μ − μ_p)²) / (2 σ_p²) − log σ + log σ_p] − n/2`` over task m's ``n`` elements."""

    @staticmethod
    def forward(ctx, mu, rho, sigma_prior, mu_prior):
        sigma = torch.nn.functional.softplus(rho)
        diff = mu if mu_prior is None else mu - mu_prior
        scalar_prior = not torch.is_tensor(sigma_prior)
        inv_var = 1.0 / sigma_prior**2
        if scalar_prior:
            half_quadratic = torch.addcmul(sigma * sigma, diff, diff).mul_(0.5 * inv_var)
            per_element = half_quadratic - torch.log(sigma)
            constant = math.log(sigma_prior) - 0.5
        else:  # ordered so that q = prior gives exactly 0: σ²/(2σ²) = ½ and log σ − log σ = 0
            half_quadratic = torch.addcmul(sigma * sigma, diff, diff).div_(2 * sigma_prior**2)
            per_element = (half_quadratic - 0.5).add_(torch.log(sigma_prior) - torch.log(sigma))
            constant = 0.0
        per_task = per_element.reshape(per_element.shape[0], -1).sum(dim=1)
        ctx.save_for_backward(diff, rho, sigma, half_quadratic,
                              *(() if scalar_prior else (sigma_prior,)))
        ctx.inv_var = inv_var
        return per_task.add_(mu[0].numel() * constant)

    @staticmethod
    def backward(ctx, grad_output):
        diff, rho, sigma, half_quadratic, *prior = ctx.saved_tensors
        scale = grad_output.view(-1, *([1] * (diff.dim() - 1)))
        inv_var = ctx.inv_var
        grad_mu = diff * (scale * inv_var)
        grad_rho = (sigma * inv_var).sub_(sigma.reciprocal()).mul_(torch.sigmoid(rho)).mul_(scale)
        grad_sigma_prior = None
        if ctx.needs_input_grad[2]:
            (sigma_prior,) = prior
            per_element = (1.0 - 2.0 * half_quadratic).div_(sigma_prior).mul_(scale)
            grad_sigma_prior = per_element.sum_to_size(sigma_prior.shape)
        return grad_mu, grad_rho, grad_sigma_prior, None


def softplus_gaussian_kl_per_task(mu: torch.Tensor, rho: torch.Tensor, sigma_prior: float | torch.Tensor,
                                  mu_prior: torch.Tensor | None = None) -> torch.Tensor:
    """``[M]``: ``KL(N(mu_m, softplus(rho_m)²) ‖ N(mu_prior, sigma_prior²))`` summed over each task's
    elements, with a fused closed-form backward.

    Args:
        mu, rho: ``[M, ...]`` posterior means and pre-softplus scales (task axis first).
        sigma_prior: prior standard deviation: a float, or a tensor broadcastable to ``mu`` (e.g. a
            learned scalar — it then receives its gradient — or a snapshot of old posterior stds).
        mu_prior: prior means (same shape as ``mu``, treated as constants), or None for 0.

    Gradients: ``∂/∂mu = (mu − mu_prior) / σ_p²``, ``∂/∂rho = (σ / σ_p² − 1/σ) · sigmoid(rho)``,
    ``∂/∂σ_p = 1/σ_p − (σ² + (mu − mu_prior)²) / σ_p³`` (summed to ``sigma_prior``'s shape).
    """
    if mu_prior is not None and mu_prior.requires_grad:
        raise ValueError("mu_prior is treated as a constant; pass a detached tensor")
    if not torch.is_tensor(sigma_prior):
        sigma_prior = float(sigma_prior)
    return _SoftplusGaussianKL.apply(mu, rho, sigma_prior, mu_prior)


class _SoftplusGaussianRowMoments(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mu, rho):
        sigma = torch.nn.functional.softplus(rho)
        ctx.save_for_backward(mu, rho, sigma)
        return torch.addcmul(sigma * sigma, mu, mu).sum(dim=-1), torch.log(sigma).sum(dim=-1)

    @staticmethod
    def backward(ctx, grad_second_moment, grad_log_sigma):
        mu, rho, sigma = ctx.saved_tensors
        g_sq, g_log = grad_second_moment.unsqueeze(-1), grad_log_sigma.unsqueeze(-1)
        grad_mu = mu * (2 * g_sq)
        grad_rho = (sigma * (2 * g_sq)).add_(g_log / sigma).mul_(torch.sigmoid(rho))
        return grad_mu, grad_rho


def softplus_gaussian_row_moments(mu: torch.Tensor, rho: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row sums over the last axis of ``σ² + μ²`` and of ``log σ`` for ``σ = softplus(rho)``, with a
    fused closed-form backward: two tensors of shape ``mu.shape[:-1]`` (the per-group sufficient
    statistics of a Gaussian posterior under a per-row prior scale, e.g. the horseshoe's).

    Gradients: ``∂(σ² + μ²)/∂μ = 2μ``, ``∂(σ² + μ²)/∂ρ = 2σ·sigmoid(ρ)``, ``∂ log σ/∂ρ = sigmoid(ρ)/σ``."""
    return _SoftplusGaussianRowMoments.apply(mu, rho)
