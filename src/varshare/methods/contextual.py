"""Contextual: one fully shared network whose input is ``[obs, e_m]``, ``e_m`` a learned,
L2-normalised task embedding (BRC uses 32 dims)."""

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
