"""Independent: every layer per task, nothing shared — M separate networks trained side by side."""

from varshare.methods.base import Method, register
from varshare.nn import PerTaskLinear


@register
class Independent(Method):
    name = "independent"

    def make_layer(self, in_features, out_features, is_head, gain):
        return PerTaskLinear(in_features, out_features, self.num_tasks, gain)
