"""What a sharing method is: how layers get per-task weights, an extra loss, a gradient combiner.

PPO (and any other algorithm) talks to a method only through :class:`Method`; it never branches on
method names. A new method is one module that subclasses :class:`Method` and registers itself with
:func:`register`.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch
from torch import Tensor

from varshare.config import ExperimentConfig
from varshare.nn import ActorCritic, MultiTaskLinear

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
    #: collect rollouts with the mean weights (noise only inside updates); a variant, never the
    #: default: the first minibatch's ratio is then π_sampled / π_mean, not 1
    rollout_mean_weights: ClassVar[bool] = False
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

    def build_model(self, obs_dim: int, action_dim: int, discrete: bool) -> ActorCritic:
        """The actor-critic with this method's layer layout (actor and critic alike)."""
        network = self.config.network
        return ActorCritic(
            obs_dim=obs_dim,
            action_dim=action_dim,
            discrete=discrete,
            num_tasks=self.num_tasks,
            hidden_sizes=list(network.hidden_sizes),
            activation=network.activation,
            make_layer=self.make_layer,
            embedding_dim=self.embedding_dim,
        )

    def extra_loss(self, model: ActorCritic, examples_per_task: int) -> tuple[Tensor, dict[str, float]]:
        """The method's term added to the RL loss, and scalars to log.

        Args:
            examples_per_task: ``N_data``, transitions per task in the update batch.
        """
        return torch.zeros(()), {}

    def combine_gradients(self, grads: Tensor) -> Tensor:
        """Per-task gradients of the shared parameters ``[M, D]`` → the update direction ``[D]``.

        Only called when :attr:`per_task_gradients` is set.
        """
        return grads.sum(dim=0)

    def begin_update(self, model: ActorCritic, progress: float) -> None:
        """Called after each rollout, before its update phase; ``progress`` ∈ [0, 1) is the
        fraction of training done (iterations so far / total)."""

    def end_update(self, model: ActorCritic) -> None:
        """Called after each update phase (e.g. to move parameters between θ and the residuals)."""

    def unseen_task_parameters(self, pretrained: ActorCritic, model: ActorCritic) -> None:
        """Initialise ``model`` in place for a task that ``pretrained`` never saw (leave-one-out).

        Args:
            pretrained: this method's model trained on other tasks (``M − 1`` of them).
            model: this method's model for the new task alone (``M = 1``), freshly initialised.

        Default: the shared parameters θ (:meth:`ActorCritic.shared_parameters`) are copied from
        ``pretrained``; every task-specific parameter keeps the fresh initialisation the method
        gives any task at the start of training — VarShare (and its variants) ``μ = 0``,
        ``ρ = ρ_init``; L2-soft ``φ = 0``; a freshly initialised output head for hard sharing,
        PCGrad and CAGrad. Parameters outside the layers' θ / per-task split (e.g.
        ``varshare_adaptive_prior``'s learned prior scales) start fresh too. Methods whose new-task
        definition differs override this (contextual, independent).
        """
        with torch.no_grad():
            trained = pretrained.shared_parameters()
            for name, param in model.shared_parameters().items():
                param.copy_(trained[name])

    def diagnostics(self, model: ActorCritic) -> dict[str, float]:
        """Scalars describing the method's state (logged once per update)."""
        return {}

    def task_diagnostics(self, model: ActorCritic) -> dict[str, Tensor]:
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
