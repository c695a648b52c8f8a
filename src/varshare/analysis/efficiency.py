"""Per-run, per-task scores of evaluation curves: the normalised score, the final score, the area
under the curve and the steps to a threshold (SCIENCE.md, "The claims").

**Normalised score.** Per task m, ``s = (R − R_random,m) / (R_solved − R_random,m)`` with the
suite's :class:`~varshare.hpo.objective.ScoreRange` (0: a uniformly random policy, 1: solved;
Meta-World's success rate as it is). On CartPole-10 ``R_solved`` = 500 is also the highest return
an episode can have, so 1 is a ceiling (:attr:`ScoreRange.solved_is_ceiling`; also Meta-World's
success rate).

**Area under the curve (AUC).** With evaluations at steps ``0 = t_0 < t_1 < … `` (env steps per
task) up to a horizon ``H``, ``AUC = Σ_{0 < t_k ≤ H} s(t_k) (t_k − t_{k−1}) / t_K`` where ``t_K`` is
the last evaluation ≤ H: the mean score over the budget, each evaluation standing for the steps
since the previous one. The step-0 evaluation is excluded (it measures the initial policy, not
learning speed: a residual method's untrained head scores −1270 on LunarLander). Units: normalised
score; with evenly spaced evaluations, the mean of the evaluations after step 0.

**Steps to a threshold.** The first evaluation step ``t_k ≤ H`` with ``s(t_k) ≥ τ``. A run that
does not reach τ by ``H`` is *censored*: its value is ``+inf`` (slower than any run that reached
it; two censored runs tie), which a rank statistic such as the probability of improvement handles
exactly when all runs share the horizon.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from varshare.analysis.aggregate import EVAL_METRIC, SUCCESS_METRIC
from varshare.analysis.loo import steps_to_threshold as loo_steps_to_threshold
from varshare.hpo.objective import ScoreRange

RUN_KEYS = ["algo", "method", "seed", "task"]


def normalised_curves(task_curves: pd.DataFrame, scores: ScoreRange, metric: str | None = None) -> pd.DataFrame:
    """Per-task normalised evaluation curves.

    Args:
        task_curves: a results directory's ``task_curves.csv`` (algo, method, seed, task, step,
            metric, value).
        scores: the suite's score range.
        metric: the evaluation metric read (default: ``eval_return`` for return-scored suites,
            ``eval_success`` for success-scored ones); e.g. ``eval_return_sample1`` for a strategy.

    Returns:
        Columns ``algo, method, seed, task, step, score`` (score normalised; empty when no run logs
        the metric).

    Raises:
        ValueError: a task the score range does not know, or a return metric on a success-scored suite.
    """
    metric = metric or (SUCCESS_METRIC if scores.metric == "success" else EVAL_METRIC)
    if scores.metric == "success" and metric != SUCCESS_METRIC:
        raise ValueError(f"{scores.suite} is scored by its success rate; {metric!r} cannot be normalised by it")
    rows = task_curves[task_curves["metric"] == metric]
    unknown = sorted(set(rows["task"]) - set(scores.random))
    if unknown:
        raise ValueError(f"tasks {unknown} are not in {scores.suite}'s score range ({sorted(scores.random)})")
    low = rows["task"].map(scores.random)
    return rows.assign(score=(rows["value"] - low) / (scores.solved - low))[[*RUN_KEYS, "step", "score"]]


def area_under_curve(steps: np.ndarray, scores: np.ndarray, horizon: int) -> float:
    """AUC of one curve (module docstring): evaluation ``steps`` ascending (the first 0) and their
    ``scores``, evaluations after ``horizon`` ignored; NaN when no evaluation lies in (0, horizon]."""
    steps, scores = np.asarray(steps), np.asarray(scores, dtype=float)
    inside = steps <= horizon
    steps, scores = steps[inside], scores[inside]
    if steps.size and steps[0] != 0:
        raise ValueError(f"an evaluation curve must start at step 0; it starts at {steps[0]}")
    if steps.size < 2:
        return float("nan")
    return float((scores[1:] * np.diff(steps)).sum() / steps[-1])


def steps_to_threshold(steps: np.ndarray, scores: np.ndarray, threshold: float, horizon: int) -> float:
    """First evaluation step ≤ ``horizon`` with score ≥ ``threshold``; ``inf`` when censored (the
    leave-one-out study's :func:`varshare.analysis.loo.steps_to_threshold`, cut at ``horizon``)."""
    steps, scores = np.asarray(steps), np.asarray(scores, dtype=float)
    inside = steps <= horizon
    if not inside.any():
        return float("inf")
    first, censored = loo_steps_to_threshold(steps[inside], scores[inside], threshold)
    return float("inf") if censored else float(first)


def run_statistics(curves: pd.DataFrame, threshold: float, horizon: int | None = None) -> pd.DataFrame:
    """Per (algo, method, seed, task): the final score, the AUC and the steps to ``threshold``.

    Args:
        curves: output of :func:`normalised_curves`.
        threshold: τ, in normalised score.
        horizon: the steps per task the statistics look at (default: each run's last evaluation);
            ``final`` is then the last evaluation at or before it.

    Returns:
        Columns ``algo, method, seed, task, final, auc, steps, horizon``.
    """
    rows = []
    for key, curve in curves.groupby(RUN_KEYS, sort=False):
        curve = curve.sort_values("step")
        steps, scores = curve["step"].to_numpy(), curve["score"].to_numpy()
        end = int(steps[-1]) if horizon is None else int(horizon)
        last = np.flatnonzero(steps <= end)[-1]
        rows.append({**dict(zip(RUN_KEYS, key)), "final": float(scores[last]),
                     "auc": area_under_curve(steps, scores, end),
                     "steps": steps_to_threshold(steps, scores, threshold, end), "horizon": end})
    return pd.DataFrame(rows, columns=[*RUN_KEYS, "final", "auc", "steps", "horizon"])
