"""Per-task running normalisation of observations (CleanRL ``ppo_continuous_action`` / gymnasium
``NormalizeObservation``, one set of statistics per task).

Statistics are the exact mean and (population) variance of every observation seen so far, per task
and dimension, merged batch by batch with Chan et al.'s parallel update. They are buffers, so
they travel with the model's ``state_dict`` (checkpoints, evaluation, leave-one-out); the first
statistics are mean 0, variance 1 and count ``1e-4`` as in gymnasium.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: gymnasium's ``RunningMeanStd`` initial count and the variance floor of the normalised output
INITIAL_COUNT = 1e-4
EPSILON = 1e-8


class RunningObsNorm(nn.Module):
    """``(obs − mean_m) / sqrt(var_m + 1e-8)`` clipped to ``±clip``, statistics per task ``m``.

    Args:
        num_tasks: ``M``.
        obs_dim: ``D``.
        clip: clip of the output [standard deviations].

    Buffers (float64): ``mean`` ``[M, D]``, ``var`` ``[M, D]``, ``count`` ``[M]``.
    """

    def __init__(self, num_tasks: int, obs_dim: int, clip: float):
        super().__init__()
        self.clip = clip
        self.register_buffer("mean", torch.zeros(num_tasks, obs_dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(num_tasks, obs_dim, dtype=torch.float64))
        self.register_buffer("count", torch.full((num_tasks,), INITIAL_COUNT, dtype=torch.float64))

    @torch.no_grad()
    def update(self, obs: Tensor) -> None:
        """Merge ``obs`` ``[M, B, D]`` (``B`` new observations of every task) into the statistics."""
        x = obs.to(torch.float64)
        batch_count = x.shape[1]
        batch_mean = x.mean(dim=1)
        batch_var = x.var(dim=1, unbiased=False)
        total = self.count + batch_count
        delta = batch_mean - self.mean
        weight = (batch_count / total).unsqueeze(-1)
        self.mean += delta * weight
        self.var.copy_((self.var * self.count.unsqueeze(-1) + batch_var * batch_count
                        + delta.square() * (self.count * batch_count / total).unsqueeze(-1)) / total.unsqueeze(-1))
        self.count.copy_(total)

    def forward(self, obs: Tensor) -> Tensor:
        """Normalised ``obs`` ``[M, B, D]`` in ``obs``' dtype (statistics unchanged)."""
        scaled = (obs - self.mean.unsqueeze(1)) / torch.sqrt(self.var.unsqueeze(1) + EPSILON)
        return scaled.clamp(-self.clip, self.clip).to(obs.dtype)
