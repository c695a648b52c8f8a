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

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.stats
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


# ---------------------------------------------------------------------------------------------
# Vectorised statistics for comparisons (the claims report and rliable's figures).
#
# rliable's bootstrap (through ``arch``) costs seconds per interval and is not reproducible from
# a seed; the claims report needs hundreds of intervals. These functions compute the same
# statistics with numpy on a leading axis of bootstrap replications, from a seeded
# ``numpy.random.Generator``: the *stratified independent bootstrap* resamples the runs of each
# score matrix with replacement, independently within each task and independently per matrix
# (rliable's ``StratifiedIndependentBootstrap``); the interval is the percentile interval.
# ---------------------------------------------------------------------------------------------


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """rliable's probability of improvement of X over Y: per task m, P(X_m > Y_m) + ½ P(X_m = Y_m)
    over all pairs of a run of X and a run of Y (the Mann–Whitney U statistic divided by
    ``n_x n_y``), averaged over tasks.

    Args:
        x: scores ``[..., n_x, num_tasks]``; y: ``[..., n_y, num_tasks]``; leading axes broadcast
            (e.g. bootstrap replications).

    Returns:
        ``[...]``: probabilities in [0, 1]; 0.5 when X and Y cannot be told apart.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    pairs_x, pairs_y = x[..., :, None, :], y[..., None, :, :]
    wins = (pairs_x > pairs_y).mean(axis=(-3, -2)) + 0.5 * (pairs_x == pairs_y).mean(axis=(-3, -2))
    return wins.mean(axis=-1)


def interquartile_mean(scores: np.ndarray) -> np.ndarray:
    """rliable's IQM of score matrices ``[..., num_runs, num_tasks]``: the mean of the middle 50%
    of each matrix's entries (``scipy.stats.trim_mean(·, 0.25)``); returns ``[...]``."""
    scores = np.asarray(scores, dtype=float)
    flat = scores.reshape(*scores.shape[:-2], -1)
    return scipy.stats.trim_mean(flat, 0.25, axis=-1)


def stratified_resample(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` bootstrap copies ``[reps, num_runs, num_tasks]`` of ``scores`` ``[num_runs,
    num_tasks]``: in each copy, each task's column is ``num_runs`` draws with replacement from that
    task's runs."""
    num_runs, num_tasks = scores.shape
    index = rng.integers(0, num_runs, size=(reps, num_runs, num_tasks))
    return np.take_along_axis(np.broadcast_to(scores, (reps, num_runs, num_tasks)), index, axis=1)


def comparison_interval(statistic: Callable[..., np.ndarray], samples: Sequence[np.ndarray], seed: int,
                        reps: int = 2000) -> tuple[float, float, float]:
    """``(point, ci_low, ci_high)`` of ``statistic(*samples)`` with its 95% stratified-independent
    bootstrap percentile interval.

    Args:
        statistic: maps score matrices with a leading replication axis, ``[r, num_runs_i,
            num_tasks]`` each, to ``[r]`` (e.g. :func:`probability_of_improvement`).
        samples: score matrices ``[num_runs_i, num_tasks]`` (same tasks, in the same order); each
            is resampled on its own.
        seed: seeds the ``numpy.random.Generator`` of the resampling (same inputs and seed ⇒ same
            interval).

    Returns:
        The point estimate on the samples themselves and the interval; the interval is NaN when
        some sample has a single run (its spread is unknown, so an interval would claim a
        certainty the data do not give).
    """
    samples = [np.asarray(s, dtype=float) for s in samples]
    if len({s.shape[1] for s in samples}) != 1:
        raise ValueError(f"score matrices cover different numbers of tasks: {[s.shape for s in samples]}")
    point = float(statistic(*(s[None] for s in samples))[0])
    if any(s.shape[0] < 2 for s in samples):
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    replicates = statistic(*(stratified_resample(s, reps, rng) for s in samples))
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return point, float(low), float(high)
