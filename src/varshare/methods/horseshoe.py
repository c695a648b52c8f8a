"""``varshare_horseshoe``: VarShare with a group-horseshoe prior on the residual instead of the fixed
Gaussian (layer: :class:`varshare.nn.HorseshoeResidualLinear`; its module docstring gives the model
and the variational approximation of the scales).

Per layer, task and output unit ``j``: ``φ_{m,j,·} | λ ~ N(0, τ0² λ²)``, ``λ ~ C⁺(0, 1)``, and
``q(λ) = LogNormal(ℓ, s²)`` learned next to ``q(φ) = N(μ, σ²)``. Loss =
RL + β·Σ_m KL(q(φ_m) q(λ_m) ‖ p(φ_m | λ_m) p(λ_m)) / N_data. Config: ``horseshoe.tau0``,
``horseshoe.scale_loc_init``, ``horseshoe.scale_rho_init``; ``varshare.beta``, ``varshare.rho_init``
and ``varshare.estimator`` apply; ``varshare.sigma_prior`` does not.
"""

from __future__ import annotations

import torch

from varshare.methods.base import register
from varshare.methods.varshare import VarShare
from varshare.nn import HorseshoeResidualLinear
from varshare.nn.horseshoe import horseshoe_kl_per_task


@register
class VarShareHorseshoe(VarShare):
    name = "varshare_horseshoe"

    def make_layer(self, in_features, out_features, is_head, gain):
        options, horseshoe = self.config.varshare, self.config.horseshoe
        return HorseshoeResidualLinear(
            in_features, out_features, self.num_tasks, gain,
            estimator=options.estimator, rho_init=options.rho_init,
            scale_loc_init=horseshoe.scale_loc_init, scale_rho_init=horseshoe.scale_rho_init,
        )

    def _named_layers(self, model):
        return [(n, m) for n, m in model.named_modules() if isinstance(m, HorseshoeResidualLinear)]

    def extra_loss(self, model, examples_per_task):
        tau0 = self.config.horseshoe.tau0
        kl = horseshoe_kl_per_task([layer for _, layer in self._named_layers(model)], tau0).sum()
        return self.config.varshare.beta * kl / examples_per_task, {"kl": kl.item()}

    def task_diagnostics(self, model):
        """Per layer and task: mean |μ|, mean σ, KL, and the mean effective prior std
        ``τ0·E[λ⁻²]^{-1/2}`` over output units."""
        tau0 = self.config.horseshoe.tau0
        stats = {}
        with torch.no_grad():
            for name, layer in self._named_layers(model):
                stats[f"mu_abs_mean/{name}"] = layer.mu_weight.abs().mean(dim=(1, 2))
                stats[f"sigma_mean/{name}"] = layer.sigma_weight.mean(dim=(1, 2))
                stats[f"kl/{name}"] = layer.kl_per_task(tau0)
                stats[f"prior_std_mean/{name}"] = layer.expected_prior_std(tau0).mean(dim=1)
        return stats

    def diagnostics(self, model):
        """VarShare's, plus the mean posterior median ``exp(ℓ)`` of the local scales per layer."""
        stats = super().diagnostics(model)
        with torch.no_grad():
            for name, layer in self._named_layers(model):
                stats[f"lambda_median_mean/{name}"] = layer.scale_loc.exp().mean().item()
        return stats
