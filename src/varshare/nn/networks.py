"""Task-batched MLPs built from :mod:`varshare.nn.layers`: the one network type every algorithm
composes (PPO's actor and critic, SAC's actor and twin Q networks, their Polyak targets).

Which layer layout each position gets is decided by a *layer factory* (the sharing method), so the
same network code serves every method. Each network owns its parameters and draws its own noise
(:class:`~varshare.nn.noise.NetworkNoise`); there is no state outside the module. Shapes: inputs
``[M, B, in_dim]`` → outputs ``[M, B, out_dim]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from varshare.nn.layers import MultiTaskLinear
from varshare.nn.noise import NetworkNoise

#: ``(in_features, out_features, is_head, gain) -> layer``: how a method lays out one layer.
LayerFactory = Callable[[int, int, bool, float], MultiTaskLinear]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"tanh": torch.tanh, "relu": F.relu}


class MultiTaskMLP(nn.Module):
    """``in_dim → hidden_sizes → out_dim`` with an activation between layers.

    Args:
        make_layer: the method's :data:`LayerFactory`.
        activation: a key of :data:`ACTIVATIONS`.
        head_gain: orthogonal-init gain of the output layer (hidden layers use √2).
        embedding_dim: if > 0, a learned per-task embedding ``e_m`` (L2-normalised) is
            concatenated to every input, as the contextual method does.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_sizes: list[int],
        out_dim: int,
        num_tasks: int,
        make_layer: LayerFactory,
        activation: str = "tanh",
        head_gain: float = 1.0,
        embedding_dim: int = 0,
    ):
        super().__init__()
        self.num_tasks = num_tasks
        self.in_dim, self.out_dim = in_dim, out_dim
        self.activation = ACTIVATIONS[activation]
        self.task_embedding = (
            nn.Parameter(torch.randn(num_tasks, embedding_dim)) if embedding_dim > 0 else None
        )
        sizes = [in_dim + embedding_dim, *hidden_sizes, out_dim]
        last = len(sizes) - 2
        self.layers = nn.ModuleList(
            make_layer(a, b, i == last, head_gain if i == last else math.sqrt(2))
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
        )

    @property
    def stochastic(self) -> bool:
        """Whether any layer has random weights."""
        return any(layer.stochastic for layer in self.layers)

    def forward(self, x: Tensor, noise: NetworkNoise | None = None) -> Tensor:
        """``x`` ``[M, B, in_dim]`` → ``[M, B, out_dim]``; ``noise`` from :meth:`draw_noise` or
        :meth:`draw_weight_samples` for the same ``B``, or None for the mean weights."""
        if self.task_embedding is not None:
            embedding = F.normalize(self.task_embedding, dim=-1)
            x = torch.cat([x, embedding.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)
        layer_noise = noise.layers if noise is not None else (None,) * len(self.layers)
        last = len(self.layers) - 1
        for index, (layer, layer_noise_i) in enumerate(zip(self.layers, layer_noise, strict=True)):
            x = layer(x, layer_noise_i)
            if index < last:
                x = self.activation(x)
        return x

    def draw_noise(self, batch_size: int, generator: torch.Generator | None) -> NetworkNoise | None:
        """One weight sample for a batch of ``batch_size`` examples per task (per-example parts with
        their example axis), or None for a deterministic network."""
        if not self.stochastic:
            return None
        return NetworkNoise(tuple(layer.draw_noise(batch_size, generator) for layer in self.layers))

    def draw_weight_samples(self, batch_size: int, generator: torch.Generator | None) -> NetworkNoise | None:
        """An independent draw of the full weights for each of ``batch_size`` examples per task (the
        sample-k evaluation strategies), or None for a deterministic network."""
        if not self.stochastic:
            return None
        return NetworkNoise(tuple(layer.draw_weight_samples(batch_size, generator) for layer in self.layers))

    def shared_parameters(self) -> dict[str, nn.Parameter]:
        """Parameters without a task axis that every task uses (θ), by name in this module."""
        return {f"layers.{index}.{name}": getattr(layer, name)
                for index, layer in enumerate(self.layers) for name in layer.shared_parameter_names}


def shared_parameters(networks: Mapping[str, MultiTaskMLP]) -> dict[str, nn.Parameter]:
    """The shared parameters of several networks, by ``"<network name>.<parameter name>"`` (the
    names ``named_parameters`` gives them in a module holding each network as an attribute)."""
    return {f"{net_name}.{name}": param for net_name, network in networks.items()
            for name, param in network.shared_parameters().items()}


def named_layers(networks: Mapping[str, MultiTaskMLP]) -> dict[str, MultiTaskLinear]:
    """Every layer of several networks, by ``"<network name>.layers.<index>"``."""
    return {f"{net_name}.layers.{index}": layer for net_name, network in networks.items()
            for index, layer in enumerate(network.layers)}
