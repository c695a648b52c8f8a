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

    def unseen_task_parameters(self, pretrained, model):
        """The trained shared network, and as the new task's embedding (actor and critic each) the
        mean of the trained tasks' L2-normalised embeddings — the embeddings the network has seen
        (the forward pass normalises it again)."""
        super().unseen_task_parameters(pretrained, model)
        with torch.no_grad():
            for trained, new in ((pretrained.actor, model.actor), (pretrained.critic, model.critic)):
                new.task_embedding.copy_(F.normalize(trained.task_embedding, dim=-1).mean(dim=0, keepdim=True))
