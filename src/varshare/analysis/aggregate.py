"""From finished run directories to tidy result tables.

Every table here is a :class:`pandas.DataFrame` in long ("tidy") form unless stated otherwise.
Two evaluation metrics are read, each per task at every evaluation of the deterministic policy (see
:data:`varshare.train.EVAL_PROTOCOL`): ``eval_return`` (undiscounted episode return, the default)
and ``eval_success`` (fraction of episodes whose success flag fired at any step, in [0, 1]; the
score of Meta-World MT10). ``step`` is environment steps *per task*. A run is keyed by
``(algo, method, seed)``: every table carries ``algo``, and runs of different algorithms never merge.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from varshare.analysis.style import ordered_algos, ordered_methods
from varshare.run_io import METRIC_COLUMNS

EVAL_METRIC = "eval_return"
SUCCESS_METRIC = "eval_success"
#: per-task evaluation metrics kept, per task and step, in ``task_curves.csv``: the deterministic
#: evaluation, the sample-k strategies of stochastic-weight methods, the success rate
TASK_CURVE_METRICS = (EVAL_METRIC, "eval_return_sample1", "eval_return_sample5", SUCCESS_METRIC)


class RunDirectoryError(ValueError):
    """A run directory is missing, unfinished, malformed, or does not fit with the others."""


def load_runs(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate the ``metrics.csv`` tables of finished run directories.

    Args:
        run_dirs: directories written by ``varshare train``; each must hold ``done.json``.

    Returns:
        Columns ``run, algo, method, seed, task, step, metric, value`` (str, str, str, int, str, int,
        str, float), the rows of every run in the order given.

    Raises:
        RunDirectoryError: naming the directory, when it does not exist, has no ``done.json``
            (unfinished), has a malformed ``metrics.csv``, or repeats a run already loaded.
    """
    frames = []
    seen: dict[str, Path] = {}
    for directory in map(Path, run_dirs):
        if not directory.is_dir():
            raise RunDirectoryError(f"{directory}: run directory does not exist")
        if not (directory / "done.json").is_file():
            raise RunDirectoryError(f"{directory}: run is unfinished (no done.json)")
        path = directory / "metrics.csv"
        if not path.is_file():
            raise RunDirectoryError(f"{directory}: finished run without metrics.csv")
        # Read as text first: task names must stay strings ("NA" is a name, not a missing value).
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if tuple(frame.columns) != METRIC_COLUMNS:
            raise RunDirectoryError(f"{path}: expected columns {METRIC_COLUMNS}, got {tuple(frame.columns)}")
        try:
            frame = frame.astype({"seed": int, "step": int, "value": float})
        except ValueError as error:
            raise RunDirectoryError(f"{path}: {error}") from error
        runs = frame["run"].unique()
        if len(runs) != 1:
            raise RunDirectoryError(f"{path}: expected rows of one run, found {list(runs)}")
        if runs[0] in seen:
            raise RunDirectoryError(f"{directory}: run {runs[0]!r} already loaded from {seen[runs[0]]}")
        seen[runs[0]] = directory
        frames.append(frame)
    if not frames:
        raise RunDirectoryError("no run directories given")
    return pd.concat(frames, ignore_index=True)


def has_metric(df: pd.DataFrame, metric: str) -> bool:
    """Whether any run of ``df`` (metrics of :func:`load_runs`) logs ``metric``."""
    return bool((df["metric"] == metric).any())


def _eval_rows(df: pd.DataFrame, metric: str = EVAL_METRIC) -> pd.DataFrame:
    """The per-task ``metric`` rows, checked: one run per (algo, method, seed), every task at every
    evaluation step of a run."""
    rows = df[df["metric"] == metric]
    if rows.empty:
        raise RunDirectoryError(f"no {metric!r} rows in the metrics")
    runs_per_key = rows.groupby(["algo", "method", "seed"])["run"].nunique()
    if (runs_per_key > 1).any():
        clash = runs_per_key[runs_per_key > 1].index.tolist()
        raise RunDirectoryError(f"several runs share (algo, method, seed) {clash}: aggregate one suite at a time")
    if rows.duplicated(["run", "task", "step"]).any():
        raise RunDirectoryError(f"duplicate {metric!r} rows for the same (run, task, step)")
    for run, group in rows.groupby("run", sort=False):
        counts = group.groupby("step")["task"].nunique()
        tasks = group["task"].nunique()
        if (counts != tasks).any():
            raise RunDirectoryError(f"run {run!r}: evaluation steps {counts[counts != tasks].index.tolist()} "
                                    f"lack some of its {tasks} tasks")
    return rows


