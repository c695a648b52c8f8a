"""VarShare layer with a group-horseshoe prior on the residual (the ``varshare_horseshoe`` variant).

Model, per layer, task ``m`` and output unit ``j`` (a *group*: row ``j`` of the weight residual and
bias residual element ``j``, ``in + 1`` numbers):

* prior: ``φ_{m,j,i} | λ_{m,j} ~ N(0, τ0² λ_{m,j}²)``, local scale ``λ_{m,j} ~ C⁺(0, 1)`` (half-Cauchy),
  global scale ``τ0`` fixed (config);
* posterior: ``q(φ) = N(μ, σ²)`` as in VarShare (``σ = softplus(ρ)``), and
  ``q(λ_{m,j}) = LogNormal(ℓ_{m,j}, s_{m,j}²)`` with ``s = softplus(ρ_λ)``, both learned.

The KL term is the KL between the joint posterior ``q(φ) q(λ)`` and the joint prior
``p(φ | λ) p(λ)`` (an upper bound on the KL of the ``φ`` marginals), in closed form except for one
expectation computed by Gauss–Hermite quadrature (deterministic):

``KL = Σ_elements E_q(λ)[KL(N(μ, σ²) ‖ N(0, τ0² λ²))] + Σ_groups KL(q(λ) ‖ C⁺(0, 1))`` with

* ``E_q(λ)[KL(...)] = log τ0 + ℓ − log σ + (σ² + μ²)/(2τ0²) · E[λ⁻²] − ½``,
  ``E[λ⁻²] = exp(−2ℓ + 2s²)``
  (``E[log λ] = ℓ``, log-normal moments);
* ``KL(q(λ) ‖ C⁺) = −H[q(λ)] − E_q[log p_C⁺(λ)]`` with the log-normal entropy
  ``H = ℓ + ½ + log s + ½ log 2π`` and ``E_q[log p_C⁺(λ)] = log(2/π) − E[log(1 + λ²)]``,
  ``E[log(1 + λ²)] = E_z[softplus(2(ℓ + s z))]``, ``z ~ N(0, 1)``, by :data:`GAUSS_HERMITE_NODES`-point
  Gauss–Hermite quadrature (error ≤ 1.5e-6 for s ≤ 2, ~1e-4 at s = 3; the nodes of negligible weight,
  :data:`NEGLIGIBLE_WEIGHT`, are skipped).

The scale parameters do not enter the forward pass (the network is VarShare's); they only shape the
KL, which shrinks each row's residual towards 0 with a per-row strength ``E[λ⁻²]/τ0²`` that the data
can relax (heavy Cauchy tail) or tighten (mass near 0).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from varshare.nn.kl import gaussian_group_moments
from varshare.nn.layers import VariationalResidualLinear, flat_posterior_mean_std

#: quadrature points for ``E[log(1 + λ²)]`` under the log-normal ``q(λ)``
GAUSS_HERMITE_NODES = 64
#: nodes whose normalised weight ``w_k/√π`` is below this are dropped (32 of 64 remain): their terms
#: add less than 3e-9 in all (measured against the full rule for ``ℓ ∈ [−10, 6]``, ``s ≤ 3``), far
#: below the rule's own error (1.5e-6 at ``s = 2``), and would cost half of the quadrature's time
NEGLIGIBLE_WEIGHT = 1e-10
#: when every scale ``s`` is at most ``SMALL_SCALE`` (the usual case: ``s`` starts at 0.13), a
#: ``SMALL_SCALE_NODES``-point rule is used instead: error < 1e-9 there (5.6e-10 measured against
#: scipy ``quad`` for ``ℓ ∈ [−10, 6]``), at half the cost
SMALL_SCALE, SMALL_SCALE_NODES = 0.5, 16
_LOG_2_OVER_PI = math.log(2 / math.pi)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _rule(num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes ``√2·t_k`` and normalised weights ``w_k/√π`` (negligible ones dropped)."""
    nodes, weights = np.polynomial.hermite.hermgauss(num_nodes)
    weights = weights / math.sqrt(math.pi)
    kept = weights > NEGLIGIBLE_WEIGHT
    return nodes[kept] * math.sqrt(2.0), weights[kept]


