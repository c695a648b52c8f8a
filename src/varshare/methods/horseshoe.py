"""``varshare_horseshoe``: VarShare with a group-horseshoe prior on the residual instead of the fixed
Gaussian (layer: :class:`varshare.nn.HorseshoeResidualLinear`; its module docstring gives the model
and the variational approximation of the scales).

Per layer, task and output unit ``j``: ``φ_{m,j,·} | λ ~ N(0, τ0² λ²)``, ``λ ~ C⁺(0, 1)``, and
``q(λ) = LogNormal(ℓ, s²)`` learned next to ``q(φ) = N(μ, σ²)``. Loss =
RL + β·Σ_m KL(q(φ_m) q(λ_m) ‖ p(φ_m | λ_m) p(λ_m)) / N_data. Config: ``horseshoe.tau0``,
``horseshoe.scale_loc_init``, ``horseshoe.scale_rho_init``; ``varshare.beta``, ``varshare.rho_init``
and ``varshare.estimator`` apply; ``varshare.sigma_prior`` does not. Diagnostics add, per layer and
task, the mean effective prior std ``τ0·E[λ⁻²]^{-1/2}`` and the mean posterior median ``exp(ℓ)``.
"""

from __future__ import annotations

from varshare.methods.base import register
from varshare.methods.varshare import VarShare
from varshare.nn import HorseshoeResidualLinear


@register
class VarShareHorseshoe(VarShare):
    name = "varshare_horseshoe"

    def make_layer(self, in_features, out_features, is_head, gain):
        options, horseshoe = self.config.varshare, self.config.horseshoe
        return HorseshoeResidualLinear(
            in_features, out_features, self.num_tasks, gain,
            estimator=options.estimator, rho_init=options.rho_init, tau0=horseshoe.tau0,
            scale_loc_init=horseshoe.scale_loc_init, scale_rho_init=horseshoe.scale_rho_init,
        )
