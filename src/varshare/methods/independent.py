"""Independent: every layer per task, nothing shared — M separate networks trained side by side."""

import torch

from varshare.methods.base import Method, register
from varshare.nn import PerTaskLinear


@register
class Independent(Method):
    name = "independent"

    def make_layer(self, in_features, out_features, is_head, gain):
        return PerTaskLinear(in_features, out_features, self.num_tasks, gain)

    def unseen_task_parameters(self, pretrained, new):
        """Nothing is shared, so nothing transfers by construction; our choice for a new task is the
        element-wise mean of the trained task networks (every parameter averaged over the task
        axis) — the one network that treats the trained tasks alike. Its zero-shot return measures
        how far that average policy carries; the residual regime does not exist for this method
        (no shared parameters to freeze)."""
        with torch.no_grad():
            for name, network in new.items():
                trained = dict(pretrained[name].named_parameters())
                for param_name, param in network.named_parameters():
                    param.copy_(trained[param_name].mean(dim=0, keepdim=True))
