"""Evaluation strategies of stochastic-weight policies: which weights the greedy policy acts with.

=============  =================================================================================
``mean``       the mean weights ``θ + μ`` (``noise=None``); the evaluation every run logs as
               ``eval_return``
``sample-1``   one full weight draw ``W = θ + μ + σ ⊙ ε`` per episode, independently for every
               evaluation copy; the draw is held for the whole episode
``sample-5``   five independent full draws per episode (and copy); the action is greedy on the
               average of the five action distributions (the agent's
               :meth:`~varshare.algos.agent.TrainedModel.greedy_actions`: discrete, argmax of the
               mean of the softmax probabilities; continuous, the mean of the Gaussian means)
=============  =================================================================================

``sample-K`` is accepted for any ``K >= 1``. The policy is always greedy (argmax / mean action);
only the weights differ. The draws for every copy are made when the :class:`EvalPolicy` is built;
a copy that runs episodes back to back (:func:`varshare.eval.evaluate.evaluate` with fewer copies
than episodes) gets fresh draws at each new episode (:meth:`EvalPolicy.redraw`), so there is
always one draw (or K) per episode. The draws come from the actor's own
:meth:`~varshare.nn.MultiTaskMLP.draw_weight_samples`: every stochastic layer gives each example its
own full weight sample in one batched pass — whatever estimator it trains with.

Deterministic models (no stochastic layer): every strategy *is* the mean policy, so a sample
strategy runs the mean code path and reports exactly the mean strategy's numbers; training
(:meth:`varshare.train.Run.evaluate`) does not log sample strategies for them at all.

Draws come from a ``torch.Generator`` seeded with ``(seed, K)``: deterministic given the seed, and
sample-1 and sample-5 use unrelated streams.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import Tensor

from varshare.algos.agent import TrainedModel
from varshare.nn.noise import where_examples

#: the strategies of Fig. 3: ``mean``, then the default ``eval.sample_strategies``
STRATEGIES: tuple[str, ...] = ("mean", "sample-1", "sample-5")


def parse_strategy(strategy: str) -> int:
    """Number of weight draws per episode: ``"mean"`` → 0, ``"sample-K"`` → ``K`` (``K >= 1``)."""
    if strategy == "mean":
        return 0
    match = re.fullmatch(r"sample-([1-9][0-9]*)", strategy)
    if match is None:
        raise ValueError(f"unknown evaluation strategy {strategy!r}; use 'mean' or 'sample-K' (K >= 1), "
                         f"e.g. {', '.join(STRATEGIES)}")
    return int(match.group(1))


def metric_suffix(strategy: str) -> str:
    """Suffix of a strategy's metric names: ``""`` for mean, ``"_sample5"`` for ``sample-5``."""
    draws = parse_strategy(strategy)
    return "" if draws == 0 else f"_sample{draws}"


def strategy_generator(seed: int, draws: int, device) -> torch.Generator:
    """The generator of a strategy's weight draws: seeded with ``(seed, draws)``."""
    state = int(np.random.SeedSequence([int(seed), draws]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(state)


class EvalPolicy:
    """The greedy evaluation policy of ``model`` under ``strategy`` for ``copies`` copies per task.

    The weights of the sample strategies are drawn here, one (or K) draws per copy, and held
    until :meth:`redraw` replaces a copy's draws when it starts another episode.

    Args:
        model: the trained networks (its actor acts; its ``greedy_actions`` reads the outputs).
        strategy: ``"mean"`` or ``"sample-K"``.
        copies: evaluation copies per task (``N``; observations are ``[M, N, obs_dim]``).
        seed: seeds the weight draws (ignored by the mean strategy).
        device: where the model lives.
    """

    def __init__(self, model: TrainedModel, strategy: str, copies: int, seed: int = 0, device="cpu"):
        self.model = model
        self.strategy = strategy
        self.draws = parse_strategy(strategy)
        self.copies = copies
        self.noise = None
        if self.draws > 0 and model.actor.stochastic:
            self.generator = strategy_generator(seed, self.draws, torch.device(device))
            # example n·K + k of a task is copy n's k-th draw
            self.noise = model.actor.draw_weight_samples(copies * self.draws, self.generator)

    def redraw(self, copies: Tensor) -> None:
        """Fresh weight draws for the copies where ``copies`` (``[M, N]`` bool) is set (they start
        a new episode); the others keep theirs. Nothing to do for the mean weights."""
        if self.noise is None:
            return
        fresh = self.model.actor.draw_weight_samples(self.copies * self.draws, self.generator)
        self.noise = where_examples(copies.repeat_interleave(self.draws, dim=1), fresh, self.noise)

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """Greedy actions ``[M, N]`` (discrete) or ``[M, N, act_dim]`` for ``obs`` ``[M, N, obs_dim]``."""
        obs = self.model.network_input(obs)
        if self.noise is None:  # mean weights (and every strategy of a deterministic model)
            return self.model.greedy_actions(self.model.actor(obs, None).unsqueeze(2))
        M, N, K = obs.shape[0], obs.shape[1], self.draws
        out = self.model.actor(obs.repeat_interleave(K, dim=1), self.noise)  # [M, N·K, out]
        return self.model.greedy_actions(out.view(M, N, K, -1))
