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
             device="cpu", strategy: str = "mean", seed: int = 0) -> EpisodeLog:
    """One episode of the greedy policy on each of ``episodes`` copies per task.

    ``make_env(envs_per_task)`` builds the evaluation env (its seed is the caller's business).
    ``strategy`` chooses the weights (:mod:`varshare.eval.strategies`): ``"mean"`` — the mean
    weights; ``"sample-K"`` — K full weight draws per copy, made before the episode and held for
    all of it, acting greedily on the average of the K action distributions. ``seed`` seeds the
    weight draws."""
    env = make_env(episodes)
    try:
        obs = torch.as_tensor(env.reset(), dtype=torch.float32, device=device)
        policy = EvalPolicy(model, strategy, episodes, seed=seed, device=device)
        finished = np.zeros((env.num_tasks, episodes), dtype=bool)
        log = EpisodeLog.empty(env.num_tasks)
        with torch.no_grad():
            while not finished.all():
                step = env.step(policy.act(obs).cpu().numpy())
                log.record(step, step.done & ~finished)
                finished |= step.done
                obs = torch.as_tensor(step.obs, dtype=torch.float32, device=device)
    finally:
        env.close()
    return log


def mean_or_nan(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan
