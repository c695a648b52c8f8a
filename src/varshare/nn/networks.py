"""Task-batched MLPs and the PPO actor-critic built from :mod:`varshare.nn.layers`.

Which layer layout each position gets is decided by a *layer factory* (the sharing method), so the
same network code serves every method. Shapes: observations ``[M, B, obs_dim]``; logits
``[M, B, num_actions]``; values ``[M, B]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from varshare.nn.activations import ACTIVATIONS
from varshare.nn.flat_posterior import FlatPosterior
from varshare.nn.layers import MultiTaskLinear, Noise

#: ``(in_features, out_features, is_head, gain) -> layer``: how a method lays out one layer.
LayerFactory = Callable[[int, int, bool, float], MultiTaskLinear]



class MultiTaskMLP(nn.Module):
    """``in_dim → hidden_sizes → out_dim`` with an activation between layers.

    Args:
        make_layer: the method's :data:`LayerFactory`.
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
        self._layer_names = [str(i) for i in range(len(self.layers))]

    def forward(self, x: Tensor, layer_noise: dict[str, Noise] | None = None) -> Tensor:
        """``x`` ``[M, B, in_dim]`` → ``[M, B, out_dim]``. ``layer_noise``: each layer's noise by its
        index (``{"0": {"eps_weight": t, ...}, ...}``, as :func:`route_noise` makes it; a layer
        without an entry gets none), or None for the mean weights."""
        if self.task_embedding is not None:
            embedding = F.normalize(self.task_embedding, dim=-1)
            x = torch.cat([x, embedding.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            x = layer(x, None if layer_noise is None else layer_noise.get(self._layer_names[index], _NO_NOISE))
            if index < last:
                x = self.activation(x)
        return x

    def rollout_noise(self, generator: torch.Generator | None) -> Noise:
        return _prefixed((f"{i}.", layer.rollout_noise(generator)) for i, layer in enumerate(self.layers))

    def example_noise(self, batch_size: int, generator: torch.Generator | None) -> Noise:
        return _prefixed(
            (f"{i}.", layer.example_noise(batch_size, generator)) for i, layer in enumerate(self.layers)
        )

    def rollout_cache(self, rollout_noise: Noise) -> Noise:
        return _prefixed(
            (f"{i}.", layer.rollout_cache(_sub_noise(rollout_noise, f"{i}."))) for i, layer in enumerate(self.layers)
        )


@dataclass
class PolicyOutput:
    """Actor-critic outputs for ``[M, B]`` observations.

    Attributes:
        logits: ``[M, B, num_actions]`` (discrete) or action means ``[M, B, act_dim]`` (continuous).
        log_std: ``[M, B, act_dim]`` per-task log standard deviations (continuous only, else None).
        value: ``[M, B]`` state values.
    """

    logits: Tensor
    log_std: Tensor | None
    value: Tensor

    def log_prob(self, actions: Tensor) -> Tensor:
        """``[M, B]`` log-probabilities of ``actions`` (``[M, B]`` ints or ``[M, B, act_dim]``)."""
        if self.log_std is None:
            log_probs = torch.log_softmax(self.logits, dim=-1)
            return log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        z = (actions - self.logits) * torch.exp(-self.log_std)
        return (-0.5 * z.square() - self.log_std - 0.5 * math.log(2 * math.pi)).sum(dim=-1)

    def entropy(self) -> Tensor:
        """``[M, B]`` entropies of the action distributions (nats)."""
        if self.log_std is None:
            log_probs = torch.log_softmax(self.logits, dim=-1)
            return -(log_probs.exp() * log_probs).sum(dim=-1)
        return (self.log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum(dim=-1)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs, both laid out by the method's layer factory.

    Orthogonal init as in PPO implementations: √2 hidden, 0.01 policy head, 1 value head. The
    stochastic layers' posteriors (both networks) are stored in :attr:`posterior`, a
    :class:`~varshare.nn.flat_posterior.FlatPosterior` (parameters ``posterior.mu``, ``posterior.rho``).

    Args:
        obs_dim: observation size.
        action_dim: number of discrete actions, or the continuous action size.
        discrete: whether actions are discrete.
        num_tasks: ``M``.
        hidden_sizes, activation: the MLPs' hidden layers.
        make_layer: the method's :data:`LayerFactory`.
        embedding_dim: contextual task-embedding size (0 = none).
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        discrete: bool,
        num_tasks: int,
        hidden_sizes: list[int],
        activation: str,
        make_layer: LayerFactory,
        embedding_dim: int = 0,
    ):
        super().__init__()
        self.num_tasks = num_tasks
        self.discrete = discrete
        common = dict(num_tasks=num_tasks, make_layer=make_layer, activation=activation, embedding_dim=embedding_dim)
        self.actor = MultiTaskMLP(obs_dim, hidden_sizes, action_dim, head_gain=0.01, **common)
        self.critic = MultiTaskMLP(obs_dim, hidden_sizes, 1, head_gain=1.0, **common)
        self.log_std = None if discrete else nn.Parameter(torch.zeros(num_tasks, action_dim))
        stochastic = [layer for layer in self.multitask_layers() if layer.posterior_names]
        #: every stochastic layer's posterior as two flat parameters (None for deterministic methods)
        self.posterior = FlatPosterior(stochastic) if stochastic else None

    def forward(self, obs: Tensor, noise: Noise | None = None) -> PolicyOutput:
        """``obs`` ``[M, B, obs_dim]`` → :class:`PolicyOutput`; ``noise=None`` uses mean weights."""
        routed = route_noise(noise)
        logits = self.actor(obs, None if routed is None else routed.get("actor", _NO_NOISE))
        value = self.critic(obs, None if routed is None else routed.get("critic", _NO_NOISE)).squeeze(-1)
        log_std = None
        if self.log_std is not None:
            log_std = self.log_std.unsqueeze(1).expand_as(logits)
        return PolicyOutput(logits, log_std, value)

    def rollout_noise(self, generator: torch.Generator | None) -> Noise:
        """Noise drawn once per rollout, for every stochastic layer (empty for deterministic nets)."""
        return _prefixed([("actor.", self.actor.rollout_noise(generator)), ("critic.", self.critic.rollout_noise(generator))])

    def example_noise(self, batch_size: int, generator: torch.Generator | None) -> Noise:
        """Per-example noise for ``batch_size`` examples per task: tensors ``[M, batch_size, k]``."""
        return _prefixed(
            [
                ("actor.", self.actor.example_noise(batch_size, generator)),
                ("critic.", self.critic.example_noise(batch_size, generator)),
            ]
        )

    def rollout_cache(self, rollout_noise: Noise) -> Noise:
        """Per-rollout tensors derived from the current parameters and ``rollout_noise`` (see
        :meth:`MultiTaskLinear.rollout_cache`): merged with per-example noise, it replaces
        ``rollout_noise`` in the rollout's forward passes."""
        return _prefixed(
            [
                ("actor.", self.actor.rollout_cache(_sub_noise(rollout_noise, "actor."))),
                ("critic.", self.critic.rollout_cache(_sub_noise(rollout_noise, "critic."))),
            ]
        )

    def multitask_layers(self) -> list[MultiTaskLinear]:
        return [m for m in self.modules() if isinstance(m, MultiTaskLinear)]

    def named_layer_tensors(self) -> dict[str, Tensor]:
        """Every parameter by name, with the flat posterior shown as the layers' own tensors: views
        ``actor.layers.0.mu_weight``, ... in place of ``posterior.mu`` / ``posterior.rho`` (for
        analysis and tests that look at one layer's residual)."""
        tensors = {name: p for name, p in self.named_parameters() if not name.startswith("posterior.")}
        for module_name, module in self.named_modules():
            if isinstance(module, MultiTaskLinear) and "_posterior_slots" in module.__dict__:
                for pair in module.posterior_names:
                    tensors.update({f"{module_name}.{name}": getattr(module, name) for name in pair})
        return tensors

    def shared_parameters(self) -> dict[str, nn.Parameter]:
        """Parameters without a task axis, by their name in this module."""
        shared = {}
        for module_name, module in self.named_modules():
            if isinstance(module, MultiTaskLinear):
                for name in module.shared_parameter_names:
                    shared[f"{module_name}.{name}"] = getattr(module, name)
        return shared


def _sub_noise(noise: Noise | None, prefix: str) -> Noise | None:
    """The entries of ``noise`` under ``prefix``, with the prefix removed (None if no noise)."""
    if noise is None:
        return None
    return {key[len(prefix):]: value for key, value in noise.items() if key.startswith(prefix)}


_NO_NOISE: dict = {}  # read-only stand-in for "this part has no noise"
_KEY_PARTS: dict[str, tuple[str, str, str]] = {}  # "actor.0.eps_weight" -> ("actor", "0", "eps_weight")


def route_noise(noise: Noise | None) -> dict[str, dict[str, Noise]] | None:
    """Flat ``noise`` (keys ``"<network>.<layer>.<name>"``) grouped by network and layer:
    ``{"actor.0.eps": t}`` → ``{"actor": {"0": {"eps": t}}}``, in one pass with each key's split
    cached (routing runs on every forward pass, ~130 times per rollout). None stays None."""
    if noise is None:
        return None
    routed: dict[str, dict[str, Noise]] = {}
    for key, value in noise.items():
        parts = _KEY_PARTS.get(key)
        if parts is None:
            network, layer, name = key.split(".", 2)
            parts = _KEY_PARTS[key] = (network, layer, name)
        network, layer, name = parts
        layers = routed.get(network)
        if layers is None:
            layers = routed[network] = {}
        layer_noise = layers.get(layer)
        if layer_noise is None:
            layer_noise = layers[layer] = {}
        layer_noise[name] = value
    return routed


def group_by_layer(noise: Noise) -> dict[str, Noise]:
    """One network's flat noise (keys ``"<layer>.<name>"``) as :meth:`MultiTaskMLP.forward` takes it:
    ``{"0.eps": t}`` → ``{"0": {"eps": t}}``."""
    grouped: dict[str, Noise] = {}
    for key, value in noise.items():
        layer, name = key.split(".", 1)
        grouped.setdefault(layer, {})[name] = value
    return grouped


def _prefixed(parts) -> Noise:
    return {prefix + key: value for prefix, noise in parts for key, value in noise.items()}
