"""Evaluation episodes of a trained model: the greedy policy under one evaluation strategy."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from varshare.algos.agent import EpisodeLog, TrainedModel
from varshare.envs.base import MultiTaskVecEnv
from varshare.eval.strategies import EvalPolicy


def evaluate(model: TrainedModel, make_env: Callable[[int], MultiTaskVecEnv], episodes: int,
             device="cpu", strategy: str = "mean", seed: int = 0, copies: int | None = None) -> EpisodeLog:
    """``episodes`` episodes per task of the greedy policy on ``copies`` env copies per task.

    Each copy runs ``episodes / copies`` episodes back to back (same-step auto-reset, so a copy's
    next episode continues its own RNG stream and draws a fresh goal, as Meta-World's own
    evaluation does with one env per task); ``copies=None`` means one episode per copy.
    ``make_env(envs_per_task)`` builds the evaluation env (its seed is the caller's business).
    ``strategy`` chooses the weights (:mod:`varshare.eval.strategies`): ``"mean"`` — the mean
    weights; ``"sample-K"`` — K full weight draws per episode, held for all of it, acting greedily
    on the average of the K action distributions. ``seed`` seeds the weight draws. An episode
    succeeds if the env's success flag fired at any of its steps; the log keeps each task's
    episodes in the order they ended."""
    copies = episodes if copies is None else copies
    if not 1 <= copies <= episodes or episodes % copies:
        raise ValueError(f"copies = {copies} must divide episodes = {episodes}")
    env = make_env(copies)
    try:
        policy = EvalPolicy(model, strategy, copies, seed=seed, device=device)
        with torch.no_grad():
            return play_episodes(
                env, lambda obs: policy.act(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().numpy(),
                episodes // copies, redraw=lambda starting: policy.redraw(torch.as_tensor(starting, device=device)))
    finally:
        env.close()


def play_episodes(env: MultiTaskVecEnv, act: Callable[[np.ndarray], np.ndarray], episodes_per_copy: int,
                  redraw: Callable[[np.ndarray], None] | None = None) -> EpisodeLog:
    """Run ``episodes_per_copy`` episodes back to back on every copy of ``env`` (reset here).

    ``act(obs)`` maps observations ``[M, N, obs_dim]`` to actions ``[M, N]`` / ``[M, N, act_dim]``;
    ``redraw(starting)`` (``[M, N]`` bool) is told which copies begin another counted episode.
    Returns each task's episodes in the order they ended."""
    obs = env.reset()
    remaining = np.full((env.num_tasks, env.envs_per_task), episodes_per_copy)
    log = EpisodeLog.empty(env.num_tasks)
    while remaining.any():
        step = env.step(act(obs))
        counted = step.done & (remaining > 0)
        log.record(step, counted)
        remaining -= counted
        starting = counted & (remaining > 0)  # copies that begin another counted episode
        if redraw is not None and starting.any():
            redraw(starting)
        obs = step.obs
    return log


def mean_or_nan(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan
