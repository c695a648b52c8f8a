"""``varshare_trust_region``: VarShare plus a KL trust region on each task's posterior.

At :meth:`~VarShareTrustRegion.begin_update` the posterior ``q_m^old = N(μ_m, σ_m²)`` of every
variational layer (weights and biases) is snapshotted (detached copies). During the update phase
the loss gains

``coef · Σ_m KL(q_m ‖ q_m^old) / N_data``,
``KL(N(μ, σ²) ‖ N(μ₀, σ₀²)) = log(σ₀/σ) + (σ² + (μ − μ₀)²) / (2σ₀²) − ½`` per element,

summed over all residual elements of all layers. Scaling: exactly like VarShare's prior KL (per-task
sums, summed over tasks, divided by ``N_data``), so ``coef`` and ``β`` are on the same
per-transition scale. The term is 0 with zero gradient at the snapshot, so the first minibatch of
each update phase is unaffected; it is logged as ``trust_region_kl`` (nats, summed over tasks).
Config: ``trust_region.coef``. Before the first snapshot the term is absent.
"""

from __future__ import annotations

import torch
from torch import Tensor

from varshare.methods.base import Networks, register
from varshare.methods.varshare import VarShare, variational_layers
from varshare.nn import gaussian_kl_per_task

Snapshot = dict[str, list[tuple[Tensor, Tensor]]]


@register
class VarShareTrustRegion(VarShare):
    name = "varshare_trust_region"

    def __init__(self, config, num_tasks, seed):
        super().__init__(config, num_tasks, seed)
        #: ``q^old``: per layer name, detached copies of its posterior's ``(μ, σ)`` pairs, taken at
        #: the last :meth:`begin_update`
        self.snapshot: Snapshot | None = None

    def begin_update(self, networks, progress):
        with torch.no_grad():
            self.snapshot = {name: [(mu.detach().clone(), sigma.detach().clone()) for mu, sigma in layer.posterior()]
                             for name, layer in variational_layers(networks).items()}

    def state_dict(self):
        """The snapshot: an update phase may span a checkpoint (SAC's phases are gradient-step counts)."""
        return {"snapshot": self.snapshot}

    def load_state_dict(self, state):
        self.snapshot = state["snapshot"]

    def trust_region_kl(self, networks: Networks) -> Tensor:
        """``Σ_layers Σ_m KL(q_m ‖ q_m^old)`` against the last snapshot (scalar, nats)."""
        if self.snapshot is None:
            raise RuntimeError("no snapshot: begin_update has not been called")
        return sum(gaussian_kl_per_task(mu, sigma, old_sigma, old_mu).sum()
                   for name, layer in variational_layers(networks).items()
                   for (mu, sigma), (old_mu, old_sigma) in zip(layer.posterior(), self.snapshot[name]))

    def extra_loss(self, networks, examples_per_task):
        loss, stats = super().extra_loss(networks, examples_per_task)
        if self.snapshot is None:
            return loss, stats
        trust_region_kl = self.trust_region_kl(networks)
        loss = loss + self.config.trust_region.coef * trust_region_kl / examples_per_task
        return loss, {**stats, "trust_region_kl": trust_region_kl.item()}
