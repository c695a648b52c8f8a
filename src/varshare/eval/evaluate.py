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
        obs = torch.as_tensor(env.reset(), dtype=torch.float32, device=device)
        policy = EvalPolicy(model, strategy, copies, seed=seed, device=device)
        remaining = np.full((env.num_tasks, copies), episodes // copies)
        log = EpisodeLog.empty(env.num_tasks)
        with torch.no_grad():
            while remaining.any():
                step = env.step(policy.act(obs).cpu().numpy())
                counted = step.done & (remaining > 0)
                log.record(step, counted)
                remaining -= counted
                starting = counted & (remaining > 0)  # copies that begin another counted episode
                if starting.any():
                    policy.redraw(torch.as_tensor(starting, device=device))
                obs = torch.as_tensor(step.obs, dtype=torch.float32, device=device)
    finally:
        env.close()
    return log


def mean_or_nan(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan
