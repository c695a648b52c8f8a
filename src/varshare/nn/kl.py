"""Closed-form KL divergence between diagonal Gaussians and a zero-mean isotropic prior."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from varshare.nn.softplus_scale import softplus_scale


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


@dataclass(frozen=True)
class ConstantGaussian:
    """A fixed diagonal Gaussian prior ``N(mean, std²)`` (``[M, ...]`` tensors, no gradients) with the
    terms of a KL against it computed once, for a prior used on many steps (the trust region's
    snapshot): saves a ``log`` and four element-wise passes per KL. Build with :meth:`of`; the KL
    also forms these terms on the fly for a tensor ``sigma_p`` (``mean`` None: zero)."""

    mean: torch.Tensor | None
    log_std: torch.Tensor
    twice_var: torch.Tensor  # 2 std²
    inv_var: torch.Tensor  # 1 / std²

    @classmethod
    def of(cls, mean: torch.Tensor, std: torch.Tensor) -> ConstantGaussian:
        """The prior with copies of ``mean`` and ``std`` (later in-place writes to them, e.g. an
        optimizer step on the parameter ``mean`` was read from, do not reach it)."""
        variance = std.detach().square()
        return cls(mean.detach().clone(), std.detach().log(), 2 * variance, variance.reciprocal())


class _GaussianKL(torch.autograd.Function):
    """Per-task ``KL(N(mu, sigma²) ‖ N(mu_p, sigma_p²))`` against ``K`` priors at once, with a
    closed-form backward (a few fused element-wise passes instead of autograd's chain of nodes;
    ``log σ`` and ``σ²`` are computed once for all priors). Per prior,
    ``KL_m = Σ [(σ² + (μ − μ_p)²) / (2 σ_p²) − log σ + log σ_p] − n/2`` over task m's ``n`` elements.
    ``priors`` are flattened ``(mu_p or None, sigma_p float or tensor)`` pairs (or ``(None, a
    ConstantGaussian)``); returns ``[K, M]``."""

    @staticmethod
    def forward(ctx, mu, sigma, *priors):
        log_sigma = torch.log(sigma)
        sigma_squared = sigma * sigma
        num_tasks = mu.shape[0]
        sum_log_sigma = None  # Σ log σ per task, shared by the scalar priors
        per_task, saved, inv_vars = [], [], []
        for mu_prior, sigma_prior in zip(priors[0::2], priors[1::2]):
            if isinstance(sigma_prior, float):
                diff = mu if mu_prior is None else mu - mu_prior
                inv_var = 1.0 / sigma_prior**2
                half_quadratic = torch.addcmul(sigma_squared, diff, diff).mul_(0.5 * inv_var)
                if sum_log_sigma is None:
                    sum_log_sigma = log_sigma.reshape(num_tasks, -1).sum(dim=1)
                kl = half_quadratic.reshape(num_tasks, -1).sum(dim=1).sub_(sum_log_sigma)
                kl.add_(mu[0].numel() * (math.log(sigma_prior) - 0.5))
                saved += [diff, half_quadratic, None]
            else:  # element-wise, ordered so that q = prior gives exactly 0: σ²/(2σ²) = ½, log σ − log σ = 0
                learned = None if isinstance(sigma_prior, ConstantGaussian) else sigma_prior
                prior = sigma_prior if learned is None else ConstantGaussian(
                    mu_prior, torch.log(learned), 2 * learned**2, 1.0 / learned**2)
                diff = mu if prior.mean is None else mu - prior.mean
                half_quadratic = torch.addcmul(sigma_squared, diff, diff).div_(prior.twice_var)
                kl = (half_quadratic - 0.5).add_(prior.log_std).sub_(log_sigma).reshape(num_tasks, -1).sum(dim=1)
                inv_var = prior.inv_var
                saved += [diff, half_quadratic, learned]
            per_task.append(kl)
            inv_vars.append(inv_var)
        ctx.save_for_backward(sigma, *saved)
        ctx.inv_vars = inv_vars
        return torch.stack(per_task)

    @staticmethod
    def backward(ctx, grad_output):
        sigma, *saved = ctx.saved_tensors
        shape = (-1, *([1] * (sigma.dim() - 1)))
        grad_mu = grad_quadratic = grad_log = None  # Σ_k g_k (μ − μ_k)/σ_k², Σ_k g_k/σ_k², Σ_k g_k
        grad_priors = []
        for k, inv_var in enumerate(ctx.inv_vars):
            diff, half_quadratic, sigma_prior = saved[3 * k: 3 * k + 3]
            scale = grad_output[k].view(shape)
            weight = scale * inv_var
            grad_mu = diff * weight if grad_mu is None else grad_mu.addcmul_(diff, weight)
            grad_quadratic = weight if grad_quadratic is None else grad_quadratic + weight
            grad_log = scale if grad_log is None else grad_log + scale
            grad_sigma_prior = None
            if ctx.needs_input_grad[2 + 2 * k + 1]:
                per_element = (1.0 - 2.0 * half_quadratic).div_(sigma_prior).mul_(scale)
                grad_sigma_prior = per_element.sum_to_size(sigma_prior.shape)
            grad_priors += [None, grad_sigma_prior]
        grad_sigma = (sigma * grad_quadratic).sub_(grad_log / sigma)
        return grad_mu, grad_sigma, *grad_priors


def gaussian_kls_per_task(
    mu: torch.Tensor, sigma: torch.Tensor,
    priors: list[tuple[torch.Tensor | None, float | torch.Tensor] | ConstantGaussian],
) -> torch.Tensor:
    """``[K, M]``: row ``k`` is ``KL(N(mu_m, sigma_m²) ‖ N(mu_k, sigma_k²))`` summed over each task's
    elements, for the ``K`` priors ``priors = [(mu_k or None for 0, sigma_k), ...]``, in one fused
    pass. ``mu``, ``sigma``: ``[M, ...]`` (task axis first, ``sigma`` > 0); ``sigma_k`` a float or a
    tensor broadcastable to ``mu`` (it then receives its gradient); ``mu_k`` constants. A prior may
    also be a :class:`ConstantGaussian` (same value, its terms precomputed).

    Gradients: ``∂/∂mu = Σ_k (mu − mu_k) / σ_k²``, ``∂/∂sigma = Σ_k (σ / σ_k² − 1/σ)``,
    ``∂/∂σ_k = 1/σ_k − (σ² + (mu − mu_k)²) / σ_k³`` (summed to ``σ_k``'s shape)."""
    flat: list = []
    for prior in priors:
        if isinstance(prior, ConstantGaussian):
            flat += [None, prior]
            continue
        mu_prior, sigma_prior = prior
        if mu_prior is not None and mu_prior.requires_grad:
            raise ValueError("mu_prior is treated as a constant; pass a detached tensor")
        flat += [mu_prior, sigma_prior if torch.is_tensor(sigma_prior) else float(sigma_prior)]
    return _GaussianKL.apply(mu, sigma, *flat)


def softplus_gaussian_kls_per_task(
    mu: torch.Tensor, rho: torch.Tensor, priors: list[tuple[torch.Tensor | None, float | torch.Tensor]]
) -> torch.Tensor:
    """:func:`gaussian_kls_per_task` of ``N(mu, softplus(rho)²)``: ``[K, M]`` (see
    :func:`softplus_gaussian_kl_per_task` for the arguments and gradients)."""
    return gaussian_kls_per_task(mu, softplus_scale(rho), priors)


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
    return softplus_gaussian_kls_per_task(mu, rho, [(mu_prior, sigma_prior)])[0]


#: ``(first_group, num_rows, row_length)``: a contiguous block of a flat ``[M, P]`` posterior whose
#: ``num_rows`` consecutive rows of ``row_length`` elements belong to groups ``first_group + r``
GroupBlock = tuple[int, int, int]

_GROUP_INDEX: dict[tuple[tuple[GroupBlock, ...], torch.device], torch.Tensor] = {}


def _group_index(blocks: tuple[GroupBlock, ...], device: torch.device) -> torch.Tensor:
    """``[P]``: the group of every flat element (cached per layout)."""
    key = (blocks, device)
    if key not in _GROUP_INDEX:
        _GROUP_INDEX[key] = torch.cat([
            torch.arange(first, first + rows, device=device).repeat_interleave(length)
            for first, rows, length in blocks
        ])
    return _GROUP_INDEX[key]


@functools.lru_cache(maxsize=64)
def _tiles(blocks: tuple[GroupBlock, ...]) -> bool:
    """Whether blocks with the same first group cover the same rows, and these ranges tile the groups
    (then per-block sums can be added and concatenated instead of scattered)."""
    ranges = {}
    for first, rows, _ in blocks:
        if ranges.setdefault(first, rows) != rows:
            return False
    ends = [first + rows for first, rows in sorted(ranges.items())]
    return sorted(ranges) == [0, *ends[:-1]]


class _GaussianGroupMoments(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mu, sigma, blocks, num_groups):
        num_tasks = mu.shape[0]
        second_moment = torch.addcmul(sigma * sigma, mu, mu)
        block_sums = []  # (first group, rows, [M, rows] sums of the block's rows)
        position = 0
        for first, rows, length in blocks:
            block = second_moment[:, position: position + rows * length]
            block_sums.append((first, rows, block.view(num_tasks, rows, length).sum(dim=-1) if length > 1 else block))
            position += rows * length
        if _tiles(blocks):  # additions and one concatenation: half the time of the scatter below
            parts: dict[int, torch.Tensor] = {}
            for first, _, block in block_sums:
                parts[first] = parts[first] + block if first in parts else block
            sums = torch.cat([parts[first] for first in sorted(parts)], dim=1)
        else:
            sums = mu.new_zeros((num_tasks, num_groups))
            for first, rows, block in block_sums:
                sums[:, first: first + rows] += block
        ctx.save_for_backward(mu, sigma, _group_index(blocks, mu.device))
        return sums, torch.log(sigma).sum(dim=1)

    @staticmethod
    def backward(ctx, grad_second_moment, grad_log_sigma):
        mu, sigma, group_index = ctx.saved_tensors
        g_sq = grad_second_moment.index_select(1, group_index).mul_(2)  # per element: [M, P]
        grad_mu = mu * g_sq
        grad_sigma = (sigma * g_sq).add_(grad_log_sigma.unsqueeze(1) / sigma)
        return grad_mu, grad_sigma, None, None


def gaussian_group_moments(mu: torch.Tensor, sigma: torch.Tensor, blocks: tuple[GroupBlock, ...]
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group sums of ``σ² + μ²`` and the per-task sum of ``log σ`` over a flat posterior, with a
    fused closed-form backward: the sufficient statistics of a Gaussian posterior's KL when each
    group has its own prior scale (e.g. the horseshoe's, or one learned scale per layer).

    Args:
        mu, sigma: ``[M, P]`` flat posterior means and standard deviations (e.g.
            :func:`varshare.nn.layers.flat_posterior_mean_std`).
        blocks: the layout, :data:`GroupBlock` s covering ``P`` in order; groups may span several
            blocks (a weight row and its bias element).

    Returns:
        ``[M, G]`` second moments per group (``G`` groups) and ``[M]`` ``Σ log σ`` per task.

    Gradients: ``∂(σ² + μ²)/∂μ = 2μ``, ``∂(σ² + μ²)/∂σ = 2σ``, ``∂ log σ/∂σ = 1/σ``."""
    if sum(rows * length for _, rows, length in blocks) != mu.shape[1]:
        raise ValueError(f"blocks cover {sum(r * n for _, r, n in blocks)} elements, the posterior has {mu.shape[1]}")
    num_groups = max(first + rows for first, rows, _ in blocks)
    return _GaussianGroupMoments.apply(mu, sigma, tuple(blocks), num_groups)
