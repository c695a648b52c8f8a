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
from varshare.nn import gaussian_kls_per_task
from varshare.nn.kl import ConstantGaussian
from varshare.nn.layers import flat_posterior_mean_std


@register
class VarShareTrustRegion(VarShare):
    name = "varshare_trust_region"

    def __init__(self, config, num_tasks, seed):
        super().__init__(config, num_tasks, seed)
        #: ``q^old = N(μ_old, σ_old²)``, ``[M, P]`` (all residuals, :func:`flat_posterior`'s order),
        #: from the last :meth:`begin_update`
        self.snapshot: ConstantGaussian | None = None

    def begin_update(self, model, progress):
        with torch.no_grad():
            # σ is the flat posterior's of this version: the update's first step reuses it
            self.snapshot = ConstantGaussian.of(*flat_posterior_mean_std(self.variational_layers(model)))

    def prior_and_trust_region_kl(self, model) -> tuple[Tensor, Tensor]:
        """``([M], [M])``: ``Σ_layers KL(q_m ‖ p)`` (the prior's) and ``Σ_layers KL(q_m ‖ q_m^old)``
        (against the last snapshot), in one pass over the posterior (``σ``, ``log σ`` and their
        gradients computed once for both)."""
        if self.snapshot is None:
            raise RuntimeError("no snapshot: begin_update has not been called")
        mu, sigma = flat_posterior_mean_std(self.variational_layers(model))
        prior_kl, trust_region_kl = gaussian_kls_per_task(
            mu, sigma, [(None, self.config.varshare.sigma_prior), self.snapshot])
        return prior_kl, trust_region_kl

    def extra_loss(self, model, examples_per_task):
        if self.snapshot is None:
            return super().extra_loss(model, examples_per_task)
        prior_kl, trust_region_kl = (kl.sum() for kl in self.prior_and_trust_region_kl(model))
        loss = (self.config.varshare.beta * prior_kl + self.config.trust_region.coef * trust_region_kl)
        return loss / examples_per_task, {"kl": prior_kl.item(), "trust_region_kl": trust_region_kl.item()}
