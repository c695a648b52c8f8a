"""Small VarShare variants that change one thing of the base method:

* ``varshare_shared_noise``: one ``ε`` per task per batch shared by every example (estimator
  ``shared_noise``, whatever ``varshare.estimator`` says);
* ``varshare_lrt``: the local reparameterisation (estimator ``local_reparam``);
* ``varshare_adaptive_prior``: ``σ_prior`` learned per layer (one scalar shared by the layer's tasks,
  weights and bias, initialised at ``varshare.sigma_prior``; empirical Bayes, no hyperprior): the
  KL's gradient ``∂/∂ log σ_p = Σ_elements (1 − (σ² + μ²)/σ_p²)`` pulls ``σ_p²`` to the layer's
  ``mean(σ² + μ²)``;
* ``varshare_kl_anneal``: ``β(progress) = varshare.beta · min(1, progress / kl_anneal.warmup_fraction)``,
  set at each :meth:`~Method.begin_update` (``progress`` = fraction of training done, so the first
  update phase has β = 0); the β in use is logged (``beta`` with the loss statistics and
  ``kl_beta`` in the diagnostics);
* ``varshare_mean_rollout``: acting uses the mean weights ``θ + μ`` (no noise drawn or stored);
  updates draw fresh noise, so PPO's first-minibatch ratio is π_sampled / π_mean, not 1 — by
  design (it tests the claim that weight noise in rollouts drives exploration).
"""

from __future__ import annotations

from typing import ClassVar

from varshare.methods.base import register
from varshare.methods.varshare import VarShare
from varshare.nn import VariationalResidualLinear


class _VarShareLayerOption(VarShare):
    """VarShare with one option of its layers fixed by the variant."""

    layer_options: ClassVar[dict]

    def make_layer(self, in_features, out_features, is_head, gain):
        options = self.config.varshare
        return VariationalResidualLinear(
            in_features, out_features, self.num_tasks, gain,
            **{"estimator": options.estimator, "rho_init": options.rho_init, "prior_std": options.sigma_prior,
               **self.layer_options},
        )


@register
class VarShareSharedNoise(_VarShareLayerOption):
    name = "varshare_shared_noise"
    layer_options = {"estimator": "shared_noise"}


@register
class VarShareLRT(_VarShareLayerOption):
    name = "varshare_lrt"
    layer_options = {"estimator": "local_reparam"}


@register
class VarShareAdaptivePrior(_VarShareLayerOption):
    name = "varshare_adaptive_prior"
    layer_options = {"learn_prior": True}


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
        return self.beta_factor * self.config.varshare.beta

    def begin_update(self, networks, progress):
        self.beta_factor = kl_anneal_factor(progress, self.config.kl_anneal.warmup_fraction)

    def extra_loss(self, networks, examples_per_task):
        loss, stats = super().extra_loss(networks, examples_per_task)
        return loss, {**stats, "beta": self.beta}

    def state_dict(self):
        return {"beta_factor": self.beta_factor}

    def load_state_dict(self, state):
        self.beta_factor = state["beta_factor"]

    def diagnostics(self, networks):
        return {**super().diagnostics(networks), "kl_beta": self.beta}


@register
class VarShareMeanRollout(VarShare):
    name = "varshare_mean_rollout"
    act_with_mean_weights = True
