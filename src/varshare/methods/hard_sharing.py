"""Hard sharing (multi-head): hidden layers shared by all tasks, one output head per task."""

from varshare.methods.base import Method, register
from varshare.nn import PerTaskLinear, SharedLinear


class MultiHead(Method):
    """The multi-head layout, also used by the gradient-combination baselines."""

    def make_layer(self, in_features, out_features, is_head, gain):
        layer = PerTaskLinear if is_head else SharedLinear
        return layer(in_features, out_features, self.num_tasks, gain)


@register
class HardSharing(MultiHead):
    name = "hard_sharing"
