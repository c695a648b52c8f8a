"""L2 soft sharing: ``W_m = θ + φ_m`` (deterministic, φ initialised to 0), loss += λ·Σ_m ‖φ_m‖²."""

import torch

from varshare.methods.base import Method, register
from varshare.nn import ResidualLinear, named_layers


@register
class L2Soft(Method):
    name = "l2_soft"

    def make_layer(self, in_features, out_features, is_head, gain):
        return ResidualLinear(in_features, out_features, self.num_tasks, gain)

    def extra_loss(self, networks, examples_per_task):
        layers = [layer for layer in named_layers(networks).values() if isinstance(layer, ResidualLinear)]
        penalty = torch.stack([layer.residual_sq_norm() for layer in layers]).sum()
        return self.config.l2_soft.coef * penalty, {"l2_residual_sq": penalty.item()}
