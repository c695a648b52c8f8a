"""What a sharing method is: how layers get per-task weights, an extra loss, a gradient combiner.

A method works at the level of task-batched networks (:class:`~varshare.nn.MultiTaskMLP`), never of
an algorithm: PPO's actor and critic, SAC's actor and twin critics and their Polyak targets are all
built by :meth:`Method.build_network`, and every hook takes the networks it should act on as a
mapping ``{name: network}`` (names prefix the metrics it logs, e.g. ``actor.layers.0``). Algorithms
talk to a method only through :class:`Method` and never branch on method names. A new method is
one module that subclasses :class:`Method` and registers itself with :func:`register`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from varshare.config import ExperimentConfig
from varshare.nn import MultiTaskLinear, MultiTaskMLP

Networks = Mapping[str, MultiTaskMLP]

#: name -> Method subclass, filled by :func:`register`.
REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` selectable by ``cls.name`` in configs."""
    if cls.name in REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


class Method(abc.ABC):
    """A weight-sharing scheme for task-batched networks.

    Args:
        config: the experiment config (methods read their own section).
        num_tasks: ``M``.
        seed: the run's seed, for methods with randomness of their own.
    """

    #: the name configs use
    name: ClassVar[str]
    #: whether :meth:`combine_gradients` needs per-task gradients of the shared parameters
    per_task_gradients: ClassVar[bool] = False
    #: act with the mean weights (weight noise only inside updates); a variant, never the default
    act_with_mean_weights: ClassVar[bool] = False
    #: the method writes the shared parameters θ itself (outside the optimizer), e.g. in
    #: :meth:`end_update`; leave-one-out's residual regime, which freezes θ, does not apply to it
    writes_shared_parameters: ClassVar[bool] = False

    def __init__(self, config: ExperimentConfig, num_tasks: int, seed: int):
        self.config = config
        self.num_tasks = num_tasks
        self.seed = seed

    @abc.abstractmethod
    def make_layer(self, in_features: int, out_features: int, is_head: bool, gain: float) -> MultiTaskLinear:
        """The layer at one position of a network (``is_head``: the output layer)."""

    @property
    def embedding_dim(self) -> int:
        """Width of a learned task embedding concatenated to the input (0: none)."""
        return 0

    def build_network(self, in_dim: int, out_dim: int, hidden_sizes: list[int], activation: str,
                      head_gain: float) -> MultiTaskMLP:
        """A task-batched MLP ``in_dim → hidden_sizes → out_dim`` with this method's layer layout."""
        return MultiTaskMLP(in_dim, list(hidden_sizes), out_dim, self.num_tasks, self.make_layer,
                            activation=activation, head_gain=head_gain, embedding_dim=self.embedding_dim)

    def extra_loss(self, networks: Networks, examples_per_task: float) -> tuple[Tensor, dict[str, float]]:
        """The method's term added to a loss over ``networks``, and scalars to log.

        Args:
            examples_per_task: ``N_data``, the transitions per task the loss's likelihood is over.
        """
        return torch.zeros(()), {}

    def combine_gradients(self, grads: Tensor) -> Tensor:
        """Per-task gradients of the shared parameters ``[M, D]`` → the update direction ``[D]``, on
        the scale of the *sum* of the task losses (as every other parameter's gradient).

        Only called when :attr:`per_task_gradients` is set.
        """
        return grads.sum(dim=0)

    def begin_update(self, networks: Networks, progress: float) -> None:
        """Called before each update phase (PPO: after a rollout; SAC: every K gradient steps);
        ``progress`` ∈ [0, 1) is the fraction of training done."""

    def end_update(self, networks: Networks) -> None:
        """Called after each update phase (e.g. to move parameters between θ and the residuals)."""

    def unseen_task_parameters(self, pretrained: Networks, new: Networks) -> None:
        """Initialise the networks ``new`` in place for a task that ``pretrained`` never saw.

        Args:
            pretrained: this method's networks trained on other tasks (``M − 1`` of them).
            new: the same networks (same names) for the new task alone (``M = 1``), freshly
                initialised.

        Default: the shared parameters θ (:meth:`MultiTaskMLP.shared_parameters`) are copied from
        ``pretrained``; every task-specific parameter keeps the fresh initialisation the method
        gives any task at the start of training — VarShare (and its variants) ``μ = 0``,
        ``ρ = ρ_init``; L2-soft ``φ = 0``; a freshly initialised output head for hard sharing,
        PCGrad and CAGrad. Parameters outside the θ / per-task split (e.g.
        ``varshare_adaptive_prior``'s learned prior scales) start fresh too. Methods whose new-task
        definition differs override this (contextual, independent).
        """
        with torch.no_grad():
            for name, network in new.items():
                trained = pretrained[name].shared_parameters()
                for param_name, param in network.shared_parameters().items():
                    param.copy_(trained[param_name])

    def diagnostics(self, networks: Networks) -> dict[str, float]:
        """Scalars describing the method's state (logged once per update)."""
        return {}

    def task_diagnostics(self, networks: Networks) -> dict[str, Tensor]:
        """Per-task quantities ``[M]`` describing where tasks specialise (logged at evaluations)."""
        return {}

    def state_dict(self) -> dict:
        """The method's own state (e.g. random generators), saved in checkpoints."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""


def make_method(name: str, config: ExperimentConfig, num_tasks: int, seed: int) -> Method:
    """The registered method ``name``; a ``ValueError`` lists the registered names otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; allowed: {sorted(REGISTRY)}")
    return REGISTRY[name](config, num_tasks, seed)
