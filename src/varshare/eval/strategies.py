"""Evaluation strategies of stochastic-weight policies: which weights the greedy policy acts with.

=============  =================================================================================
``mean``       the mean weights ``θ + μ`` (``noise=None``); the evaluation every run logs as
               ``eval_return``
``sample-1``   one full weight draw ``W = θ + μ + σ ⊙ ε`` per episode, independently for every
               evaluation copy; the draw is held for the whole episode
``sample-5``   five independent full draws per episode (and copy); the action is greedy on the
               average of the five action distributions: the mean of the softmax probabilities
               (discrete: argmax of it) or the mean of the Gaussian means (continuous)
=============  =================================================================================

``sample-K`` is accepted for any ``K >= 1``. The policy is always greedy (argmax / mean action);
only the weights differ. :func:`varshare.algos.ppo.evaluate` runs exactly one episode on each
evaluation copy, so one draw per copy, made when the :class:`EvalPolicy` is built, *is* one draw
per episode.

How the draws reach the network. A layer with native per-example draws
(:meth:`~varshare.nn.layers.MultiTaskLinear.weight_sample_noise`, e.g.
:class:`~varshare.nn.layers.VariationalResidualLinear`) computes every example with its own full
weight sample in one batched pass — whatever estimator it trains with (Flipout, shared noise,
local reparameterisation). A stochastic layer without it whose randomness is all in its rollout
noise (one ``ε`` per task, no per-example noise — e.g. the LoRA residual) draws its full weights
from that noise: the actor then runs once per example, each with its own rollout-noise draw (slow,
evaluation only). Any other stochastic layer raises ``NotImplementedError``.

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

from varshare.nn import ActorCritic, MultiTaskLinear, Noise
from varshare.nn.networks import group_by_layer

#: the strategies training logs (``mean`` first)
STRATEGIES: tuple[str, ...] = ("mean", "sample-1", "sample-5")
#: the sample strategies training logs next to the mean strategy, for stochastic-weight models
SAMPLE_STRATEGIES: tuple[str, ...] = ("sample-1", "sample-5")


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


def has_stochastic_weights(model: ActorCritic) -> bool:
    """Whether any layer of ``model`` has random weights."""
    return any(layer.stochastic_weights for layer in model.multitask_layers())


def _native(layer: MultiTaskLinear) -> bool:
    """The layer implements per-example full-weight draws itself."""
    return type(layer).weight_sample_noise is not MultiTaskLinear.weight_sample_noise


def _layer_draw(layer: MultiTaskLinear, index: int, generator: torch.Generator) -> Noise:
    """One full weight draw of a non-native layer, for a single example (see module doc)."""
    if not layer.stochastic_weights:
        return {}
    probe = torch.Generator(device=next(layer.parameters()).device).manual_seed(0)
    if layer.example_noise(1, probe):
        raise NotImplementedError(
            f"layer {index} ({type(layer).__name__}) draws per-example noise and does not implement "
            "weight_sample_noise: its full weights cannot be drawn for the sample-k evaluation strategies")
    return layer.rollout_noise(generator)


class WeightDraws:
    """``batch_size`` independent full weight draws of ``model``'s actor, one per example.

    Args:
        model: the actor-critic (only its actor is drawn: greedy actions need nothing else).
        batch_size: examples per task, each with its own draw.
        generator: source of the draws.
    """

    def __init__(self, model: ActorCritic, batch_size: int, generator: torch.Generator):
        self.actor = model.actor
        self.batch_size = batch_size
        layers = list(self.actor.layers)
        self.native = all(_native(layer) or not layer.stochastic_weights for layer in layers)
        if self.native:  # one noise dict, example axis inside every tensor
            draws = [layer.weight_sample_noise(batch_size, generator) for layer in layers]
            #: the draws' ε, by ``"<layer index>.<key>"``
            self.noise: Noise = {f"{i}.{key}": value for i, draw in enumerate(draws) for key, value in draw.items()}
            # what the forward passes use: the per-example weights, computed once
            self.cache: Noise = {f"{i}.{key}": value for i, (layer, draw) in enumerate(zip(layers, draws))
                                 for key, value in layer.weight_sample_cache(draw).items()}
            self.per_example: list[Noise] = []
        else:  # one noise dict per example
            self.noise = self.cache = {}
            self.per_example = [
                {f"{i}.{key}": value for i, layer in enumerate(layers)
                 for key, value in (layer.weight_sample_noise(1, generator) if _native(layer)
                                    else _layer_draw(layer, i, generator)).items()}
                for _ in range(batch_size)
            ]
        self._cache_by_layer = group_by_layer(self.cache)
        self._per_example_by_layer = [group_by_layer(noise) for noise in self.per_example]

    def actor_output(self, obs: Tensor) -> Tensor:
        """Actor outputs ``[M, batch_size, out]`` (logits / action means) for ``obs``
        ``[M, batch_size, obs_dim]``, example ``b`` with draw ``b``."""
        if self.native:
            return self.actor(obs, self._cache_by_layer)
        return torch.cat([self.actor(obs[:, b:b + 1], noise) for b, noise in enumerate(self._per_example_by_layer)],
                         dim=1)


def strategy_generator(seed: int, draws: int, device) -> torch.Generator:
    """The generator of a strategy's weight draws: seeded with ``(seed, draws)``."""
    state = int(np.random.SeedSequence([int(seed), draws]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(state)


class EvalPolicy:
    """The greedy evaluation policy of ``model`` under ``strategy`` for ``copies`` copies per task.

    The weights of the sample strategies are drawn once, here: one (or K) draws per copy, held
    until the policy is discarded — one episode per copy in :func:`varshare.algos.ppo.evaluate`.

    Args:
        model: the actor-critic.
        strategy: ``"mean"`` or ``"sample-K"``.
        copies: evaluation copies per task (``N``; observations are ``[M, N, obs_dim]``).
        seed: seeds the weight draws (ignored by the mean strategy).
        device: where the model lives.
    """

    def __init__(self, model: ActorCritic, strategy: str, copies: int, seed: int = 0, device="cpu"):
        self.model = model
        self.strategy = strategy
        self.draws = parse_strategy(strategy)
        self.copies = copies
        self.weights: WeightDraws | None = None
        if self.draws > 0 and has_stochastic_weights(model):
            generator = strategy_generator(seed, self.draws, torch.device(device))
            # example n·K + k of a task is copy n's k-th draw
            self.weights = WeightDraws(model, copies * self.draws, generator)

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """Greedy actions ``[M, N]`` (discrete) or ``[M, N, act_dim]`` for ``obs`` ``[M, N, obs_dim]``."""
        if self.weights is None:  # mean weights (and every strategy of a deterministic model)
            output = self.model(obs, None)
            return output.logits.argmax(dim=-1) if output.log_std is None else output.logits
        M, N, K = obs.shape[0], obs.shape[1], self.draws
        out = self.weights.actor_output(obs.repeat_interleave(K, dim=1))  # [M, N·K, out]
        out = out.view(M, N, K, -1)
        if self.model.discrete:
            return torch.softmax(out, dim=-1).mean(dim=2).argmax(dim=-1)
        return out.mean(dim=2)  # the log-stds do not depend on the weights: mean of the Gaussian means
