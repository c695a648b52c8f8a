"""An env step on the learner's device, in one host-to-device copy.

Environments step on the CPU (MuJoCo, Box2D and CartPole are numpy programs); the networks may
live on a GPU. Per vector step the agents then make exactly two transfers: the actions down
(``actions.cpu()``) and :func:`upload`'s one packed array up — never one copy per field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from varshare.envs.base import VecStep


@dataclass(frozen=True)
class DeviceStep:
    """The fields of a :class:`~varshare.envs.base.VecStep` a learner needs, on its device.

    Attributes:
        obs: ``[M, N, obs_dim]`` float32, the next observation (a new episode's first where one ended).
        final_obs: ``[M, N, obs_dim]`` float32, the successor of this step's transition.
        reward: ``[M, N]`` float32.
        terminated, truncated: ``[M, N]`` float32, 1.0 where set.
    """

    obs: Tensor
    final_obs: Tensor
    reward: Tensor
    terminated: Tensor
    truncated: Tensor


def upload(step: VecStep, device: torch.device) -> DeviceStep:
    """Pack ``obs``, ``final_obs``, ``reward``, ``terminated`` and ``truncated`` into one float32
    ``[M, N, 2·obs_dim + 3]`` host array, copy it to ``device`` once and split it into views."""
    obs_dim = step.obs.shape[-1]
    packed = np.concatenate([
        step.obs.astype(np.float32, copy=False),
        step.final_obs.astype(np.float32, copy=False),
        np.stack([step.reward, step.terminated, step.truncated], axis=-1).astype(np.float32),
    ], axis=-1)
    on_device = torch.from_numpy(packed).to(device)
    return DeviceStep(on_device[..., :obs_dim], on_device[..., obs_dim:2 * obs_dim], on_device[..., -3],
                      on_device[..., -2], on_device[..., -1])
