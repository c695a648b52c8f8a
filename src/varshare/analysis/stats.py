"""Final performance per (algorithm, method): interquartile mean (IQM) with a 95% stratified-bootstrap
CI.

Definitions are rliable's (Agarwal et al., 2021, "Deep RL at the Edge of the Statistical
Precipice"): the scores of a method under one algorithm form a matrix ``[num_runs, num_tasks]``
(runs = seeds); the IQM is the mean of the middle 50% of all its entries
(``scipy.stats.trim_mean(scores, 0.25)``: with ``n`` scores, ``floor(n / 4)`` are dropped from each
end); the stratified bootstrap resamples runs with replacement independently within each task, and
the interval is the percentile interval of the bootstrap IQMs.

rliable draws its resampling indices from numpy's *global* RNG, so :func:`iqm_with_ci` seeds it
and restores the caller's state afterwards.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from rliable import library, metrics

from varshare.analysis.style import ordered_algos, ordered_methods

CONFIDENCE = 0.95
INTERVAL_METHOD = "percentile"


def score_matrix(final: pd.DataFrame, algo: str, method: str, column: str = "return") -> np.ndarray:
    """Final scores (``final[column]``: returns, or success rates) of ``method`` under ``algo`` as a
    ``[num_seeds, num_tasks]`` float array.

    Seeds ascending, tasks in the order they first appear in ``final``.

    Raises:
        ValueError: when some (seed, task) of the algorithm and method has no score, or a
            duplicate one.
    """
    rows = final[(final["algo"] == algo) & (final["method"] == method)]
    name = f"{algo}/{method}"
    if rows.duplicated(["seed", "task"]).any():
        raise ValueError(f"{name}: several final {column} values for one (seed, task)")
    tasks = list(final["task"].unique())
    matrix = rows.pivot(index="seed", columns="task", values=column).reindex(columns=tasks).sort_index()
    if matrix.isna().to_numpy().any():
        missing = [(seed, task) for seed, task in zip(*np.nonzero(matrix.isna().to_numpy()))]
        names = [(int(matrix.index[s]), tasks[t]) for s, t in missing]
        raise ValueError(f"{name}: no final {column} for (seed, task) {names[:5]}"
                         f"{' ...' if len(names) > 5 else ''} (runs of one suite must cover the same tasks)")
    return matrix.to_numpy(dtype=float)


def bootstrap_interval(scores: np.ndarray, aggregate: Callable[[np.ndarray], float], seed: int,
                       reps: int = 2000, task_bootstrap: bool = False) -> tuple[float, float, float]:
    """``(point, ci_low, ci_high)``: ``aggregate`` of ``scores`` ``[num_runs, num_tasks]`` with its 95%
    stratified-bootstrap percentile interval (rliable: runs resampled within each task; with
    ``task_bootstrap`` tasks too).

    ``seed`` seeds numpy's global RNG for the bootstrap; the caller's state is restored afterwards.
    With a single run and ``task_bootstrap=False`` there is nothing to resample — rliable's interval
    collapses to the point, which would claim certainty — so the interval is NaN.
    """

    def statistic(sample: np.ndarray) -> np.ndarray:
        return np.array([aggregate(sample)])

    point = float(aggregate(scores))
    if scores.shape[0] < 2 and not task_bootstrap:
        return point, float("nan"), float("nan")
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        points, intervals = library.get_interval_estimates(
            {"scores": scores}, statistic, method=INTERVAL_METHOD, task_bootstrap=task_bootstrap,
            reps=reps, confidence_interval_size=CONFIDENCE)
    finally:
        np.random.set_state(state)
    low, high = (float(v) for v in np.asarray(intervals["scores"]).reshape(2))
    return float(points["scores"][0]), low, high


def iqm_with_ci(final: pd.DataFrame, seed: int, reps: int = 2000, task_bootstrap: bool = False,
                column: str = "return") -> pd.DataFrame:
    """IQM of the final per-task scores of each (algorithm, method) with a 95% stratified-bootstrap CI.

    Args:
        final: output of :func:`varshare.analysis.aggregate.final_returns` (columns algo, method,
            seed, task and ``column``).
        seed: seeds numpy's global RNG before each (algorithm, method)'s bootstrap, so its interval
            depends only on ``seed``, ``reps`` and its own scores (not on which others are
            present); the caller's global RNG state is restored afterwards.
        reps: bootstrap replications.
        task_bootstrap: also resample tasks (rliable's ``task_bootstrap``), i.e. include the
            uncertainty of having picked these tasks; the default resamples runs only.
        column: the score (``return``; ``success`` for success rates).

    Returns:
        One row per (algo, method) present (:func:`ordered_algos`, then :func:`ordered_methods`
        order), columns ``algo, method, iqm, ci_low, ci_high, num_runs, num_tasks``; in the
        score's units. With a single run and ``task_bootstrap=False`` ``ci_low`` and
        ``ci_high`` are NaN (:func:`bootstrap_interval`).
    """
    rows = []
    for algo in ordered_algos(final["algo"]):
        for method in ordered_methods(final.loc[final["algo"] == algo, "method"]):
            scores = score_matrix(final, algo, method, column)
            num_runs, num_tasks = scores.shape
            point, low, high = bootstrap_interval(scores, metrics.aggregate_iqm, seed, reps, task_bootstrap)
            rows.append({"algo": algo, "method": method, "iqm": point, "ci_low": low, "ci_high": high,
                         "num_runs": num_runs, "num_tasks": num_tasks})
    return pd.DataFrame(rows, columns=["algo", "method", "iqm", "ci_low", "ci_high", "num_runs", "num_tasks"])
