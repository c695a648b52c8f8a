"""Weight gradients of batched linear maps, and the mean-part gradients shared by the fused
variational layers.

Both :mod:`varshare.nn.flipout` and :mod:`varshare.nn.local_reparam` compute
``y = x W̄ᵀ + b̄ + (noise term)`` with ``W̄ = θ + μ``; the gradients of ``θ`` and ``μ`` come only
from the first two terms and are the same in both.
"""

from __future__ import annotations

import torch
from torch import Tensor


def batched_outer_sum(grad_out: Tensor, x: Tensor) -> Tensor:
    """``Σ_b grad_outᵀ x`` per task: ``[M, out, in]`` for ``grad_out`` ``[M, B, out]``, ``x`` ``[M, B, in]``.

    Computed as ``(xᵀ grad_out)ᵀ`` when ``in < out``: the batched GEMM is several times slower when
    its result's last axis is the short one (measured 67 µs vs 14 µs for a 4 → 64 layer, M = 10,
    B = 128, one thread), and the transposed product is the same sum of the same terms."""
    if x.shape[-1] < grad_out.shape[-1]:
        return torch.bmm(x.transpose(-1, -2), grad_out).transpose(-1, -2)
    return torch.bmm(grad_out.transpose(-1, -2), x)


def mean_parameter_gradients(grad_out: Tensor, x: Tensor, theta_dims: tuple[int, int], needs_weight: bool,
                             needs_bias: bool) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """``(∂L/∂θ_weight, ∂L/∂θ_bias, ∂L/∂μ_weight, ∂L/∂μ_bias)`` for upstream ``grad_out`` ``[M, B, out]``
    and input ``x`` ``[M, B, in]``: ``∂L/∂μ = gᵀ x`` ``[M, out, in]`` and ``Σ_b g`` ``[M, out]``; ``θ``'s are
    their sums over tasks, or the same per-task tensors when ``θ`` is task-replicated
    (``theta_dims`` = the dims of ``θ_weight`` and ``θ_bias``: ``(2, 1)`` shared, ``(3, 2)`` replicated).
    Gradients not needed are None."""
    grad_theta_w = grad_theta_b = grad_mu_w = grad_mu_b = None
    if needs_weight:
        grad_mu_w = batched_outer_sum(grad_out, x)
        grad_theta_w = grad_mu_w.sum(0) if theta_dims[0] == 2 else grad_mu_w
    if needs_bias:
        grad_mu_b = grad_out.sum(1)
        grad_theta_b = grad_mu_b.sum(0) if theta_dims[1] == 1 else grad_mu_b
    return grad_theta_w, grad_theta_b, grad_mu_w, grad_mu_b
