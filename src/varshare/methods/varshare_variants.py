"""Small VarShare variants that change one thing of the base method:

* ``varshare_shared_noise``: one ``ε`` per task per rollout shared by every example (estimator
  ``shared_noise``, whatever ``varshare.estimator`` says);
* ``varshare_lrt``: the local reparameterisation (estimator ``local_reparam``);
* ``varshare_kl_anneal``: ``β(progress) = varshare.beta · min(1, progress / kl_anneal.warmup_fraction)``,
  set at each :meth:`~Method.begin_update` (``progress`` = iterations done / total, so the first
  update phase has β = 0); the β in use is logged (``beta`` with the loss statistics and
  ``kl_beta`` in the diagnostics);
* ``varshare_mean_rollout``: rollouts act with the mean weights ``θ + μ`` (no noise drawn or stored);
  the update draws fresh noise, so its first minibatch's ratio is π_sampled / π_mean, not 1 — by
  design (it tests the claim that weight noise in rollouts drives exploration).
"""

from __future__ import annotations

from typing import ClassVar

from varshare.methods.base import register
from varshare.methods.varshare import VarShare
from varshare.nn import VariationalResidualLinear


class _FixedEstimator(VarShare):
    estimator: ClassVar[str]

    def make_layer(self, in_features, out_features, is_head, gain):
        return VariationalResidualLinear(
            in_features, out_features, self.num_tasks, gain,
            estimator=self.estimator, rho_init=self.config.varshare.rho_init,
        )


@register
class VarShareSharedNoise(_FixedEstimator):
    name = "varshare_shared_noise"
    estimator = "shared_noise"


@register
class VarShareLRT(_FixedEstimator):
    name = "varshare_lrt"
    estimator = "local_reparam"


def kl_anneal_factor(progress: float, warmup_fraction: float) -> float:
    """``min(1, progress / warmup_fraction)``: the fraction of β used at ``progress`` ∈ [0, 1]."""
    return min(1.0, max(0.0, progress) / warmup_fraction)


@register
class VarShareKLAnneal(VarShare):
    name = "varshare_kl_anneal"

    def __init__(self, config, num_tasks, seed):
        super().__init__(config, num_tasks, seed)
        self.beta_factor = kl_anneal_factor(0.0, config.kl_anneal.warmup_fraction)

    @property
    def beta(self) -> float:
        """The β in use."""
        return self.beta_factor * self.config.varshare.beta

    def begin_update(self, model, progress):
        self.beta_factor = kl_anneal_factor(progress, self.config.kl_anneal.warmup_fraction)

    def extra_loss(self, model, examples_per_task):
        loss, stats = super().extra_loss(model, examples_per_task)  # full-β loss
        return loss * self.beta_factor, {**stats, "beta": self.beta}

    def diagnostics(self, model):
        return {**super().diagnostics(model), "kl_beta": self.beta}


@register
class VarShareMeanRollout(VarShare):
    name = "varshare_mean_rollout"
    rollout_mean_weights = True
