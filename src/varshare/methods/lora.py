"""``varshare_lora``: VarShare with a low-rank variational residual ``φ_m = B_m A_m`` on every layer
(:class:`varshare.nn.VariationalLoRALinear`; rank from config ``lora.rank``).

Reads ``varshare.sigma_prior`` (prior of both factors, and the std of the random initial ``μ_A``),
``varshare.rho_init`` and ``varshare.beta``; ``varshare.estimator`` does not apply (``A`` and ``B``
are drawn once per task per batch). Loss = RL + β·Σ_m [KL(q(A_m) ‖ p) + KL(q(B_m) ‖ p)] / N_data.
Diagnostics: mean |B_m A_m| at the means (``mu_abs_mean``) and mean σ of both factors.
"""

from __future__ import annotations

from varshare.methods.base import register
from varshare.methods.varshare import VarShare
from varshare.nn import VariationalLoRALinear


@register
class VarShareLoRA(VarShare):
    name = "varshare_lora"

    def make_layer(self, in_features, out_features, is_head, gain):
        options = self.config.varshare
        return VariationalLoRALinear(
            in_features, out_features, self.num_tasks, gain, rank=self.config.lora.rank,
            rho_init=options.rho_init, prior_std=options.sigma_prior,
        )
