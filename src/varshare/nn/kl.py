"""Closed-form KL divergence between diagonal Gaussians and a zero-mean isotropic prior."""

from __future__ import annotations

import torch


def gaussian_kl_elements(
    mu: torch.Tensor, sigma: torch.Tensor, sigma_prior: float | torch.Tensor
) -> torch.Tensor:
    """Element-wise ``KL(N(mu, sigma²) ‖ N(0, sigma_prior²))``, same shape as ``mu`` (nats):
    ``log(sigma_prior / sigma) + (sigma² + mu²) / (2 sigma_prior²) − 1/2``."""
    sigma_prior = torch.as_tensor(sigma_prior, dtype=mu.dtype, device=mu.device)
    return (
        torch.log(sigma_prior) - torch.log(sigma)
        + (sigma.square() + mu.square()) / (2 * sigma_prior.square())
        - 0.5
    )


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor, sigma_prior: float | torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag sigma²) ‖ N(0, sigma_prior² I))`` summed over every element: a scalar (nats).

    Args:
        mu: posterior means, any shape.
        sigma: posterior standard deviations (> 0), same shape as ``mu``.
        sigma_prior: prior standard deviation (> 0), a float or a tensor broadcastable to ``mu``.
    """
    return gaussian_kl_elements(mu, sigma, sigma_prior).sum()
