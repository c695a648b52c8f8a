"""VarShare: ``W_m = θ + μ_m + σ_m ⊙ ε`` on every layer (head included) with posterior
``q_m = N(μ_m, σ_m²)`` and a fixed prior ``N(0, σ_prior²)``; loss = RL + β·Σ_m KL(q_m ‖ p) / N_data.

θ pays no KL and receives every task's gradient, so sharing is the default; a task's residual
moves away from zero only where its reward pays for the KL.

The base class of the whole VarShare family: a variant changes the layer (:meth:`VarShare.make_layer`:
another estimator, a low-rank or horseshoe residual, a learned prior — each layer computes its own
KL), or adds to the loss or the update hooks.
"""

from __future__ import annotations

import torch

from varshare.methods.base import Method, Networks, register
from varshare.nn import VariationalLayer, VariationalResidualLinear, named_layers


def variational_layers(networks: Networks) -> dict[str, VariationalLayer]:
    """Every layer with a Gaussian posterior, by ``"<network>.layers.<index>"``."""
    return {name: layer for name, layer in named_layers(networks).items() if isinstance(layer, VariationalLayer)}


@register
class VarShare(Method):
    name = "varshare"

    def make_layer(self, in_features, out_features, is_head, gain):
        options = self.config.varshare
        return VariationalResidualLinear(
            in_features, out_features, self.num_tasks, gain,
            estimator=options.estimator, rho_init=options.rho_init, prior_std=options.sigma_prior,
        )

    @property
    def beta(self) -> float:
        """The KL weight β in use."""
        return self.config.varshare.beta

    def kl(self, networks: Networks) -> torch.Tensor:
        """``Σ_layers Σ_m KL(q_m ‖ p)`` over every variational layer of ``networks`` (scalar, nats)."""
        return sum(layer.kl_per_task().sum() for layer in variational_layers(networks).values())

    def extra_loss(self, networks, examples_per_task):
        kl = self.kl(networks)
        return self.beta * kl / examples_per_task, {"kl": kl.item()}

    def task_diagnostics(self, networks):
        """Per variational layer and task (:meth:`~varshare.nn.VariationalLayer.task_statistics`):
        mean |μ|, mean σ, KL, and the layer type's own (``<statistic>/<layer name>``)."""
        return {f"{stat}/{name}": value for name, layer in variational_layers(networks).items()
                for stat, value in layer.task_statistics().items()}

    def diagnostics(self, networks):
        """The task means of :meth:`task_diagnostics`, except the KL (logged with the loss)."""
        return {key: value.mean().item() for key, value in self.task_diagnostics(networks).items()
                if not key.startswith("kl/")}