_RULES = {"full": _rule(GAUSS_HERMITE_NODES), "small_scale": _rule(SMALL_SCALE_NODES)}
_QUADRATURE: dict[tuple[str, torch.dtype, torch.device], tuple[Tensor, Tensor]] = {}


def _quadrature(rule: str, like: Tensor) -> tuple[Tensor, Tensor]:
    """``rule``'s nodes and weights as tensors like ``like`` (cached)."""
    key = (rule, like.dtype, like.device)
    if key not in _QUADRATURE:
        _QUADRATURE[key] = tuple(torch.as_tensor(a, dtype=like.dtype, device=like.device) for a in _RULES[rule])
    return _QUADRATURE[key]


class _ExpectedLog1pSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, loc, scale):
        ctx.rule = "small_scale" if scale.numel() and scale.max() <= SMALL_SCALE else "full"
        nodes, weights = _quadrature(ctx.rule, loc)
        # 2u_k = 2 loc + 2 scale √2 t_k as one small GEMM [..., 2] @ [2, K] (a broadcast multiply-add
        # over [..., K] is 3x slower)
        doubled = torch.stack([loc, scale], dim=-1) @ torch.stack([torch.full_like(nodes, 2.0), 2 * nodes])
        ctx.save_for_backward(doubled)
        return F.softplus(doubled) @ weights

    @staticmethod
    def backward(ctx, grad_output):
        (doubled,) = ctx.saved_tensors
        nodes, weights = _quadrature(ctx.rule, doubled)
        # d/d loc = Σ_k w_k 2 sigmoid(2u_k),  d/d scale = Σ_k w_k 2 sigmoid(2u_k) √2 t_k
        slope = torch.sigmoid(doubled)
        grad_loc = (slope @ (2 * weights)).mul_(grad_output)
        grad_scale = (slope @ (2 * weights * nodes)).mul_(grad_output)
        return grad_loc, grad_scale


def expected_log1p_square(loc: Tensor, scale: Tensor) -> Tensor:
    """``E[log(1 + λ²)]`` for ``log λ ~ N(loc, scale²)``, element-wise, by Gauss–Hermite quadrature:
    ``π^{-1/2} Σ_k w_k softplus(2(loc + √2 scale t_k))``, with a fused backward
    (``d softplus(y)/dy = sigmoid(y)``). The rule is the 64-point one, or the 16-point one when every
    ``scale`` is at most :data:`SMALL_SCALE` (see the module constants for their errors)."""
    return _ExpectedLog1pSquare.apply(loc, scale)


def lognormal_halfcauchy_kl(loc: Tensor, scale: Tensor) -> Tensor:
    """Element-wise ``KL(LogNormal(loc, scale²) ‖ C⁺(0, 1))`` (nats; quadrature for one term)."""
    entropy = loc + 0.5 + torch.log(scale) + _HALF_LOG_2PI
    expected_log_prior = _LOG_2_OVER_PI - expected_log1p_square(loc, scale)
    return -entropy - expected_log_prior


