"""Per-task gradients of shared parameters from one backward pass, for gradient-combining methods.

A method with :attr:`~varshare.methods.base.Method.per_task_gradients` (PCGrad, CAGrad) needs each
task's gradient of the shared parameters θ. Instead of ``M`` backward passes, θ is replaced in the
forward pass (``torch.func.functional_call``) by task-replicated leaves ``[M, *shape]``: the layers
then compute task ``m`` with copy ``m`` (:func:`varshare.nn.affine` takes per-task weights), so one
backward pass leaves task ``m``'s gradient in row ``m`` of each replica's ``.grad``. The method's
combination of those rows replaces θ's gradient. Any algorithm uses it the same way::

    replicas = task_replicas(shared, M)                 # None: ordinary forward and backward
    output = functional_call(module, replicas, args)    # instead of module(*args)
    loss.backward()
    apply_combined_gradients(shared, replicas, method.combine_gradients)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn


def task_replicas(shared: dict[str, nn.Parameter], num_tasks: int) -> dict[str, Tensor] | None:
    """Task-replicated copies ``[M, *shape]`` of the trainable ``shared`` parameters (leaves that
    collect per-task gradients; frozen ones stay as they are), or None when none is trainable."""
    replicas = {name: param.detach().unsqueeze(0).repeat(num_tasks, *([1] * param.dim())).requires_grad_()
                for name, param in shared.items() if param.requires_grad}
    return replicas or None


def apply_combined_gradients(shared: dict[str, nn.Parameter], replicas: dict[str, Tensor],
                             combine: Callable[[Tensor], Tensor]) -> float:
    """Combine the replicas' per-task gradients ``[M, D]`` with ``combine`` and add the result to the
    shared parameters' gradients (which may hold e.g. an extra loss's gradient). Returns the mean
    pairwise cosine similarity of the task gradients (NaN for one task)."""
    names = list(replicas)
    num_tasks = next(iter(replicas.values())).shape[0]
    per_task = torch.cat([(replicas[n].grad if replicas[n].grad is not None else torch.zeros_like(replicas[n]))
                          .reshape(num_tasks, -1) for n in names], dim=1)
    combined = combine(per_task)
    offset = 0
    for name in names:
        param = shared[name]
        piece = combined[offset: offset + param.numel()].view_as(param)
        offset += param.numel()
        param.grad = piece.clone() if param.grad is None else param.grad + piece
    return mean_pairwise_cosine(per_task)


def mean_pairwise_cosine(per_task: Tensor) -> float:
    """Mean cosine similarity over the pairs of rows of ``[M, D]`` (NaN for ``M = 1``)."""
    num_tasks = per_task.shape[0]
    if num_tasks < 2:
        return math.nan
    unit = per_task / per_task.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cosine = unit @ unit.T
    return cosine[~torch.eye(num_tasks, dtype=torch.bool, device=cosine.device)].mean().item()
