"""Variational low-rank residual layer: ``W_m = θ + B_m A_m`` with Gaussian posteriors on the factors.

:class:`VariationalLoRALinear` (the ``varshare_lora`` variant):

* shared ``θ`` (weight ``[out, in]``, bias ``[out]``), orthogonal init, as every residual layer;
* per task ``m`` two factors ``A_m ∈ R^{r×in}`` and ``B_m ∈ R^{out×r}``, each with its own diagonal
  Gaussian posterior ``q(A_m) = N(μ_A, σ_A²)``, ``q(B_m) = N(μ_B, σ_B²)``, ``σ = softplus(ρ)``;
  the residual is ``φ_m = B_m A_m`` (no per-task bias: the bias is θ's alone, so a task owns
  exactly ``2·r·(in + out)`` numbers per layer — ``μ`` and ``ρ`` of both factors);
* init: ``μ_B = 0`` and ``μ_A ~ N(0, σ_prior²)`` (``μ_A`` starts as a draw from its own prior, as
  LoRA starts ``A`` random and ``B`` at zero), so ``φ = 0`` at the mean weights at start;
  ``ρ = rho_init`` everywhere;
* KL: ``KL(q(A_m) ‖ N(0, σ_prior²)) + KL(q(B_m) ‖ N(0, σ_prior²))``, summed over elements.

Noise: ``A`` and ``B`` are sampled separately, one ``ε_A`` and one ``ε_B`` per task per forward
batch (:class:`~varshare.nn.noise.FactorNoise`, like VarShare's shared-noise estimator; there is no
per-example noise), so every example of a task in a batch sees the same ``B_m A_m``. ``noise=None``
evaluates the mean, ``θ + μ_B μ_A``. For evaluation, :meth:`VariationalLoRALinear.draw_weight_samples`
draws both factors per example (:class:`~varshare.nn.noise.PerExampleFactorNoise`).

The residual is applied as ``(x A_mᵀ) B_mᵀ`` with two batched matmuls (``[M, B, r]`` in between);
the ``out × in`` product is never formed in the forward pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from varshare.nn.kl import zero_mean_kl_per_task
from varshare.nn.layers import VariationalLayer, orthogonal_
from varshare.nn.noise import FactorNoise, LayerNoise, PerExampleFactorNoise, affine


class VariationalLoRALinear(VariationalLayer):
    """``y_m = x_m θᵀ + b + (x_m A_mᵀ) B_mᵀ`` with ``A_m ~ q(A_m)``, ``B_m ~ q(B_m)`` (see module doc).

    Args:
        in_features, out_features, num_tasks: layer sizes and ``M``.
        gain: orthogonal-init gain of ``θ``.
        rank: ``r``, the inner dimension of ``B_m A_m``.
        rho_init: initial ``ρ`` of every factor element.
        prior_std: ``σ_prior`` of both factors, and the std of the random initial ``μ_A``.
    """

    shared_parameter_names = ("theta_weight", "theta_bias")

    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_tasks: int,
        gain: float = math.sqrt(2),
        rank: int = 4,
        rho_init: float = -5.0,
        prior_std: float = 0.1,
    ):
        super().__init__(in_features, out_features, num_tasks)
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.rank = rank
        self.prior_std = prior_std
        self.theta_weight = nn.Parameter(orthogonal_(torch.empty(out_features, in_features), gain))
        self.theta_bias = nn.Parameter(torch.zeros(out_features))
        self.mu_A = nn.Parameter(torch.randn(num_tasks, rank, in_features) * prior_std)
        self.rho_A = nn.Parameter(torch.full((num_tasks, rank, in_features), float(rho_init)))
        self.mu_B = nn.Parameter(torch.zeros(num_tasks, out_features, rank))
        self.rho_B = nn.Parameter(torch.full((num_tasks, out_features, rank), float(rho_init)))

    @property
    def sigma_A(self) -> Tensor:
        return F.softplus(self.rho_A)

    @property
    def sigma_B(self) -> Tensor:
        return F.softplus(self.rho_B)

    def draw_noise(self, batch_size, generator):
        device = self.mu_A.device
        return FactorNoise(torch.randn(self.mu_A.shape, generator=generator, device=device),
                           torch.randn(self.mu_B.shape, generator=generator, device=device))

    def draw_weight_samples(self, batch_size, generator):
        """Independent draws of both factors per example: example ``b`` of task ``m`` then uses
        ``θ + B_{m,b} A_{m,b}``."""
        device = self.mu_A.device
        M, r, inp = self.mu_A.shape
        return PerExampleFactorNoise(
            torch.randn((M, batch_size, r, inp), generator=generator, device=device),
            torch.randn((M, batch_size, self.out_features, r), generator=generator, device=device))

    def factors(self, noise: FactorNoise | None) -> tuple[Tensor, Tensor]:
        """``(A [M, r, in], B [M, out, r])``: the means (``noise=None``) or ``μ + σ ∘ ε``."""
        if noise is None:
            return self.mu_A, self.mu_B
        return self.mu_A + self.sigma_A * noise.eps_A, self.mu_B + self.sigma_B * noise.eps_B

    def forward(self, x: Tensor, noise: LayerNoise | None = None) -> Tensor:
        shared = affine(x, self.theta_weight, self.theta_bias)
        if isinstance(noise, PerExampleFactorNoise):
            A = self.mu_A.unsqueeze(1) + self.sigma_A.unsqueeze(1) * noise.eps_A
            B = self.mu_B.unsqueeze(1) + self.sigma_B.unsqueeze(1) * noise.eps_B
            return shared + torch.einsum("mbr,mbor->mbo", torch.einsum("mbi,mbri->mbr", x, A), B)
        A, B = self.factors(noise)
        return shared + torch.bmm(torch.bmm(x, A.transpose(1, 2)), B.transpose(1, 2))

    def residual_weight(self, noise: FactorNoise | None = None) -> Tensor:
        """``φ_m = B_m A_m`` ``[M, out, in]`` (for analysis; the forward pass never forms it)."""
        A, B = self.factors(noise)
        return torch.bmm(B, A)

    def posterior(self) -> list[tuple[Tensor, Tensor]]:
        return [(self.mu_A, self.sigma_A), (self.mu_B, self.sigma_B)]

    def kl_per_task(self) -> Tensor:
        """``KL(q(A_m) ‖ N(0, σ_prior²)) + KL(q(B_m) ‖ N(0, σ_prior²))`` per task: ``[M]``."""
        return sum(zero_mean_kl_per_task(mu, sigma, self.prior_std) for mu, sigma in self.posterior())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}"
