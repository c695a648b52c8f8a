"""Gradients of the mean part ``x (θ + μ)ᵀ + (θ_b + μ_b)`` shared by the fused variational layers.

Both :mod:`varshare.nn.flipout` and :mod:`varshare.nn.local_reparam` compute
``y = x W̄ᵀ + b̄ + (noise term)`` with ``W̄ = θ + μ``; the gradients of ``θ`` and ``μ`` come only
from the first two terms and are the same in both.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mean_parameter_gradients(grad_out: Tensor, x: Tensor, theta_dims: tuple[int, int], needs_weight: bool,
                             needs_bias: bool) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """``(∂L/∂θ_weight, ∂L/∂θ_bias, ∂L/∂μ_weight, ∂L/∂μ_bias)`` for upstream ``grad_out`` ``[M, B, out]``
    and input ``x`` ``[M, B, in]``: ``∂L/∂μ = gᵀ x`` ``[M, out, in]`` and ``Σ_b g`` ``[M, out]``; ``θ``'s are
    their sums over tasks, or the same per-task tensors when ``θ`` is task-replicated
    (``theta_dims`` = the dims of ``θ_weight`` and ``θ_bias``: ``(2, 1)`` shared, ``(3, 2)`` replicated).
    Gradients not needed are None."""
    grad_theta_w = grad_theta_b = grad_mu_w = grad_mu_b = None
    if needs_weight:
        grad_mu_w = torch.bmm(grad_out.transpose(-1, -2), x)
        grad_theta_w = grad_mu_w.sum(0) if theta_dims[0] == 2 else grad_mu_w
    if needs_bias:
        grad_mu_b = grad_out.sum(1)
        grad_theta_b = grad_mu_b.sum(0) if theta_dims[1] == 1 else grad_mu_b
    return grad_theta_w, grad_theta_b, grad_mu_w, grad_mu_b