class HorseshoeResidualLinear(VariationalResidualLinear):
    """:class:`VariationalResidualLinear` plus per-task, per-output-unit log-normal posteriors of the
    horseshoe local scales (see the module docstring). Forward and noise are the parent's.

    Args:
        scale_loc_init: initial ``ℓ`` (``λ``'s log-median); 0 makes the prior scale ``τ0``.
        scale_rho_init: initial ``ρ_λ`` (``s = softplus(ρ_λ)``).
        (others as :class:`VariationalResidualLinear`)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_tasks: int,
        gain: float = math.sqrt(2),
        estimator="flipout",
        rho_init: float = -5.0,
        scale_loc_init: float = 0.0,
        scale_rho_init: float = -2.0,
    ):
        super().__init__(in_features, out_features, num_tasks, gain, estimator=estimator, rho_init=rho_init)
        self.scale_loc = nn.Parameter(torch.full((num_tasks, out_features), float(scale_loc_init)))
        self.scale_rho = nn.Parameter(torch.full((num_tasks, out_features), float(scale_rho_init)))

    @property
    def scale_sigma(self) -> Tensor:
        """``s``: the log-normal ``q(λ)``'s log-scale std ``[M, out]``."""
        return F.softplus(self.scale_rho)

    def kl_per_task(self, tau0: float) -> Tensor:  # type: ignore[override]
        """``KL(q(φ_m) q(λ_m) ‖ p(φ_m | λ_m) p(λ_m))`` of this layer, global scale ``tau0``: ``[M]``."""
        return horseshoe_kl_per_task([self], tau0)

    def expected_prior_std(self, tau0: float) -> Tensor:
        """``τ0 · E[λ⁻²]^{-1/2}`` ``[M, out]``: the prior std that the KL's quadratic term uses."""
        return tau0 * torch.exp(self.scale_loc - self.scale_sigma.square())


_GROUP_LAYOUTS: dict[tuple, tuple[tuple, Tensor]] = {}


def _group_layout(shapes: tuple[tuple[int, int], ...], like: Tensor) -> tuple[tuple, Tensor]:
    """For layers of ``(in, out)`` ``shapes`` in :func:`~varshare.nn.layers.flat_posterior`'s order:
    the :data:`~varshare.nn.kl.GroupBlock` layout of their groups (each layer's weight rows, then its
    bias) and every group's size ``in + 1`` ``[Σ out]`` like ``like`` (cached per shapes)."""
    key = (shapes, like.dtype, like.device)
    if key not in _GROUP_LAYOUTS:
        blocks, group_sizes, first = [], [], 0
        for in_features, out_features in shapes:
            blocks += [(first, out_features, in_features), (first, out_features, 1)]
            group_sizes += [in_features + 1] * out_features
            first += out_features
        with torch.inference_mode(False):  # a normal tensor even if first made in a rollout
            _GROUP_LAYOUTS[key] = (tuple(blocks), torch.tensor(group_sizes, dtype=like.dtype, device=like.device))
    return _GROUP_LAYOUTS[key]


def horseshoe_kl_per_task(layers: list[HorseshoeResidualLinear], tau0: float) -> Tensor:
    """``[M]``: ``Σ_layers KL(q(φ_m) q(λ_m) ‖ p(φ_m | λ_m) p(λ_m))`` (module docstring), global scale
    ``tau0``. All layers are computed in one pass: the per-group sums of ``σ² + μ²`` and the total of
    ``log σ`` over the flat posterior (:func:`gaussian_group_moments`; group ``j`` of a layer
    is weight row ``j`` and bias element ``j``), then the per-group terms over ``[M, Σ out]``."""
    mu, sigma = flat_posterior_mean_std(layers)
    blocks, group_size = _group_layout(tuple((layer.in_features, layer.out_features) for layer in layers), mu)
    second_moment, log_sigma = gaussian_group_moments(mu, sigma, blocks)
    loc = torch.cat([layer.scale_loc for layer in layers], dim=1)
    s = F.softplus(torch.cat([layer.scale_rho for layer in layers], dim=1))
    half_inv_var = torch.exp(2 * (s.square() - loc)) / (2 * tau0**2)  # E[λ⁻²] / (2 τ0²): [M, Σ out]
    per_group = (group_size * (math.log(tau0) + loc - 0.5) + second_moment * half_inv_var
                 + lognormal_halfcauchy_kl(loc, s))
    return per_group.sum(dim=-1) - log_sigma
