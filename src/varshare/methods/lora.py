"""``varshare_lora``: VarShare with a low-rank variational residual ``φ_m = B_m A_m`` on every layer
(:class:`varshare.nn.VariationalLoRALinear`; rank from config ``lora.rank``).

Reads ``varshare.sigma_prior`` (prior of both factors, and the std of the random initial ``μ_A``),
``varshare.rho_init`` and ``varshare.beta``; ``varshare.estimator`` does not apply (``A`` and ``B``
are drawn once per task per rollout). Loss = RL + β·Σ_m [KL(q(A_m) ‖ p) + KL(q(B_m) ‖ p)] / N_data.
"""

from __future__ import annotations

import torch

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
            rho_init=options.rho_init, a_init_std=options.sigma_prior,
        )

    def variational_layers(self, model) -> list[VariationalLoRALinear]:  # type: ignore[override]
        return [m for m in model.multitask_layers() if isinstance(m, VariationalLoRALinear)]

    def _named_layers(self, model):
        return [(n, m) for n, m in model.named_modules() if isinstance(m, VariationalLoRALinear)]

    def task_diagnostics(self, model):
        """Per LoRA layer and task: mean |B_m A_m| at the means, mean σ of both factors, KL."""
        stats = {}
        with torch.no_grad():
            for name, layer in self._named_layers(model):
                stats[f"mu_abs_mean/{name}"] = layer.residual_weight().abs().mean(dim=(1, 2))
                sigma = torch.cat([layer.sigma_A.flatten(1), layer.sigma_B.flatten(1)], dim=1)
                stats[f"sigma_mean/{name}"] = sigma.mean(dim=1)
                stats[f"kl/{name}"] = layer.kl_per_task(self.config.varshare.sigma_prior)
        return stats

    def diagnostics(self, model):
        """Mean σ of both factors and mean |B A| (at the means) of every LoRA layer."""
        stats = {}
        with torch.no_grad():
            for name, layer in self._named_layers(model):
                sigma = torch.cat([layer.sigma_A.flatten(), layer.sigma_B.flatten()])
                stats[f"sigma_mean/{name}"] = sigma.mean().item()
                stats[f"mu_abs_mean/{name}"] = layer.residual_weight().abs().mean().item()
        return stats
