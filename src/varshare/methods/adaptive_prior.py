"""``varshare_adaptive_prior``: VarShare whose prior std is learned, one ``σ_prior`` per variational
layer (shared by its tasks, its weights and its bias).

Each layer's prior is ``N(0, σ_p²)`` with ``σ_p = exp(log_σ_p)``; ``log_σ_p`` is a parameter
initialised at ``log(varshare.sigma_prior)``. The parameters live in the model as the submodule
``prior_log_sigma`` (an ``nn.ParameterDict`` keyed by the layer's module name with ``.`` → ``_``),
attached in :meth:`build_model`, so the optimizer (built from ``model.parameters()``), gradient
clipping and checkpoints see them. The KL (:meth:`VarShareAdaptivePrior.prior_kl_per_task`, from
per-layer sums of the posterior's moments) gives ``log σ_p`` the gradient
``β/N_data · Σ_elements (1 − (σ² + μ²)/σ_p²)`` (minimised at ``σ_p² = mean(σ² + μ²)``: empirical
Bayes, no hyperprior). Loss = RL + β·Σ_m KL(q_m ‖ N(0, σ_p²)) / N_data.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from varshare.methods.base import register
from varshare.methods.varshare import VarShare
from varshare.nn import VariationalResidualLinear
from varshare.nn.kl import gaussian_group_moments
from varshare.nn.layers import flat_posterior_mean_std

PRIOR_MODULE = "prior_log_sigma"


def prior_key(layer_name: str) -> str:
    return layer_name.replace(".", "_")


@register
class VarShareAdaptivePrior(VarShare):
    name = "varshare_adaptive_prior"

    def build_model(self, obs_dim, action_dim, discrete):
        model = super().build_model(obs_dim, action_dim, discrete)
        init = math.log(self.config.varshare.sigma_prior)
        model.add_module(PRIOR_MODULE, nn.ParameterDict({
            prior_key(name): nn.Parameter(torch.tensor(init))
            for name, module in model.named_modules() if isinstance(module, VariationalResidualLinear)
        }))
        return model

    def layers_with_prior(self, model) -> list[tuple[str, VariationalResidualLinear, Tensor]]:
        """``(name, layer, σ_prior)`` of every variational layer (``σ_prior`` a scalar tensor with grad)."""
        priors = getattr(model, PRIOR_MODULE)
        return [
            (name, module, priors[prior_key(name)].exp())
            for name, module in model.named_modules() if isinstance(module, VariationalResidualLinear)
        ]

    def prior_kl_per_task(self, model) -> Tensor:
        """``[M]``: ``Σ_layers KL(q_m ‖ N(0, σ_p,layer²))``. With one prior std per layer the KL needs
        only each layer's sums ``S = Σ(σ² + μ²)`` and ``Σ log σ`` per task (one fused pass over the
        flat posterior): ``KL = Σ_layers [S / (2σ_p²) + n (log σ_p − ½)] − Σ log σ``, ``n`` = the
        layer's element count; its ``σ_p`` gradient flows through these ``[M, layers]`` terms."""
        layers = self.layers_with_prior(model)
        variational = [layer for _, layer, _ in layers]
        blocks, sizes = [], []
        for index, layer in enumerate(variational):  # group = layer; each posterior tensor one row of it
            lengths = layer.posterior_sizes()
            blocks += [(index, 1, length) for length in lengths]
            sizes.append(float(sum(lengths)))
        second_moment, log_sigma = gaussian_group_moments(*flat_posterior_mean_std(variational), tuple(blocks))
        sigma_prior = torch.stack([prior for _, _, prior in layers])  # [layers]
        count = second_moment.new_tensor(sizes)
        per_layer = second_moment / (2 * sigma_prior**2) + count * (torch.log(sigma_prior) - 0.5)
        return per_layer.sum(dim=1) - log_sigma

    def extra_loss(self, model, examples_per_task):
        kl = self.prior_kl_per_task(model).sum()
        return self.config.varshare.beta * kl / examples_per_task, {"kl": kl.item()}

    def task_diagnostics(self, model):
        stats = super().task_diagnostics(model)
        with torch.no_grad():
            for name, layer, prior in self.layers_with_prior(model):
                stats[f"kl/{name}"] = layer.kl_per_task(prior)
        return stats

    def diagnostics(self, model):
        """VarShare's, plus each layer's learned ``σ_prior``."""
        stats = super().diagnostics(model)
        with torch.no_grad():
            for name, _, prior in self.layers_with_prior(model):
                stats[f"sigma_prior/{name}"] = prior.item()
        return stats
