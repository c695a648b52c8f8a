"""Contextual: one fully shared network whose input is ``[obs, e_m]``, ``e_m`` a learned,
L2-normalised task embedding (BRC uses 32 dims)."""

import torch
import torch.nn.functional as F

from varshare.methods.base import Method, register
from varshare.nn import SharedLinear


@register
class Contextual(Method):
    name = "contextual"

    @property
    def embedding_dim(self) -> int:
        return self.config.contextual.embedding_dim

    def make_layer(self, in_features, out_features, is_head, gain):
        return SharedLinear(in_features, out_features, self.num_tasks, gain)

    def unseen_task_parameters(self, pretrained, new):
        """The trained shared network, and as the new task's embedding (each network its own) the
        mean of the trained tasks' L2-normalised embeddings — the embeddings the network has seen
        (the forward pass normalises it again)."""
        super().unseen_task_parameters(pretrained, new)
        with torch.no_grad():
            for name, network in new.items():
                trained = F.normalize(pretrained[name].task_embedding, dim=-1)
                network.task_embedding.copy_(trained.mean(dim=0, keepdim=True))
