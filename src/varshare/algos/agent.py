"""The one small protocol between a training run (:mod:`varshare.train`) and an RL algorithm.

:class:`~varshare.train.Run` owns the budget, evaluation, logging, checkpoints and resume; it drives
any :class:`Agent` through the members below and never looks inside the algorithm. An algorithm
module ``varshare.algos.<name>`` defines its agent class and exposes it as ``AGENT``
(:func:`varshare.algos.agent_class`). The networks an agent trains live in its :attr:`Agent.model`,
a :class:`TrainedModel`: what evaluation, pruning and leave-one-out need from a trained run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
from torch import Tensor, nn

from varshare.envs.base import VecStep
from varshare.nn import MultiTaskMLP


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; training stops rather than corrupt the model."""


@dataclass
class EpisodeLog:
    """Finished episodes per task (lists of floats), e.g. since the last report."""

    returns: list[list[float]]
    lengths: list[list[int]]
    successes: list[list[bool]]

    @classmethod
    def empty(cls, num_tasks: int) -> EpisodeLog:
        return cls([[] for _ in range(num_tasks)], [[] for _ in range(num_tasks)], [[] for _ in range(num_tasks)])

    def record(self, step: VecStep, where: np.ndarray) -> None:
        """Add the episodes that ended at ``step`` where ``where`` (``[M, N]`` bool) is set."""
        for m, n in zip(*np.nonzero(where)):
            self.returns[m].append(float(step.episode_return[m, n]))
            self.lengths[m].append(int(step.episode_length[m, n]))
            self.successes[m].append(bool(step.episode_success[m, n]))


#: actor outputs of ``K`` weight draws ``[M, N, K, out]`` → greedy actions ``[M, N]`` / ``[M, N, act_dim]``
GreedyReadout = Callable[[Tensor], Tensor]


class TrainedModel(Protocol):
    """An agent's trained networks.

    Attributes:
        num_tasks: ``M``.
        actor: the policy network; its outputs feed :meth:`greedy_actions`.
    """

    num_tasks: int
    actor: MultiTaskMLP

    def networks(self) -> Mapping[str, MultiTaskMLP]:
        """Every network the sharing method shapes, by the attribute name that holds it."""

    def greedy_actions(self, actor_outputs: Tensor) -> Tensor:
        """The deterministic policy: actor outputs of ``K`` weight draws per copy ``[M, N, K, out]``
        → greedy actions on the average of their action distributions (:data:`GreedyReadout`)."""

    def network_input(self, obs: Tensor) -> Tensor:
        """What the networks see for env observations ``[M, N, obs_dim]`` (e.g. normalised by
        statistics the model carries; the identity for most models)."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class Agent(Protocol):
    """An algorithm training ``M`` tasks at once on a :class:`MultiTaskVecEnv` with a sharing method.

    Built as ``AGENT(config, method, env, seed, device, init_model)``; ``init_model`` is called with
    the freshly built model before the optimisers are made (leave-one-out loads pretrained weights
    and freezes some: frozen parameters must stay out of the optimisers and the per-task-gradient
    path).

    Attributes:
        model: the trained networks.
        steps_per_task: env steps per task taken so far.
        iteration: :meth:`iterate` calls done; num_iterations: calls in the whole budget.
        steps_per_iteration: env steps per task of one :meth:`iterate`.
        progress_metrics: keys of :meth:`iterate`'s statistics worth printing in progress lines.
        wall_clock_metrics: keys of :meth:`iterate`'s statistics measured with the clock (``sps``
            first): printed in progress lines, never stored in the reproducible metrics.
    """

    model: nn.Module
    steps_per_task: int
    iteration: int
    num_iterations: int
    steps_per_iteration: int
    progress_metrics: ClassVar[tuple[str, ...]]
    wall_clock_metrics: ClassVar[tuple[str, ...]]

    def iterate(self) -> dict[str, float]:
        """One unit of training (collect experience and update); statistics to log, with
        :attr:`wall_clock_metrics` among them (``sps``: env steps per second, all tasks)."""

    def task_statistics(self) -> dict[str, list[float]]:
        """Per-task statistics of the last :meth:`iterate` (``M`` values each, e.g. SAC's α_m)."""

    def pop_episodes(self) -> EpisodeLog:
        """Training episodes finished since the last call."""

    def reset_observations(self, obs: np.ndarray) -> None:
        """The envs were reset outside the agent (reseeding at a checkpoint): act on ``obs`` next."""

    def state_dict(self) -> dict:
        """Everything a resumed run needs: model, optimisers, generators, method, counters, buffers."""

    def load_state_dict(self, state: dict) -> None: ...

