"""Figures of aggregated results, each written as PNG and PDF.

Figures are drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no
display, no global figure state) and saved atomically: to a temporary file in the target directory,
then ``os.replace``. Methods keep the colours of :data:`varshare.analysis.style.METHOD_COLORS` in
every figure.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from varshare.analysis.style import REGIME_COLORS, method_color, ordered_methods
from varshare.config import REGIMES
from varshare.io import atomic_output

PNG_DPI = 200
STEP_LABEL = "environment steps per task"
RETURN_LABEL = "evaluation return (mean over tasks)"


def save_figure(figure: Figure, path: str | Path, dpi: int = PNG_DPI) -> None:
    """Write ``figure`` to ``path`` (format from the suffix, e.g. ``.png``/``.pdf``) atomically.

    Parent directories are created; PDFs carry no creation date, so identical figures give
    identical files.
    """
    fmt = Path(path).suffix.lstrip(".").lower()
    metadata = {"CreationDate": None} if fmt == "pdf" else None
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _labels(methods: list[str], counts: pd.Series) -> dict[str, str]:
    """``method`` → ``"method (n=seeds)"`` legend label."""
    return {m: f"{m} (n={int(counts[m])})" for m in methods}


def _draw_curves(ax, curves: pd.DataFrame, hue: str, title: str) -> None:
    """Mean ± std over seeds of ``return`` against ``step``, one line per value of ``hue``."""
    names = ordered_methods(curves[hue]) if hue == "method" else list(dict.fromkeys(curves[hue]))
    labels = _labels(names, curves.groupby(hue)["seed"].nunique())
    data = curves.assign(label=curves[hue].map(labels))
    palette = ({labels[m]: method_color(m) for m in names} if hue == "method"
               else dict(zip([labels[n] for n in names], sns.color_palette("colorblind", len(names)))))
    sns.lineplot(data=data, x="step", y="return", hue="label", hue_order=[labels[n] for n in names],
                 palette=palette, estimator="mean", errorbar="sd", err_kws={"alpha": 0.2, "linewidth": 0},
                 linewidth=1.8, ax=ax)
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel(STEP_LABEL)
    ax.set_ylabel(RETURN_LABEL)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(title=f"{hue} (mean ± std over seeds)", fontsize="small", title_fontsize="small")


def plot_learning_curves(curves: pd.DataFrame, title: str, out_png: str | Path, out_pdf: str | Path) -> None:
    """Task-averaged evaluation return against env steps per task, one line per method.

    Args:
        curves: output of :func:`varshare.analysis.aggregate.eval_curves` (columns method, seed,
            step, return).
        title: figure title.
        out_png, out_pdf: output files (PNG at :data:`PNG_DPI` dpi).

    Each line is the mean over seeds at each evaluation step; the shaded band is ± one sample
    standard deviation over seeds (absent for a method with one seed). Legend labels give the
    number of seeds ``n``.
    """
    plot_curve_panels([(title, curves)], None, out_png, out_pdf)


def plot_curve_panels(panels: list[tuple[str, pd.DataFrame]], title: str | None, out_png: str | Path,
                      out_pdf: str | Path, hue: str = "method") -> None:
    """Side-by-side learning-curve panels (e.g. one per suite), each as :func:`plot_learning_curves`.

    Args:
        panels: ``(panel title, curves)``; curves have columns ``seed, step, return`` and ``hue``.
        title: figure title above the panels (None: none).
        hue: the column whose values are the lines (``method``, or ``strategy`` for Fig. 3).
    """
    figure = _new_figure(6.4 * len(panels), 4.2 + (0.3 if title else 0))
    for index, (panel_title, curves) in enumerate(panels):
        _draw_curves(figure.add_subplot(1, len(panels), index + 1), curves, hue, panel_title)
    if title:
        figure.suptitle(title)
    save_figure(figure, out_png)
    save_figure(figure, out_pdf)


def plot_sharing_map(panels: list[tuple[str, pd.DataFrame]], title: str, out_png: str | Path,
                     out_pdf: str | Path) -> None:
    """Heatmaps of mean |μ| per (layer, task): where each task's residual left the shared θ.

    Args:
        panels: ``(panel title, table)`` with the columns of
            :func:`varshare.analysis.portfolio.sharing_map` for one method.
    """
    figure = _new_figure(1.2 + 0.55 * max(t["task"].nunique() for _, t in panels) * len(panels), 4.6)
    for index, (panel_title, table) in enumerate(panels):
        ax = figure.add_subplot(1, len(panels), index + 1)
        grid = table.pivot(index="layer", columns="task", values="mu_abs_mean")
        grid = grid.reindex(columns=list(dict.fromkeys(table["task"])))
        sns.heatmap(grid, ax=ax, cmap="viridis", cbar_kws={"label": "mean |μ| (residual)"})
        ax.set_title(panel_title)
        ax.set_xlabel("task")
        ax.set_ylabel("layer")
    figure.suptitle(title)
    save_figure(figure, out_png)
    save_figure(figure, out_pdf)


def plot_iqm(iqm_df: pd.DataFrame, title: str, out_png: str | Path, out_pdf: str | Path) -> None:
    """Horizontal interval plot: each method's IQM of final return with its 95% CI.

    Args:
        iqm_df: output of :func:`varshare.analysis.stats.iqm_with_ci` (columns method, iqm,
            ci_low, ci_high, num_runs).
        title: figure title.
        out_png, out_pdf: output files.

    A bar spans ``[ci_low, ci_high]`` and a black tick marks the IQM; a method without an interval
    (NaN, e.g. one seed) is drawn as a diamond at its IQM.
    """
    methods = ordered_methods(iqm_df["method"])
    by_method = iqm_df.set_index("method")
    labels = _labels(methods, by_method["num_runs"])
    figure = _new_figure(6.4, 0.9 + 0.45 * len(methods))
    ax = figure.add_subplot()
    for y, method in enumerate(methods):
        row = by_method.loc[method]
        color = method_color(method)
        if math.isnan(row["ci_low"]) or math.isnan(row["ci_high"]):
            ax.plot([row["iqm"]], [y], marker="D", color=color, markersize=7)
        else:
            ax.barh(y, row["ci_high"] - row["ci_low"], left=row["ci_low"], height=0.6, color=color, alpha=0.75)
            ax.vlines(row["iqm"], y - 0.3, y + 0.3, color="black", linewidth=2)
    ax.use_sticky_edges = False  # bars start at ci_low: keep a margin around them
    ax.margins(x=0.05)
    ax.set_yticks(range(len(methods)), [labels[m] for m in methods])
    ax.set_ylim(len(methods) - 0.5, -0.5)  # first method on top
    label = "IQM of final evaluation return (95% stratified bootstrap CI)"
    if by_method[["ci_low", "ci_high"]].isna().to_numpy().any():
        label += "\n◆: IQM without CI (one seed: no runs to resample)"
    ax.set_xlabel(label)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    save_figure(figure, out_png)
    save_figure(figure, out_pdf)


def plot_pruning(panels: list[tuple[str, pd.DataFrame]], title: str, out_png: str | Path,
                 out_pdf: str | Path) -> None:
    """Task-averaged return after pruning against the fraction of residual parameters kept.

    Args:
        panels: ``(panel title, sweep)`` with the rows of ``varshare prune`` (columns run, method,
            seed, eps, task, metric, value) of one or more runs; the ``task == "all"`` rows
            ``kept_fraction`` and ``eval_return_mean`` are drawn, one line per seed, each point
            labelled with its ε.
    """
    figure = _new_figure(6.0 * len(panels), 4.2)
    for index, (panel_title, sweep) in enumerate(panels):
        ax = figure.add_subplot(1, len(panels), index + 1)
        rows = sweep[sweep["task"] == "all"].pivot_table(index=["seed", "eps"], columns="metric", values="value")
        for seed, points in rows.groupby(level="seed"):
            points = points.sort_index(level="eps")
            ax.plot(points["kept_fraction"], points["eval_return_mean"], marker="o", label=f"seed {seed}")
            for (_, eps), point in points.iterrows():
                ax.annotate(f"ε={eps:g}", (point["kept_fraction"], point["eval_return_mean"]),
                            fontsize="x-small", xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("fraction of residual parameters kept (|μ| ≥ ε)")
        ax.set_ylabel(RETURN_LABEL)
        ax.set_title(panel_title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(title)
    save_figure(figure, out_png)
    save_figure(figure, out_pdf)


def plot_loo(curves: pd.DataFrame, summary: pd.DataFrame, skipped: pd.DataFrame, threshold: float, title: str,
             out_png: str | Path, out_pdf: str | Path, seed: int = 0) -> None:
    """Leave-one-out figure of one suite: one row per method, learning curves (left) and
    steps-to-threshold (right) per adaptation regime.

    Args:
        curves, summary, skipped: the ``loo_curves``, ``loo_summary`` and ``loo_skipped`` tables of
            :mod:`varshare.analysis.loo`.
        threshold: the return threshold (drawn dashed on the curves).
        seed: seed of the curves' bootstrap bands.

    Left: the held-out task's evaluation return against env steps on it; line = mean over the runs
    (seeds × held-out tasks), band = 95% bootstrap CI of that mean (seaborn, ``seed``); the legend
    gives each regime's run count and mean zero-shot return (step 0). Right: mean steps to reach the
    threshold, bar = 95% stratified-bootstrap CI, black tick = mean, ◆ = no CI (one seed); censored
    runs (never reached it) count as the budget (dotted line), so the mean is then a lower bound.
    Skipped regimes are listed with their reason.
    """
    methods = ordered_methods(pd.concat([curves["method"], skipped["method"]]))
    figure = _new_figure(12.0, 0.6 + 3.4 * len(methods))
    for row, method in enumerate(methods):
        stats = summary[summary["method"] == method].set_index("regime")
        regimes = [r for r in REGIMES if r in stats.index]
        label = {r: f"{r} (n={int(stats.loc[r, 'num_runs'])}, zero-shot {stats.loc[r, 'zero_shot_return']:.0f})"
                 for r in regimes}
        skips = dict(skipped[skipped["method"] == method].drop_duplicates("regime")[["regime", "reason"]]
                     .itertuples(index=False))
        rows = [r for r in REGIMES if r in stats.index or r in skips]

        ax = figure.add_subplot(len(methods), 2, 2 * row + 1)
        data = curves[curves["method"] == method]
        if not data.empty:
            sns.lineplot(data=data.assign(label=data["regime"].map(label)), x="step", y="return", hue="label",
                         hue_order=[label[r] for r in regimes], palette={label[r]: REGIME_COLORS[r] for r in regimes},
                         estimator="mean", errorbar=("ci", 95), n_boot=1000, seed=seed,
                         err_kws={"alpha": 0.2, "linewidth": 0}, linewidth=1.8, ax=ax)
            ax.legend(title="regime (mean, 95% CI over runs)", fontsize="small", title_fontsize="small")
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.set_xlabel("environment steps on the held-out task")
        ax.set_ylabel("evaluation return (held-out task)")
        ax.set_title(f"{method}: learning the held-out task (threshold {threshold:g} dashed)")
        ax.grid(alpha=0.3)

        ax = figure.add_subplot(len(methods), 2, 2 * row + 2)
        budget = stats["budget"].max() if regimes else 1
        for y, regime in enumerate(rows):
            if regime in skips:
                ax.text(0.02 * budget, y, textwrap.fill(skips[regime], 60), va="center", fontsize="x-small",
                        color="dimgray")
                continue
            r = stats.loc[regime]
            color, mean = REGIME_COLORS[regime], r["steps_to_threshold"]
            if math.isnan(r["steps_to_threshold_ci_low"]) or math.isnan(r["steps_to_threshold_ci_high"]):
                ax.plot([mean], [y], marker="D", color=color, markersize=7)
                right = mean
            else:
                low, right = r["steps_to_threshold_ci_low"], r["steps_to_threshold_ci_high"]
                ax.barh(y, right - low, left=low, height=0.6, color=color, alpha=0.75)
                ax.vlines(mean, y - 0.3, y + 0.3, color="black", linewidth=2)
            ax.annotate(f"{mean:,.0f}", (right, y), xytext=(6, 0), textcoords="offset points", va="center",
                        fontsize="small")
        if regimes:
            ax.axvline(budget, color="black", linestyle=":", linewidth=1)
        ax.set_xlim(-0.03 * budget, 1.05 * budget)  # a mean of 0 (zero-shot success) stays visible
        ax.set_yticks(range(len(rows)), [f"{r}\n(skipped)" if r in skips else
                                         f"{r}\n({int(stats.loc[r, 'num_censored'])}/{int(stats.loc[r, 'num_runs'])} censored)"
                                         for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.set_xlabel(f"env steps to return ≥ {threshold:g} (mean, 95% stratified bootstrap CI)\n"
                      "censored runs count as the budget (dotted); ◆: no CI (one seed)")
        ax.set_title(f"{method}: steps to threshold")
        ax.grid(axis="x", alpha=0.3)
    figure.suptitle(title)
    save_figure(figure, out_png)
    save_figure(figure, out_pdf)
