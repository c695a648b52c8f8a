"""Multi-task linear layers: inputs ``x`` of shape ``[M, B, in]`` → outputs ``[M, B, out]``.

Every layout stores its per-task tensors stacked on a leading task axis and computes all tasks in
one batched matmul; there is no loop over tasks. A layer's weight for task ``m`` is:

=============================  ===============================================================
:class:`SharedLinear`          ``W`` (one tensor for all tasks, broadcast)
:class:`PerTaskLinear`         ``W_m`` (``[M, out, in]``)
:class:`ResidualLinear`        ``θ + φ_m`` (deterministic residual, ``φ`` initialised to 0)
:class:`VariationalResidualLinear`  ``θ + μ_m + σ_m ⊙ ε`` with ``σ = softplus(ρ)``
=============================  ===============================================================

Biases follow the same rule as weights. Stochastic layers take their randomness as an explicit
argument (a :mod:`varshare.nn.noise` object drawn by :meth:`MultiTaskLinear.draw_noise`), so an
algorithm can replay exactly the weight sample that produced an action; ``noise=None`` evaluates
the mean weights. Every layer is plain autograd, so Polyak copies (``target.data.copy_(...)``),
``torch.func`` transforms and any device work on it unchanged.

Shared parameters (no task axis) may be replaced, e.g. through ``torch.func.functional_call``, by
a task-replicated tensor ``[M, *shape]``; the layers then compute with per-task copies, which is
how per-task gradients of shared parameters are obtained with a single backward pass.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from varshare.nn.kl import zero_mean_kl_per_task
from varshare.nn.noise import ESTIMATORS, LayerNoise, PerExampleWeightNoise, affine

Estimator = Literal["flipout", "shared_noise", "local_reparam"]


def orthogonal_(tensor: Tensor, gain: float) -> Tensor:
    """Orthogonal init of ``[out, in]`` or, per task independently, of ``[M, out, in]``."""
    with torch.no_grad():
        for matrix in tensor.view(-1, *tensor.shape[-2:]):
            nn.init.orthogonal_(matrix, gain)
    return tensor


class MultiTaskLinear(nn.Module):
    """Base of the task-batched linear layers.

    Args:
        in_features, out_features: sizes of one example's input and output.
        num_tasks: ``M``.
    """

    #: names of parameters without a task axis (shared by all tasks)
    shared_parameter_names: ClassVar[tuple[str, ...]] = ()
    #: whether the weights are random (the layer draws noise)
    stochastic: ClassVar[bool] = False

    def __init__(self, in_features: int, out_features: int, num_tasks: int):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.num_tasks = num_tasks

    def forward(self, x: Tensor, noise: LayerNoise | None = None) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def draw_noise(self, batch_size: int, generator: torch.Generator | None) -> LayerNoise | None:
        """The noise of one forward pass of ``batch_size`` examples per task (None: deterministic)."""
        return None

    def draw_weight_samples(self, batch_size: int, generator: torch.Generator | None) -> LayerNoise | None:
        """Noise giving every example its own independent draw of the full weights (the sample-k
        evaluation strategies; None: deterministic)."""
        return None

    def parameter_count_per_task(self) -> tuple[int, int]:
        """``(shared, per_task)``: parameters shared by all tasks and those each task owns."""
        shared = sum(p.numel() for n, p in self.named_parameters() if n in self.shared_parameter_names)
        total = sum(p.numel() for p in self.parameters())
        return shared, (total - shared) // self.num_tasks

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, tasks={self.num_tasks}"


class SharedLinear(MultiTaskLinear):
    """One weight for every task: ``y_m = x_m Wᵀ + b``."""

    shared_parameter_names = ("weight", "bias")

    def __init__(self, in_features: int, out_features: int, num_tasks: int, gain: float = math.sqrt(2)):
        super().__init__(in_features, out_features, num_tasks)
        self.weight = nn.Parameter(orthogonal_(torch.empty(out_features, in_features), gain))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: Tensor, noise: LayerNoise | None = None) -> Tensor:
        return affine(x, self.weight, self.bias)


class PerTaskLinear(MultiTaskLinear):
    """A free weight per task: ``y_m = x_m W_mᵀ + b_m`` (``W`` is ``[M, out, in]``)."""

    def __init__(self, in_features: int, out_features: int, num_tasks: int, gain: float = math.sqrt(2)):
        super().__init__(in_features, out_features, num_tasks)
        self.weight = nn.Parameter(orthogonal_(torch.empty(num_tasks, out_features, in_features), gain))
        self.bias = nn.Parameter(torch.zeros(num_tasks, out_features))

    def forward(self, x: Tensor, noise: LayerNoise | None = None) -> Tensor:
        return affine(x, self.weight, self.bias)


class ResidualLinear(MultiTaskLinear):
    """Shared base plus a deterministic per-task residual: ``W_m = θ + φ_m`` (``φ`` starts at 0)."""

    shared_parameter_names = ("theta_weight", "theta_bias")

    def __init__(self, in_features: int, out_features: int, num_tasks: int, gain: float = math.sqrt(2)):
        super().__init__(in_features, out_features, num_tasks)
        self.theta_weight = nn.Parameter(orthogonal_(torch.empty(out_features, in_features), gain))
        self.theta_bias = nn.Parameter(torch.zeros(out_features))
        self.phi_weight = nn.Parameter(torch.zeros(num_tasks, out_features, in_features))
        self.phi_bias = nn.Parameter(torch.zeros(num_tasks, out_features))

    def forward(self, x: Tensor, noise: LayerNoise | None = None) -> Tensor:
        return affine(x, self.theta_weight + self.phi_weight, self.theta_bias + self.phi_bias)

    def residual_sq_norm(self) -> Tensor:
        """``Σ_m ‖φ_m‖²`` over weights and biases (scalar)."""
        return self.phi_weight.square().sum() + self.phi_bias.square().sum()


class VariationalLayer(MultiTaskLinear):
    """Base of the layers with Gaussian posteriors ``q_m`` over their task-specific tensors: what the
    VarShare family of methods needs from a layer, whatever its parameterisation."""

    stochastic = True

    def posterior(self) -> list[tuple[Tensor, Tensor]]:  # pragma: no cover - abstract
        """``[(μ, σ), ...]``: means and standard deviations ``[M, ...]`` of every posterior tensor."""
        raise NotImplementedError

    def kl_per_task(self) -> Tensor:  # pragma: no cover - abstract
        """``[M]``: ``KL(q_m ‖ p)`` of the layer against its prior (nats)."""
        raise NotImplementedError

    def task_statistics(self) -> dict[str, Tensor]:
        """Per-task diagnostics ``[M]`` by name: mean |residual|, mean σ, KL (subclasses add theirs)."""
        with torch.no_grad():
            return {"mu_abs_mean": self.residual_weight().abs().mean(dim=(1, 2)),
                    "sigma_mean": self.residual_sigma().mean(dim=1), "kl": self.kl_per_task()}

    def residual_weight(self) -> Tensor:  # pragma: no cover - abstract
        """The weight residual at the posterior means, ``[M, out, in]``."""
        raise NotImplementedError

    def residual_sigma(self) -> Tensor:
        """``[M, n]``: the posterior standard deviations that ``sigma_mean`` averages (default: every
        posterior tensor's)."""
        return torch.cat([sigma.flatten(1) for _, sigma in self.posterior()], dim=1)


class VariationalResidualLinear(VariationalLayer):
    """VarShare layer: ``W_m = θ + μ_m + σ_m ⊙ ε``, ``σ = softplus(ρ)``, with ``q_m = N(μ_m, σ_m²)``
    and prior ``N(0, σ_prior²)`` on every residual element (weights and biases).

    Args:
        estimator: how weight noise reaches the output in training (:data:`~varshare.nn.noise.ESTIMATORS`):
            ``"flipout"`` (:class:`~varshare.nn.noise.FlipoutNoise`), ``"shared_noise"``
            (:class:`~varshare.nn.noise.SharedWeightNoise`), ``"local_reparam"``
            (:class:`~varshare.nn.noise.LocalReparamNoise`).
        rho_init: initial ``ρ`` of every residual element (σ = softplus(ρ_init)).
        prior_std: ``σ_prior``.
        learn_prior: learn ``log σ_prior`` (one scalar for the layer, all tasks), initialised at
            ``log(prior_std)``: parameter ``log_prior_std``; it has no task axis but is not shared
            weight (leave-one-out starts it fresh and never freezes it).
    """

    shared_parameter_names = ("theta_weight", "theta_bias")

    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_tasks: int,
        gain: float = math.sqrt(2),
        estimator: Estimator = "flipout",
        rho_init: float = -5.0,
        prior_std: float = 0.1,
        learn_prior: bool = False,
    ):
        super().__init__(in_features, out_features, num_tasks)
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {tuple(ESTIMATORS)}, got {estimator!r}")
        self.estimator = estimator
        self.theta_weight = nn.Parameter(orthogonal_(torch.empty(out_features, in_features), gain))
        self.theta_bias = nn.Parameter(torch.zeros(out_features))
        self.mu_weight = nn.Parameter(torch.zeros(num_tasks, out_features, in_features))
        self.mu_bias = nn.Parameter(torch.zeros(num_tasks, out_features))
        self.rho_weight = nn.Parameter(torch.full((num_tasks, out_features, in_features), float(rho_init)))
        self.rho_bias = nn.Parameter(torch.full((num_tasks, out_features), float(rho_init)))
        self.prior_std = prior_std
        self.log_prior_std = nn.Parameter(torch.tensor(math.log(prior_std))) if learn_prior else None

    @property
    def sigma_weight(self) -> Tensor:
        return F.softplus(self.rho_weight)

    @property
    def sigma_bias(self) -> Tensor:
        return F.softplus(self.rho_bias)

    def prior_sigma(self) -> float | Tensor:
        """``σ_prior``: the fixed float, or the learned scalar tensor (with gradient)."""
        return self.prior_std if self.log_prior_std is None else self.log_prior_std.exp()

    def draw_noise(self, batch_size, generator):
        return ESTIMATORS[self.estimator].draw(self.num_tasks, self.in_features, self.out_features, batch_size,
                                               generator, self.mu_weight.device)

    def draw_weight_samples(self, batch_size, generator):
        return PerExampleWeightNoise.draw(self.num_tasks, self.in_features, self.out_features, batch_size,
                                          generator, self.mu_weight.device)

    def forward(self, x: Tensor, noise: LayerNoise | None = None) -> Tensor:
        mean_weight = self.theta_weight + self.mu_weight
        mean_bias = self.theta_bias + self.mu_bias
        if noise is None:
            return affine(x, mean_weight, mean_bias)
        return noise.affine(x, mean_weight, mean_bias, self.sigma_weight, self.sigma_bias)

    def posterior(self) -> list[tuple[Tensor, Tensor]]:
        return [(self.mu_weight, self.sigma_weight), (self.mu_bias, self.sigma_bias)]

    def kl_per_task(self) -> Tensor:
        """``[M]``: ``KL(q_m ‖ N(0, σ_prior² I))`` over weights and biases (σ_prior's gradient flows
        when it is learned)."""
        sigma_prior = self.prior_sigma()
        return sum(zero_mean_kl_per_task(mu, sigma, sigma_prior) for mu, sigma in self.posterior())

    def residual_weight(self) -> Tensor:
        return self.mu_weight

    def residual_sigma(self) -> Tensor:
        """The weight residual's σ, as ``mu_abs_mean`` is of its mean (biases in neither)."""
        return self.sigma_weight.flatten(1)

    def task_statistics(self) -> dict[str, Tensor]:
        stats = super().task_statistics()
        if self.log_prior_std is not None:
            stats["sigma_prior"] = self.log_prior_std.detach().exp().expand(self.num_tasks)
        return stats

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, estimator={self.estimator}"
