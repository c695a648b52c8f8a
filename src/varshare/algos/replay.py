"""Per-task replay buffers as preallocated task-major tensors, with balanced sampling.

Every task steps together (one vector step adds ``N`` transitions to *each* task's buffer), so all
``M`` buffers fill at the same rate and share one write position and one size: the buffer is a set
of ``[M, capacity, ...]`` tensors, FIFO once full. A gradient step samples exactly
``batch_per_task`` transitions from each task, uniformly and independently per task, with the
caller's generator, in one gather.

``next_obs`` is the true successor of each transition: the ``final_obs`` of an episode that ended
(the observation a truncated episode is bootstrapped from), else the next observation.
``terminated`` is kept apart from truncation: only termination stops the bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class TransitionBatch:
    """``B`` transitions per task: ``obs``, ``next_obs`` ``[M, B, obs_dim]``; ``actions`` ``[M, B]``
    (discrete, int64) or ``[M, B, act_dim]``; ``rewards``, ``terminated`` ``[M, B]`` float (1.0:
    the episode reached a terminal state with this transition)."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    terminated: Tensor


class MultiTaskReplayBuffer:
    """``M`` replay buffers of ``capacity`` transitions each, on ``device``.

    Args:
        num_tasks: ``M``.
        capacity: transitions kept per task (the oldest are overwritten once full).
        obs_dim: observation size.
        action_shape: ``()`` for discrete actions, ``(act_dim,)`` for continuous ones.
        discrete: whether actions are integers.
    """

    def __init__(self, num_tasks: int, capacity: int, obs_dim: int, action_shape: tuple[int, ...],
                 discrete: bool, device="cpu"):
        self.num_tasks, self.capacity = num_tasks, capacity
        self.device = torch.device(device)
        shape = (num_tasks, capacity)
        self.obs = torch.zeros((*shape, obs_dim), device=self.device)
        self.next_obs = torch.zeros((*shape, obs_dim), device=self.device)
        self.actions = torch.zeros((*shape, *action_shape), device=self.device,
                                   dtype=torch.long if discrete else torch.float32)
        self.rewards = torch.zeros(shape, device=self.device)
        self.terminated = torch.zeros(shape, device=self.device)
        #: next write position (the same for every task)
        self.position = 0
        #: transitions held per task (``min(added, capacity)``)
        self.size = 0

    def add(self, obs: Tensor, actions: Tensor, rewards: Tensor, next_obs: Tensor, terminated: Tensor) -> None:
        """Append ``N`` transitions to every task: ``obs``, ``next_obs`` ``[M, N, obs_dim]``, ``actions``
        ``[M, N, ...]``, ``rewards``, ``terminated`` ``[M, N]``."""
        count = obs.shape[1]
        if count > self.capacity:
            raise ValueError(f"cannot add {count} transitions per task to a buffer of capacity {self.capacity}")
        index = (self.position + torch.arange(count, device=self.device)) % self.capacity
        for store, values in ((self.obs, obs), (self.actions, actions), (self.rewards, rewards),
                              (self.next_obs, next_obs), (self.terminated, terminated)):
            store.index_copy_(1, index, values.to(store.dtype))
        self.position = (self.position + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def sample(self, batch_per_task: int, generator: torch.Generator) -> TransitionBatch:
        """``batch_per_task`` transitions from each task, uniformly with replacement (independently
        per task), drawn with ``generator``."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        index = torch.randint(self.size, (self.num_tasks, batch_per_task), generator=generator, device=self.device)

        def gather(store: Tensor) -> Tensor:
            expanded = index.view(*index.shape, *([1] * (store.dim() - 2))).expand(-1, -1, *store.shape[2:])
            return store.gather(1, expanded)

        return TransitionBatch(gather(self.obs), gather(self.actions), gather(self.rewards), gather(self.next_obs),
                               gather(self.terminated))

    def state_dict(self) -> dict:
        """The filled part of every tensor (the resumed buffer is identical), position and size."""
        filled = slice(0, self.size)
        return {"obs": self.obs[:, filled].clone(), "actions": self.actions[:, filled].clone(),
                "rewards": self.rewards[:, filled].clone(), "next_obs": self.next_obs[:, filled].clone(),
                "terminated": self.terminated[:, filled].clone(), "position": self.position, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        size = state["size"]
        if size > self.capacity:
            raise ValueError(f"a checkpointed buffer of {size} transitions per task exceeds capacity {self.capacity}")
        for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
            getattr(self, name)[:, :size].copy_(state[name])
        self.position, self.size = state["position"], size
