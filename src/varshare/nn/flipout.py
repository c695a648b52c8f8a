"""Flipout for a variational residual layer as one autograd node with a hand-written backward.

The layer computes, for ``x`` ``[M, B, in]``,

    y = x W̄ᵀ + b̄ + ((x ∘ s_in) Δᵀ + Δ_b) ∘ s_out,   W̄ = θ + μ,  Δ = σ ∘ ε,

(bias terms alike). Written with autograd this is a chain of about a dozen nodes per layer, each
with its own saved tensors and dispatch; here the forward reuses its intermediates and the backward
computes every gradient with the same four batched matmuls autograd would use, plus fused
element-wise work. Gradients (``g = ∂L/∂y``, ``g' = g ∘ s_out``):

    ∂L/∂μ = gᵀ x,                ∂L/∂θ = Σ_m gᵀ x   (or per task for a task-replicated θ),
    ∂L/∂σ = (g'ᵀ (x ∘ s_in)) ∘ ε,
    ∂L/∂x = g W̄ + (g' Δ) ∘ s_in.

The layer takes ``σ`` itself (``softplus(ρ)``, computed once per step for the whole network by
:class:`~varshare.nn.flat_posterior.FlatPosterior`, which applies ``∂σ/∂ρ``).
``tests/test_nn_numerics.py`` checks values and gradients against the autograd composition.
"""

from __future__ import annotations

import torch
from torch import Tensor

from varshare.nn.mean_gradients import batched_outer_sum, mean_parameter_gradients


def flipout_affine(x: Tensor, mean_weight_t: Tensor, mean_bias_row: Tensor, delta_weight_t: Tensor,
                   delta_bias_row: Tensor, sign_in: Tensor, sign_out: Tensor) -> Tensor:
    """The Flipout output from derived tensors laid out for the batched matmuls (no parameter
    gradients; used by rollout caches): ``W̄ᵀ``, ``b̄``, ``Δᵀ``, ``Δ_b``.

    Shapes: ``x``, ``sign_in`` ``[M, B, in]``; ``mean_weight_t``, ``delta_weight_t`` ``[M, in, out]``;
    ``mean_bias_row``, ``delta_bias_row`` ``[M, 1, out]``; ``sign_out`` ``[M, B, out]`` → ``[M, B, out]``.
    Signs may be stored in any dtype (e.g. ``int8``; type promotion gives ``x``'s dtype)."""
    out = torch.baddbmm(mean_bias_row, x, mean_weight_t)
    return out.addcmul_(torch.baddbmm(delta_bias_row, x * sign_in, delta_weight_t), sign_out)


class _FlipoutLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, theta_weight, theta_bias, mu_weight, mu_bias, sigma_weight, sigma_bias,
                eps_weight, eps_bias, sign_in, sign_out):
        sign_in, sign_out = sign_in.to(x.dtype), sign_out.to(x.dtype)
        mean_weight = theta_weight + mu_weight
        delta_weight = sigma_weight * eps_weight
        mean_bias = theta_bias + mu_bias
        delta_bias = sigma_bias * eps_bias
        flipped_x = x * sign_in
        out = torch.baddbmm(mean_bias.unsqueeze(-2), x, mean_weight.transpose(-1, -2))
        perturbation = torch.baddbmm(delta_bias.unsqueeze(-2), flipped_x, delta_weight.transpose(-1, -2))
        out.addcmul_(perturbation, sign_out)
        ctx.save_for_backward(x, flipped_x, mean_weight, delta_weight, eps_weight, eps_bias, sign_in, sign_out)
        ctx.theta_dims = (theta_weight.dim(), theta_bias.dim())
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, flipped_x, mean_weight, delta_weight, eps_weight, eps_bias, sign_in, sign_out = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_flipped = grad_out * sign_out
        grad_x = grad_sigma_w = grad_sigma_b = None
        if needs[0]:
            grad_x = torch.bmm(grad_out, mean_weight).addcmul_(torch.bmm(grad_flipped, delta_weight), sign_in)
        grad_theta_w, grad_theta_b, grad_mu_w, grad_mu_b = mean_parameter_gradients(
            grad_out, x, ctx.theta_dims, needs[1] or needs[3], needs[2] or needs[4])
        if needs[5]:
            grad_sigma_w = batched_outer_sum(grad_flipped, flipped_x).mul_(eps_weight)
        if needs[6]:
            grad_sigma_b = grad_flipped.sum(1).mul_(eps_bias)
        return (grad_x, grad_theta_w, grad_theta_b, grad_mu_w, grad_mu_b, grad_sigma_w, grad_sigma_b,
                None, None, None, None)


def flipout_linear(x: Tensor, theta_weight: Tensor, theta_bias: Tensor, mu_weight: Tensor, mu_bias: Tensor,
                   sigma_weight: Tensor, sigma_bias: Tensor, eps_weight: Tensor, eps_bias: Tensor,
                   sign_in: Tensor, sign_out: Tensor) -> Tensor:
    """Flipout forward pass of ``W_m = θ + μ_m + σ_m ∘ ε_m`` with gradients for ``x``, ``θ``, ``μ``
    and ``σ``.

    Shapes: ``x``, ``sign_in`` ``[M, B, in]``; ``θ_weight`` ``[out, in]`` (or task-replicated
    ``[M, out, in]``); ``μ``, ``σ``, ``ε`` weights ``[M, out, in]``; ``θ_bias`` ``[out]`` (or
    ``[M, out]``); ``μ``, ``σ``, ``ε`` biases ``[M, out]``; ``sign_out`` ``[M, B, out]`` (signs in any
    dtype, e.g. :func:`~varshare.nn.layers.rademacher`'s ``int8``). Returns ``[M, B, out]``."""
    return _FlipoutLinear.apply(x, theta_weight, theta_bias, mu_weight, mu_bias, sigma_weight, sigma_bias,
                                eps_weight, eps_bias, sign_in, sign_out)