def _sort(df: pd.DataFrame, by: list[str], **orders: list) -> pd.DataFrame:
    """Sort by ``by`` (stable; fresh integer index): algorithms in :func:`ordered_algos` order,
    methods in :func:`ordered_methods` order, a column named in ``orders`` in the order given, other
    columns by value."""
    orders = {"algo": ordered_algos(df["algo"]), "method": ordered_methods(df["method"]), **orders}
    rank = {column: {value: i for i, value in enumerate(values)} for column, values in orders.items()}
    return df.sort_values(by, key=lambda col: col.map(rank[col.name]) if col.name in rank else col,
                          kind="stable").reset_index(drop=True)


def eval_curves(df: pd.DataFrame, metric: str = EVAL_METRIC, column: str = "return") -> pd.DataFrame:
    """Task-averaged evaluation ``metric`` of every run at every evaluation step.

    Args:
        df: metrics of :func:`load_runs`.
        metric: the per-task metric averaged (``eval_return``, or :data:`SUCCESS_METRIC`).
        column: name of the averaged column (``return``; ``success`` for the success rate).

    Returns:
        Columns ``algo, method, seed, step, <column>``: one row per (run, evaluation step), the mean
        over the run's tasks of ``metric`` (NaN if any task's is NaN, as in training's
        ``eval_return_mean``); sorted by algo, method, seed, step.
    """
    rows = _eval_rows(df, metric)
    curves = (rows.groupby(["algo", "method", "seed", "step"])["value"]
              .agg(lambda values: values.to_numpy().mean()).rename(column).reset_index())
    return _sort(curves, ["algo", "method", "seed", "step"])


def task_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Every run's per-task evaluations: the metrics of :data:`TASK_CURVE_METRICS` it logs.

    Returns:
        Columns ``algo, method, seed, task, step, metric, value``: one row per (run, task,
        evaluation step, metric); sorted by algo, method, seed, metric, task (suite order), step.
    """
    rows = df[df["metric"].isin(TASK_CURVE_METRICS)]
    for metric in rows["metric"].unique():
        _eval_rows(df, metric)  # the checks: one run per key, every task at every step
    table = rows[["algo", "method", "seed", "task", "step", "metric", "value"]]
    return _sort(table, ["algo", "method", "seed", "metric", "task", "step"],
                 metric=list(TASK_CURVE_METRICS), task=list(df["task"][df["task"] != "all"].unique()))


def final_returns(df: pd.DataFrame, metric: str = EVAL_METRIC, column: str = "return") -> pd.DataFrame:
    """Each run's per-task evaluation ``metric`` at its last evaluation.

    Args:
        df: metrics of :func:`load_runs`.
        metric, column: as in :func:`eval_curves` (default: the return, in column ``return``).

    Returns:
        Columns ``algo, method, seed, task, step, <column>``: one row per (run, task), ``step`` the
        run's last evaluation step (env steps per task); sorted by algo, method, seed, then task in
        suite order (the order tasks first appear in the metrics).
    """
    rows = _eval_rows(df, metric)
    last = rows.groupby("run")["step"].transform("max")
    final = rows[rows["step"] == last].rename(columns={"value": column})
    final = final[["algo", "method", "seed", "task", "step", column]]
    return _sort(final, ["algo", "method", "seed", "task"], task=list(rows["task"].unique()))


def per_task_table(final: pd.DataFrame) -> pd.DataFrame:
    """Final return per algorithm, task and method, over seeds: a wide table for reading.

    Args:
        final: output of :func:`final_returns`.

    Returns:
        One row per (algo, task) (algorithms in :func:`ordered_algos` order, then tasks in suite
        order): columns ``algo, task``; for each method (in :func:`ordered_methods` order)
        ``<method>_mean`` and ``<method>_std``, the mean and sample standard deviation (ddof 1; NaN
        with one seed, or where the algorithm has no run of the method) of the final return over
        seeds; and ``num_seeds``, the fewest seeds any of the algorithm's methods has on that task.
    """
    tasks = list(final["task"].unique())
    methods = ordered_methods(final["method"])
    stats = final.groupby(["algo", "task", "method"])["return"].agg(["mean", "std", "count"])
    rows = []
    for algo in ordered_algos(final["algo"]):
        own = final.loc[final["algo"] == algo, "method"].unique()
        for task in tasks:
            row = {"algo": algo, "task": task}
            for method in methods:
                for stat in ("mean", "std"):
                    row[f"{method}_{stat}"] = stats[stat].get((algo, task, method), float("nan"))
            row["num_seeds"] = int(min(stats["count"].get((algo, task, m), 0) for m in own))
            rows.append(row)
    columns = ["algo", "task", *(f"{m}_{stat}" for m in methods for stat in ("mean", "std")), "num_seeds"]
    return pd.DataFrame(rows, columns=columns)
