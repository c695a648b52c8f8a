"""Closed-form KL divergence between diagonal Gaussians (nats), as plain autograd."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def diagonal_gaussian_kl_elements(mu: Tensor, sigma: Tensor, mu_other: float | Tensor,
                                  sigma_other: float | Tensor) -> Tensor:
    """Element-wise ``KL(N(mu, sigma²) ‖ N(mu_other, sigma_other²))``, ``mu``'s shape:
    ``log(sigma_other / sigma) + (sigma² + (mu − mu_other)²) / (2 sigma_other²) − 1/2``.

    Written so that ``q = p`` gives exactly 0 (``σ²/(2σ²) = ½``, ``log σ − log σ = 0``)."""
    sigma_other = torch.as_tensor(sigma_other, dtype=mu.dtype, device=mu.device)
    return ((sigma.square() + (mu - mu_other).square()) / (2 * sigma_other.square()) - 0.5
            + torch.log(sigma_other) - torch.log(sigma))


def gaussian_kl_elements(mu: Tensor, sigma: Tensor, sigma_prior: float | Tensor) -> Tensor:
    """Element-wise ``KL(N(mu, sigma²) ‖ N(0, sigma_prior²))``, same shape as ``mu``."""
    return diagonal_gaussian_kl_elements(mu, sigma, 0.0, sigma_prior)


def gaussian_kl(mu: Tensor, sigma: Tensor, sigma_prior: float | Tensor) -> Tensor:
    """``KL(N(mu, diag sigma²) ‖ N(0, sigma_prior² I))`` summed over every element: a scalar.

    Args:
        mu: posterior means, any shape.
        sigma: posterior standard deviations (> 0), same shape as ``mu``.
        sigma_prior: prior standard deviation (> 0), a float or a tensor broadcastable to ``mu``.
    """
    return gaussian_kl_elements(mu, sigma, sigma_prior).sum()


def zero_mean_kl_per_task(mu: Tensor, sigma: Tensor, sigma_prior: float | Tensor) -> Tensor:
    """``[M]``: ``KL(N(mu_m, sigma_m²) ‖ N(0, sigma_prior²))`` summed over each task's elements, for
    one prior std (a float, or a scalar tensor that then receives its gradient), from the per-task
    sums ``Σ (σ² + μ²)`` and ``Σ log σ``:
    ``KL_m = Σ (σ² + μ²) / (2 sigma_prior²) − Σ log σ + n (log sigma_prior − ½)``, ``n`` elements per
    task. The same value as :func:`gaussian_kl_per_task` with half the element-wise passes."""
    second_moment = torch.addcmul(sigma.square(), mu, mu).flatten(1).sum(dim=1)
    log_sigma = sigma.log().flatten(1).sum(dim=1)
    count = mu[0].numel()
    if torch.is_tensor(sigma_prior):
        return second_moment / (2 * sigma_prior.square()) - log_sigma + count * (torch.log(sigma_prior) - 0.5)
    return second_moment * (0.5 / sigma_prior**2) - log_sigma + count * (math.log(sigma_prior) - 0.5)


def gaussian_kl_per_task(mu: Tensor, sigma: Tensor, sigma_prior: float | Tensor,
                         mu_prior: float | Tensor = 0.0) -> Tensor:
    """``[M]``: ``KL(N(mu_m, sigma_m²) ‖ N(mu_prior, sigma_prior²))`` summed over each task's elements
    (``mu``, ``sigma`` ``[M, ...]``, task axis first; the prior broadcastable to them)."""
    return diagonal_gaussian_kl_elements(mu, sigma, mu_prior, sigma_prior).flatten(1).sum(dim=1)
