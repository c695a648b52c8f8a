"""PCGrad and CAGrad: the multi-head network, with the shared parameters' per-task gradients
combined by gradient surgery (task heads keep their own gradients).

Both return a direction on the scale of the *sum* of the task losses, like every other parameter's
gradient (losses are summed over tasks): PCGrad sums the projected gradients (as its official
code); CAGrad's ``d`` is on the scale of the task *mean*, so it is multiplied by ``M``, as the
official CAGrad code does "to match the sum loss".
"""

import torch

from varshare.methods.base import register
from varshare.methods.grad_combiners import cagrad, pcgrad
from varshare.methods.hard_sharing import MultiHead


@register
class PCGrad(MultiHead):
    name = "pcgrad"
    per_task_gradients = True

    def __init__(self, config, num_tasks, seed):
        super().__init__(config, num_tasks, seed)
        # The projection order is random; its own seeded generator keeps runs reproducible.
        self.generator = torch.Generator().manual_seed(seed)

    def combine_gradients(self, grads):
        return pcgrad(grads, generator=self.generator)

    def state_dict(self):
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])


@register
class CAGrad(MultiHead):
    name = "cagrad"
    per_task_gradients = True

    def combine_gradients(self, grads):
        return grads.shape[0] * cagrad(grads, c=self.config.cagrad.c, rescale=self.config.cagrad.rescale)
