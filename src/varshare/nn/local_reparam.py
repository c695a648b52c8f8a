"""The local reparameterisation estimator of a variational residual layer as one autograd node.

For ``x`` ``[M, B, in]`` and ``W_m ~ N(θ + μ_m, σ_m²)`` (``σ = softplus(ρ)``, biases alike) the
pre-activations are Gaussian, and are sampled directly:

    y = x W̄ᵀ + b̄ + sqrt(x² (σ²)ᵀ + σ_b² + 1e-8) ∘ ξ,   W̄ = θ + μ,  ξ ~ N(0, 1) per example and output.

The hand-written backward uses the same four batched matmuls autograd would, without its chain of
small nodes. Gradients (``g = ∂L/∂y``, ``s = sqrt(·)``, ``h = g ∘ ξ / (2s)``):

    ∂L/∂μ = gᵀ x,   ∂L/∂θ = Σ_m gᵀ x (or per task for a task-replicated θ),
    ∂L/∂σ = (hᵀ x²) ∘ 2σ,   ∂L/∂x = g W̄ + 2x ∘ (h σ²).

The layer takes ``σ`` itself (``softplus(ρ)``, computed once per step for the whole network by
:class:`~varshare.nn.flat_posterior.FlatPosterior`, which applies ``∂σ/∂ρ``).

``tests/test_nn_numerics.py`` checks values and gradients against the autograd composition.
"""

from __future__ import annotations

import torch
from torch import Tensor

from varshare.nn.mean_gradients import batched_outer_sum, mean_parameter_gradients

#: added to the output variance before the square root (keeps its gradient finite)
VARIANCE_FLOOR = 1e-8


class _LocalReparamLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, theta_weight, theta_bias, mu_weight, mu_bias, sigma_weight, sigma_bias, xi):
        mean_weight = theta_weight + mu_weight
        var_weight = sigma_weight * sigma_weight
        x_squared = x * x
        out = torch.baddbmm((theta_bias + mu_bias).unsqueeze(-2), x, mean_weight.transpose(-1, -2))
        floored_var_bias = (sigma_bias * sigma_bias).add_(VARIANCE_FLOOR)  # the floor rides on the bias
        std = torch.baddbmm(floored_var_bias.unsqueeze(-2), x_squared, var_weight.transpose(-1, -2)).sqrt_()
        out.addcmul_(std, xi)
        ctx.save_for_backward(x, x_squared, mean_weight, var_weight, sigma_weight, sigma_bias, std, xi)
        ctx.theta_dims = (theta_weight.dim(), theta_bias.dim())
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, x_squared, mean_weight, var_weight, sigma_weight, sigma_bias, std, xi = ctx.saved_tensors
        needs = ctx.needs_input_grad
        # 2·∂L/∂(output variance) = g ∘ ξ / s: [M, B, out]; the 2 cancels the 2 of ∂(x², σ², σ_b²)
        twice_grad_var = torch.mul(grad_out, xi).div_(std)
        grad_x = grad_sigma_w = grad_sigma_b = None
        if needs[0]:
            grad_x = torch.bmm(grad_out, mean_weight).addcmul_(torch.bmm(twice_grad_var, var_weight), x)
        grad_theta_w, grad_theta_b, grad_mu_w, grad_mu_b = mean_parameter_gradients(
            grad_out, x, ctx.theta_dims, needs[1] or needs[3], needs[2] or needs[4])
        if needs[5]:
            grad_sigma_w = batched_outer_sum(twice_grad_var, x_squared).mul_(sigma_weight)
        if needs[6]:
            grad_sigma_b = twice_grad_var.sum(1).mul_(sigma_bias)
        return grad_x, grad_theta_w, grad_theta_b, grad_mu_w, grad_mu_b, grad_sigma_w, grad_sigma_b, None


def local_reparam_linear(x: Tensor, theta_weight: Tensor, theta_bias: Tensor, mu_weight: Tensor, mu_bias: Tensor,
                         sigma_weight: Tensor, sigma_bias: Tensor, xi: Tensor) -> Tensor:
    """Local-reparameterisation forward pass with gradients for ``x``, ``θ``, ``μ`` and ``σ``.

    Shapes: ``x`` ``[M, B, in]``; ``θ_weight`` ``[out, in]`` (or task-replicated ``[M, out, in]``);
    ``μ``, ``σ`` weights ``[M, out, in]``; ``θ_bias`` ``[out]`` (or ``[M, out]``); ``μ``, ``σ`` biases
    ``[M, out]``; ``xi`` ``[M, B, out]`` standard normal. Returns ``[M, B, out]``."""
    return _LocalReparamLinear.apply(x, theta_weight, theta_bias, mu_weight, mu_bias, sigma_weight, sigma_bias, xi)


def local_reparam_affine(x: Tensor, mean_weight_t: Tensor, mean_bias_row: Tensor, var_weight_t: Tensor,
                         floored_var_bias_row: Tensor, xi: Tensor) -> Tensor:
    """The same output from derived tensors laid out for the batched matmuls (no parameter
    gradients; used by rollout caches): ``(θ + μ)ᵀ`` and ``(σ²)ᵀ`` ``[M, in, out]``, the mean bias
    and ``σ_b² + VARIANCE_FLOOR`` ``[M, 1, out]`` (the floor folded into the bias: one op fewer per
    layer and rollout step); ``x`` ``[M, B, in]``, ``xi`` ``[M, B, out]`` → ``[M, B, out]``."""
    out = torch.baddbmm(mean_bias_row, x, mean_weight_t)
    std = torch.baddbmm(floored_var_bias_row, x * x, var_weight_t).sqrt_()
    return out.addcmul_(std, xi)
