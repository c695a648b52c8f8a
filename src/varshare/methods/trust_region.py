"""``varshare_trust_region``: VarShare plus a KL trust region on each task's posterior.

At :meth:`~VarShareTrustRegion.begin_update` the posterior ``q_m^old = N(μ_m, σ_m²)`` of every
variational layer (weights and biases) is snapshotted (detached copies). During the update phase
the loss gains

``coef · Σ_m KL(q_m ‖ q_m^old) / N_data``,
``KL(N(μ, σ²) ‖ N(μ₀, σ₀²)) = log(σ₀/σ) + (σ² + (μ − μ₀)²) / (2σ₀²) − ½`` per element,

summed over all residual elements of all layers. Scaling: exactly like VarShare's prior KL (per-task
sums, summed over tasks, divided by ``N_data``, the per-task update batch), so ``coef`` and ``β`` are
on the same per-transition scale. The term is 0 with zero gradient at the snapshot, so the first
minibatch of each update phase is unaffected; it is logged as ``trust_region_kl`` (nats, summed
over tasks). Config: ``trust_region.coef``. Before the first snapshot the term is absent.
"""

from __future__ import annotations

import torch
from torch import Tensor

from varshare.methods.base import register
from varshare.methods.varshare import VarShare
from varshare.nn import diagonal_gaussian_kl_elements


def posterior_tensors(layer) -> list[tuple[Tensor, Tensor]]:
    """``[(μ, σ), ...]`` of a variational residual layer: weight and bias, task axis first."""
    return [(layer.mu_weight, layer.sigma_weight), (layer.mu_bias, layer.sigma_bias)]


@register
class VarShareTrustRegion(VarShare):
    name = "varshare_trust_region"

    def __init__(self, config, num_tasks, seed):
        super().__init__(config, num_tasks, seed)
        #: per variational layer, ``[(μ_old, σ_old), ...]`` from the last :meth:`begin_update`
        self.snapshot: list[list[tuple[Tensor, Tensor]]] | None = None

    def begin_update(self, model, progress):
        with torch.no_grad():
            self.snapshot = [
                [(mu.detach().clone(), sigma.detach().clone()) for mu, sigma in posterior_tensors(layer)]
                for layer in self.variational_layers(model)
            ]

    def trust_region_kl_per_task(self, model) -> Tensor:
        """``[M]``: ``Σ_layers KL(q_m ‖ q_m^old)`` against the last snapshot."""
        if self.snapshot is None:
            raise RuntimeError("no snapshot: begin_update has not been called")
        total = 0
        for layer, old in zip(self.variational_layers(model), self.snapshot, strict=True):
            for (mu, sigma), (mu_old, sigma_old) in zip(posterior_tensors(layer), old, strict=True):
                total = total + diagonal_gaussian_kl_elements(mu, sigma, mu_old, sigma_old).flatten(1).sum(dim=1)
        return total

    def extra_loss(self, model, examples_per_task):
        loss, stats = super().extra_loss(model, examples_per_task)
        if self.snapshot is None:
            return loss, stats
        kl = self.trust_region_kl_per_task(model).sum()
        coef = self.config.trust_region.coef
        return loss + coef * kl / examples_per_task, {**stats, "trust_region_kl": kl.item()}
