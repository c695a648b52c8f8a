"""VarShare: ``W_m = θ + μ_m + σ_m ⊙ ε`` on every layer (head included) with posterior
``q_m = N(μ_m, σ_m²)`` and a fixed prior ``N(0, σ_prior²)``; loss = RL + β·Σ_m KL(q_m ‖ p) / N_data.

θ pays no KL and receives every task's gradient, so sharing is the default; a task's residual
moves away from zero only where its reward pays for the KL.
"""

import torch

from varshare.methods.base import Method, register
from varshare.nn import VariationalResidualLinear
from varshare.nn.layers import residual_kl_per_task


@register
class VarShare(Method):
    name = "varshare"

    def make_layer(self, in_features, out_features, is_head, gain):
        options = self.config.varshare
        return VariationalResidualLinear(
            in_features, out_features, self.num_tasks, gain,
            estimator=options.estimator, rho_init=options.rho_init,
        )

    def variational_layers(self, model) -> list[VariationalResidualLinear]:
        return [m for m in model.multitask_layers() if isinstance(m, VariationalResidualLinear)]

    def extra_loss(self, model, examples_per_task):
        options = self.config.varshare
        kl = residual_kl_per_task(self.variational_layers(model), options.sigma_prior).sum()
        return options.beta * kl / examples_per_task, {"kl": kl.item()}

    def task_diagnostics(self, model):
        """Per variational layer and task: mean |μ|, mean σ and KL(q_m ‖ p) of the residual."""
        stats = {}
        with torch.no_grad():
            for name, module in model.named_modules():
                if isinstance(module, VariationalResidualLinear):
                    stats[f"mu_abs_mean/{name}"] = module.mu_weight.abs().mean(dim=(1, 2))
                    stats[f"sigma_mean/{name}"] = module.sigma_weight.mean(dim=(1, 2))
                    stats[f"kl/{name}"] = module.kl_per_task(self.config.varshare.sigma_prior)
        return stats

    def diagnostics(self, model):
        """Mean σ and mean |μ| of every variational layer (over tasks and elements)."""
        stats = {}
        for name, module in model.named_modules():
            if isinstance(module, VariationalResidualLinear):
                stats[f"sigma_mean/{name}"] = module.sigma_weight.mean().item()
                stats[f"mu_abs_mean/{name}"] = module.mu_weight.abs().mean().item()
        return stats
