"""Fig. 7, Meta-World MT10: success rate per method and algorithm.

Reads the success tables of a results directory (:mod:`varshare.analysis.results`): the score of
MT10 is the success rate (SCIENCE.md "Environments": an episode succeeds if the success flag fired
at any of its steps; per task, the fraction of its evaluation episodes that succeeded, in [0, 1]).

* :func:`success_bands` — the learning curves: at each evaluation step, the success rate averaged
  over the tasks of each run, then its mean over seeds with a 95% bootstrap CI (seeds resampled);
* the final success IQM with its 95% stratified-bootstrap CI is ``success_iqm.csv``
  (:func:`~varshare.analysis.stats.iqm_with_ci` over the ``[seeds, tasks]`` matrix of final rates);
* :func:`per_task_success` — the heatmap: each task's final success rate, mean over seeds.

:func:`plot_mt10` draws one row per algorithm: curves, IQM and heatmap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import EngFormatter

from varshare.analysis.aggregate import _sort
from varshare.analysis.figures import STEP_LABEL, draw_iqm, new_figure, save_figure
from varshare.analysis.stats import bootstrap_interval
from varshare.analysis.style import algo_label, method_color, ordered_algos, ordered_methods

#: the success axis of every panel: the whole [0, 1] range (a little margin), so that rates of
#: different figures and algorithms compare at a glance
SUCCESS_LIMITS = (-0.03, 1.03)
BAND_COLUMNS = ["algo", "method", "step", "mean", "ci_low", "ci_high", "num_seeds"]


def success_bands(curves: pd.DataFrame, seed: int, reps: int = 2000) -> pd.DataFrame:
    """Mean over seeds of the task-averaged success rate, with a 95% bootstrap CI over seeds.

    Args:
        curves: ``success_curves`` (columns algo, method, seed, step and ``success``: a run's
            success rate averaged over its tasks at that evaluation step, in [0, 1]).
        seed: seeds numpy's global RNG before each interval
            (:func:`~varshare.analysis.stats.bootstrap_interval`; the caller's state is restored).
        reps: bootstrap replications.

    Returns:
        One row per (algo, method, step), columns ``algo, method, step, mean, ci_low, ci_high,
        num_seeds``: ``mean`` over the seeds' rates; the percentile interval of the means of
        ``reps`` resamples of the seeds (with replacement); NaN with one seed (nothing to resample).
    """
    rows = []
    for (algo, method, step), group in curves.groupby(["algo", "method", "step"], sort=False):
        rates = group.sort_values("seed")["success"].to_numpy(dtype=float)
        mean, low, high = bootstrap_interval(rates[:, None], np.mean, seed, reps)
        rows.append({"algo": algo, "method": method, "step": int(step), "mean": mean, "ci_low": low, "ci_high": high,
                     "num_seeds": len(rates)})
    return _sort(pd.DataFrame(rows, columns=BAND_COLUMNS), ["algo", "method", "step"])


def per_task_success(final: pd.DataFrame) -> pd.DataFrame:
    """Final success rate per (algo, method) and task, mean over seeds (the heatmap's cells).

    Args:
        final: ``final_success`` (columns algo, method, seed, task, step, success).

    Returns:
        Columns ``algo, method, task, success, num_seeds``; algorithms and methods in their fixed
        orders, tasks in suite order (the order of ``final``).
    """
    table = (final.groupby(["algo", "method", "task"], sort=False)["success"].agg(["mean", "count"])
             .rename(columns={"mean": "success", "count": "num_seeds"}).reset_index())
    return _sort(table, ["algo", "method", "task"], task=list(dict.fromkeys(final["task"])))


def plot_mt10(bands: pd.DataFrame, iqm: pd.DataFrame, per_task: pd.DataFrame, title: str, out_png: str | Path,
              out_pdf: str | Path, suite_title: str = "Meta-World MT10") -> None:
    """Fig. 7: one row per algorithm of ``bands`` — success-rate curves, final-success IQM, per-task heatmap.

    Args:
        bands: :func:`success_bands`; iqm: ``success_iqm`` (:func:`~varshare.analysis.stats.iqm_with_ci`
            of the final success rates); per_task: :func:`per_task_success`.
        title: figure title; suite_title: starts each row's curve-panel title.
        out_png, out_pdf: output files.

    Left: success rate (mean over tasks) against env steps per task, a line per method (mean over
    seeds), band = 95% bootstrap CI over seeds (none with one seed). Middle: IQM of the final
    success rates over seeds × tasks, bar = 95% stratified-bootstrap CI (◆: one seed). Right: the
    final success rate per method and task, mean over seeds, annotated. Every success axis spans
    [0, 1]; methods keep their colours.
    """
    algos = ordered_algos(bands["algo"])
    num_methods = max(bands.loc[bands["algo"] == algo, "method"].nunique() for algo in algos)
    num_tasks = per_task["task"].nunique()
    row_height = max(3.8, 1.2 + 0.42 * num_methods)
    figure = new_figure(11.0 + 2.0 + 0.62 * num_tasks, row_height * len(algos) + 0.4)
    grid = figure.add_gridspec(len(algos), 3, width_ratios=[6.0, 4.0, 2.0 + 0.62 * num_tasks])
    for row, algo in enumerate(algos):
        name = algo_label(algo)
        _draw_success_curves(figure.add_subplot(grid[row, 0]), bands[bands["algo"] == algo],
                             f"{suite_title}, {name}: success rate")
        ax = figure.add_subplot(grid[row, 1])
        draw_iqm(ax, iqm[iqm["algo"] == algo], [algo], "IQM of final success rate\n(95% stratified bootstrap CI)")
        ax.set_xlim(*SUCCESS_LIMITS)
        ax.set_title(f"{name}: final success (IQM over seeds × tasks)")
        _draw_heatmap(figure.add_subplot(grid[row, 2]), per_task[per_task["algo"] == algo],
                      f"{name}: final success per task (mean over seeds)")
    figure.suptitle(title)
    save_figure(figure, out_png)
    save_figure(figure, out_pdf)


def _draw_success_curves(ax, bands: pd.DataFrame, title: str) -> None:
    """One algorithm's :func:`success_bands`: a line and band per method."""
    for method in ordered_methods(bands["method"]):
        rows = bands[bands["method"] == method].sort_values("step")
        color = method_color(method)
        ax.plot(rows["step"], rows["mean"], color=color, linewidth=1.8,
                label=f"{method} (n={int(rows['num_seeds'].max())})")
        ax.fill_between(rows["step"], rows["ci_low"], rows["ci_high"], color=color, alpha=0.2, linewidth=0)
    ax.set_ylim(*SUCCESS_LIMITS)
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel(STEP_LABEL)
    ax.set_ylabel("success rate (mean over tasks)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(title="method (mean, 95% bootstrap CI over seeds)", fontsize="small", title_fontsize="small")


def _draw_heatmap(ax, per_task: pd.DataFrame, title: str) -> None:
    """One algorithm's :func:`per_task_success` as a method × task heatmap in [0, 1]."""
    methods = ordered_methods(per_task["method"])
    cells = (per_task.pivot(index="method", columns="task", values="success")
             .reindex(index=methods, columns=list(dict.fromkeys(per_task["task"]))))
    seeds = per_task.groupby("method")["num_seeds"].min()
    cells.index = [f"{method} (n={int(seeds[method])})" for method in methods]
    sns.heatmap(cells, ax=ax, vmin=0.0, vmax=1.0, cmap="viridis", annot=True, fmt=".2f",
                annot_kws={"fontsize": "x-small"}, cbar_kws={"label": "final success rate"})
    ax.set_xticks(ax.get_xticks(), ax.get_xticklabels(), rotation=45, ha="right", rotation_mode="anchor")
    ax.tick_params(axis="y", rotation=0)  # seaborn turns the labels of few rows upright
    ax.set_xlabel("task")
    ax.set_ylabel("")
    ax.set_title(title)
