"""Figures of aggregated results, each written as PNG and PDF.

Figures are drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no
display, no global figure state) and saved atomically: to a temporary file in the target directory,
then ``os.replace``. Methods keep the colours of :data:`varshare.analysis.style.METHOD_COLORS` in
every figure. Every table drawn has an ``algo`` column: when a figure's rows hold several algorithms,
each line (bar, panel) is one (name, algorithm), labelled ``"name (ALGO)"`` (e.g. ``"varshare (SAC)"``)
and dashed per algorithm (:func:`~varshare.analysis.style.algo_dashes`: the first solid); with one
algorithm labels are the names alone. Learning curves take their y range from the evaluations after
step 0 (:func:`learning_range`), so a fresh policy's return does not set the scale (SCIENCE.md,
"Statistics and figures"). Fig. 6 (:func:`plot_algorithm_comparison`) can draw tuned-hyperparameter curves
beside the default ones, labelled ``"name (ALGO, tuned)"``.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from varshare.analysis.style import (REGIME_COLORS, algo_dashes, algo_label, method_color, ordered_algos,
                                     ordered_methods)
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


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _algos(tables: list[pd.DataFrame]) -> list[str]:
    """The algorithms of the rows a figure draws (:func:`ordered_algos` order)."""
    return ordered_algos(pd.concat([t["algo"] for t in tables]))


def _name(name: str, algo: str, algos: list[str]) -> str:
    """``name``, or ``"name (ALGO)"`` when the figure draws several ``algos``."""
    return f"{name} ({algo_label(algo)})" if len(algos) > 1 else name


def _keys(table: pd.DataFrame, column: str, names: list[str], algos: list[str]) -> list[tuple[str, str]]:
    """The ``(name, algo)`` pairs present in ``table`` (``name`` a value of ``column``): names in
    the order given, each name's algorithms in ``algos`` order."""
    present = set(zip(table[column], table["algo"]))
    return [(n, a) for n in names for a in algos if (n, a) in present]


def _rows_of(table: pd.DataFrame, method: str, algo: str) -> pd.DataFrame:
    """The rows of ``table`` of one (method, algo)."""
    return table[(table["method"] == method) & (table["algo"] == algo)]


def learning_range(curves: pd.DataFrame, keys: list[str], pad: float = 0.05) -> tuple[float, float] | None:
    """The y range of learning curves drawn as mean ± std over seeds, set by the learning, not the start.

    Args:
        curves: columns ``keys``, ``seed``, ``step`` (env steps per task) and ``return``.
        keys: the columns whose values make one line (e.g. ``["method", "algo"]``).
        pad: margin below and above, as a fraction of the range.

    Returns:
        ``(low, high)``: the lowest mean − std and the highest mean + std (sample std over seeds, 0
        with one seed) of any line at its evaluations after step 0, widened by ``pad``; None when no
        finite return comes after step 0 (the axis then fits everything). A step-0 point outside the
        range (a fresh policy's return, e.g. −1270 on LunarLander) runs off the axis.
    """
    stats = curves[curves["step"] > 0].groupby([*keys, "step"])["return"].agg(["mean", "std"])
    std = stats["std"].fillna(0.0)
    low, high = (stats["mean"] - std).min(), (stats["mean"] + std).max()
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    margin = pad * (high - low) if high > low else pad * max(abs(high), 1.0)
    return float(low - margin), float(high + margin)


#: how :func:`_draw_curves` draws the lines of a panel that also has tuned-hyperparameter curves: the
#: default lines thinner and lighter, the tuned ones at full strength with markers (colour and dash
#: stay the (name, algo)'s); a panel without tuned curves draws its lines at linewidth 1.8
DEFAULT_LINE = {"linewidth": 1.8}
FADED_LINE = {"linewidth": 1.2, "alpha": 0.45}
TUNED_LINE = {"linewidth": 2.2, "marker": "o", "markersize": 4}


def _tuned_name(name: str, algo: str, algos: list[str]) -> str:
    """How a tuned-hyperparameter line is named: ``"name (ALGO, tuned)"`` when the figure draws several
    ``algos``, else ``"name (tuned)"``."""
    return f"{name} ({algo_label(algo)}, tuned)" if len(algos) > 1 else f"{name} (tuned)"


def _lineplot(ax, curves: pd.DataFrame, hue: str, keys: list[tuple[str, str]], algos: list[str],
              colors: dict, name, line: dict) -> dict[tuple[str, str], str]:
    """Mean ± std over seeds of ``curves``' ``return`` against ``step`` on ``ax``, one line per key of
    ``keys`` ((value of ``hue``, algo), each with rows in ``curves`` and no other rows), coloured by
    ``colors`` (of the ``hue`` value), dashed per algo (:func:`~varshare.analysis.style.algo_dashes`
    of ``algos``), drawn with the matplotlib line properties ``line``; labelled
    ``name(hue value, algo, algos) + " (n=seeds)"``. Returns each key's label."""
    seeds = curves.groupby([hue, "algo"])["seed"].nunique()
    labels = {key: f"{name(*key, algos)} (n={int(seeds[key])})" for key in keys}
    dashes = algo_dashes(algos)
    data = curves.assign(label=[labels[key] for key in zip(curves[hue], curves["algo"])])
    order = [labels[key] for key in keys]
    sns.lineplot(data=data, x="step", y="return", hue="label", hue_order=order, style="label", style_order=order,
                 palette={labels[k]: colors[k[0]] for k in keys}, dashes={labels[k]: dashes[k[1]] for k in keys},
                 estimator="mean", errorbar="sd", err_kws={"alpha": 0.2, "linewidth": 0}, ax=ax, **line)
    return labels


def _draw_curves(ax, curves: pd.DataFrame, hue: str, title: str, algos: list[str],
                 tuned: pd.DataFrame | None = None) -> None:
    """Mean ± std over seeds of ``return`` against ``step``, one line per (value of ``hue``, algo);
    y range from :func:`learning_range`.

    ``tuned``: curves of runs with tuned hyperparameters (the columns of ``curves``), or None. Each of
    its (value of ``hue``, algo) that has a line in ``curves`` gets a second line, in that line's
    colour and dash, drawn as :data:`TUNED_LINE` and labelled ``"name (ALGO, tuned) (n=seeds)"``
    (:func:`_tuned_name`); its other rows are not drawn. When any is drawn, the default lines are
    drawn as :data:`FADED_LINE`, each listed in the legend before its tuned line, and the y range
    spans both; otherwise the panel is drawn as without ``tuned``.
    """
    names = ordered_methods(curves[hue]) if hue == "method" else list(dict.fromkeys(curves[hue]))
    colors = ({n: method_color(n) for n in names} if hue == "method"
              else dict(zip(names, sns.color_palette("colorblind", len(names)))))
    keys = _keys(curves, hue, names, algos)
    tuned_keys = [] if tuned is None else [key for key in _keys(tuned, hue, names, algos) if key in keys]
    labels = _lineplot(ax, curves, hue, keys, algos, colors, _name, FADED_LINE if tuned_keys else DEFAULT_LINE)
    order = [labels[key] for key in keys]
    if tuned_keys:
        rows = tuned[[key in tuned_keys for key in zip(tuned[hue], tuned["algo"])]]
        tuned_labels = _lineplot(ax, rows, hue, tuned_keys, algos, colors, _tuned_name, TUNED_LINE)
        order = [label for key in keys for label in (labels[key], tuned_labels.get(key)) if label]
        limits = learning_range(pd.concat([curves.assign(tuned=False), rows.assign(tuned=True)]),
                                [hue, "algo", "tuned"])
    else:
        limits = learning_range(curves, [hue, "algo"])
    if limits:
        ax.set_ylim(*limits)
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel(STEP_LABEL)
    ax.set_ylabel(RETURN_LABEL)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    handles = {label: handle for handle, label in zip(*ax.get_legend_handles_labels())}
    ax.legend([handles[label] for label in order], order, title=f"{hue} (mean ± std over seeds)", fontsize="small",
              title_fontsize="small")


def plot_learning_curves(curves: pd.DataFrame, title: str, out_png: str | Path, out_pdf: str | Path) -> None:
    """Task-averaged evaluation return against env steps per task, one line per method.

    Args:
        curves: output of :func:`varshare.analysis.aggregate.eval_curves` (columns algo, method,
            seed, step, return).
        title: figure title.
        out_png, out_pdf: output files (PNG at :data:`PNG_DPI` dpi).

    Each line is the mean over seeds at each evaluation step; the shaded band is ± one sample
    standard deviation over seeds (absent for a method with one seed). Legend labels give the
    number of seeds ``n``; a method run with several algorithms has a line per algorithm.
    """
    plot_curve_panels([(title, curves)], None, out_png, out_pdf)


def plot_curve_panels(panels: list[tuple[str, pd.DataFrame]], title: str | None, out_png: str | Path,
                      out_pdf: str | Path, hue: str = "method", algos: list[str] | None = None,
                      tuned: Sequence[pd.DataFrame | None] | None = None) -> None:
    """Side-by-side learning-curve panels (e.g. one per suite), each as :func:`plot_learning_curves`.

    Args:
        panels: ``(panel title, curves)``; curves have columns ``algo, seed, step, return`` and ``hue``.
        title: figure title above the panels (None: none).
        hue: the column whose values are the lines (``method``, or ``strategy`` for Fig. 3).
        algos: the algorithms of the rows, in dash order (the first solid); None: those present, in
            :func:`~varshare.analysis.style.ordered_algos` order.
        tuned: None, or one entry per panel: the curves (columns of the panel's) of runs with tuned
            hyperparameters, drawn beside the panel's lines as :func:`_draw_curves` describes, or None
            for a panel without them.

    Raises:
        ValueError: when ``tuned`` does not hold one entry per panel.
    """
    tuned = [None] * len(panels) if tuned is None else list(tuned)
    if len(tuned) != len(panels):
        raise ValueError(f"{len(tuned)} tuned entries for {len(panels)} panels: give one per panel (None: none)")
    algos = algos or _algos([curves for _, curves in panels])
    figure = new_figure(6.4 * len(panels), 4.2 + (0.3 if title else 0))
    for index, ((panel_title, curves), panel_tuned) in enumerate(zip(panels, tuned)):
        _draw_curves(figure.add_subplot(1, len(panels), index + 1), curves, hue, panel_title, algos, panel_tuned)
    if title:
        figure.suptitle(title)
    save_figure(figure, out_png)
    save_figure(figure, out_pdf)


def plot_algorithm_comparison(panels: list[tuple[str, pd.DataFrame]], algos: Sequence[str],
                              methods: Sequence[str], title: str, out_png: str | Path, out_pdf: str | Path,
                              tuned: Sequence[pd.DataFrame | None] | None = None) -> None:
    """Fig. 6: each method's learning curve under every algorithm of ``algos``, one panel per suite.

    Args:
        panels: ``(panel title, curves)``, curves as :func:`varshare.analysis.aggregate.eval_curves`
            (columns algo, method, seed, step, return: task-averaged evaluation return against env
            steps per task).
        algos: the algorithms compared (e.g. ``["ppo", "sac"]``); the first is drawn solid, the next
            dashed (:func:`~varshare.analysis.style.algo_dashes`).
        methods: the methods to draw; a panel draws those of them with curves of every algorithm.
        title: figure title; out_png, out_pdf: output files.
        tuned: None (no tuned curves), or one entry per panel: None, or the curves (columns as
            ``panels``') of runs trained with tuned hyperparameters (e.g. an HPO study's best), of any
            subset of the methods and algorithms; those of the methods and algorithms the panel draws
            are drawn too.

    Each line is the mean over seeds (band ± one std), one colour per method, labelled
    ``"method (ALGO) (n=seeds)"``; y range from :func:`learning_range`. A panel with tuned curves
    also draws each of them in its (method, algo)'s colour and dash at full strength (thicker, with
    markers), labelled ``"method (ALGO, tuned) (n=seeds)"``, its default lines thinner and lighter,
    and its y range spans both; a panel without them is drawn as when ``tuned`` is None.

    Raises:
        ValueError: naming the panel, when it has no curves of one of ``algos``, or no method of
            ``methods`` has curves of all of them; when ``tuned`` does not hold one entry per panel.
    """
    if tuned is not None and len(tuned) != len(panels):
        raise ValueError(f"{len(tuned)} tuned entries for {len(panels)} panels: give one per panel (None: none)")
    drawn, drawn_tuned = [], []
    for index, (panel_title, curves) in enumerate(panels):
        missing = [algo for algo in algos if not (curves["algo"] == algo).any()]
        if missing:
            raise ValueError(f"panel {panel_title!r}: no evaluation curves of algo {', '.join(missing)}; "
                             f"algos present: {', '.join(ordered_algos(curves['algo'])) or 'none'}")
        shared = [m for m in methods if all(not _rows_of(curves, m, algo).empty for algo in algos)]
        if not shared:
            raise ValueError(f"panel {panel_title!r}: none of the methods {list(methods)} has curves of every "
                             f"algo of {list(algos)}")
        drawn.append((panel_title, curves[curves["method"].isin(shared) & curves["algo"].isin(algos)]))
        panel_tuned = None if tuned is None else tuned[index]
        if panel_tuned is not None:
            panel_tuned = panel_tuned[panel_tuned["method"].isin(shared) & panel_tuned["algo"].isin(algos)]
        drawn_tuned.append(panel_tuned if panel_tuned is not None and not panel_tuned.empty else None)
    plot_curve_panels(drawn, title, out_png, out_pdf, algos=list(algos), tuned=drawn_tuned)


def plot_sharing_map(panels: list[tuple[str, pd.DataFrame]], title: str, out_png: str | Path,
                     out_pdf: str | Path) -> None:
    """Heatmaps of mean |μ| per (layer, task): where each task's residual left the shared θ.

    Args:
        panels: ``(panel title, table)`` with the columns of
            :func:`varshare.analysis.portfolio.sharing_map` for one method; a table holding several
            algorithms is drawn as one panel per algorithm, titled ``"panel title (algo)"``.
    """
    algos = _algos([table for _, table in panels])
    panels = [(_name(panel_title, algo, algos), table[table["algo"] == algo])
              for panel_title, table in panels for algo in algos if (table["algo"] == algo).any()]
    figure = new_figure(1.2 + 0.55 * max(t["task"].nunique() for _, t in panels) * len(panels), 4.6)
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
        iqm_df: output of :func:`varshare.analysis.stats.iqm_with_ci` (columns algo, method, iqm,
            ci_low, ci_high, num_runs).
        title: figure title.
        out_png, out_pdf: output files.

    Drawn by :func:`draw_iqm`. A method run with several algorithms has a bar per algorithm.
    """
    algos = _algos([iqm_df])
    figure = new_figure(6.4, 0.9 + 0.45 * len(_keys(iqm_df, "method", ordered_methods(iqm_df["method"]), algos)))
    ax = figure.add_subplot()
    draw_iqm(ax, iqm_df, algos, "IQM of final evaluation return (95% stratified bootstrap CI)")
    ax.set_title(title)
    save_figure(figure, out_png)
    save_figure(figure, out_pdf)


def draw_iqm(ax, iqm_df: pd.DataFrame, algos: list[str], label: str) -> None:
    """Each (method, algo)'s IQM with its 95% CI on ``ax``, one row per pair, first on top.

    A bar spans ``[ci_low, ci_high]`` and a black tick marks the IQM; a pair without an interval
    (NaN, e.g. one seed) is drawn as a diamond at its IQM. Row labels ``"name (n=runs)"``
    (:func:`_name`: with the algorithm when ``algos`` holds several); ``label`` is the x label.
    """
    keys = _keys(iqm_df, "method", ordered_methods(iqm_df["method"]), algos)
    by_key = iqm_df.set_index(["method", "algo"])
    labels = [f"{_name(*key, algos)} (n={int(by_key.loc[key, 'num_runs'])})" for key in keys]
    for y, key in enumerate(keys):
        row = by_key.loc[key]
        color = method_color(key[0])
        if math.isnan(row["ci_low"]) or math.isnan(row["ci_high"]):
            ax.plot([row["iqm"]], [y], marker="D", color=color, markersize=7)
        else:
            ax.barh(y, row["ci_high"] - row["ci_low"], left=row["ci_low"], height=0.6, color=color, alpha=0.75)
            ax.vlines(row["iqm"], y - 0.3, y + 0.3, color="black", linewidth=2)
    ax.use_sticky_edges = False  # bars start at ci_low: keep a margin around them
    ax.margins(x=0.05)
    ax.set_yticks(range(len(keys)), labels)
    ax.set_ylim(len(keys) - 0.5, -0.5)  # first method on top
    if by_key.loc[keys, ["ci_low", "ci_high"]].isna().to_numpy().any():
        label += "\n◆: IQM without CI (one seed: no runs to resample)"
    ax.set_xlabel(label)
    ax.grid(axis="x", alpha=0.3)


def plot_pruning(panels: list[tuple[str, pd.DataFrame]], title: str, out_png: str | Path,
                 out_pdf: str | Path) -> None:
    """Task-averaged return after pruning against the fraction of residual parameters kept.

    Args:
        panels: ``(panel title, sweep)`` with the rows of ``varshare prune`` (columns run, algo,
            method, seed, eps, task, metric, value) of one or more runs; the ``task == "all"`` rows
            ``kept_fraction`` and ``eval_return_mean`` are drawn, one line per (algo, seed), each
            point labelled with its ε.
    """
    algos = _algos([sweep for _, sweep in panels])
    dashes = algo_dashes(algos)
    figure = new_figure(6.0 * len(panels), 4.2)
    for index, (panel_title, sweep) in enumerate(panels):
        ax = figure.add_subplot(1, len(panels), index + 1)
        rows = sweep[sweep["task"] == "all"].pivot_table(index=["algo", "seed", "eps"], columns="metric",
                                                         values="value")
        for algo, seed in sorted(rows.index.droplevel("eps").unique(), key=lambda k: (algos.index(k[0]), k[1])):
            points = rows.loc[(algo, seed)].sort_index()
            ax.plot(points["kept_fraction"], points["eval_return_mean"], marker="o", dashes=dashes[algo],
                    label=_name(f"seed {seed}", algo, algos))
            for eps, point in points.iterrows():
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


#: how the leave-one-out figure names a score (``loo.json``'s ``metric``), formats its values, and its
#: y range (None: the data's; success rates span [0, 1])
LOO_SCORES: dict[str, tuple[str, str, tuple[float, float] | None]] = {
    "return": ("evaluation return", ".0f", None), "success": ("success rate", ".2f", (-0.03, 1.03))}


def plot_loo(curves: pd.DataFrame, summary: pd.DataFrame, skipped: pd.DataFrame, threshold: float, title: str,
             out_png: str | Path, out_pdf: str | Path, seed: int = 0, metric: str = "return") -> None:
    """Leave-one-out figure of one suite: one row per method (per (method, algo) when the tables
    hold several algorithms, titled ``"method (algo)"``), learning curves (left) and
    steps-to-threshold (right) per adaptation regime.

    Args:
        curves, summary, skipped: the ``loo_curves``, ``loo_summary`` and ``loo_skipped`` tables of
            :mod:`varshare.analysis.loo`.
        threshold: the score threshold (drawn dashed on the curves).
        seed: seed of the curves' bootstrap bands.
        metric: the score of the tables (a key of :data:`LOO_SCORES`: ``return`` or ``success``).

    Left: the held-out task's score (evaluation return, or success rate) against env steps on it;
    line = mean over the runs (seeds × held-out tasks), band = 95% bootstrap CI of that mean
    (seaborn, ``seed``); the legend gives each regime's run count and mean zero-shot score (step 0). Right: mean steps to reach the
    threshold, bar = 95% stratified-bootstrap CI, black tick = mean, ◆ = no CI (one seed); censored
    runs (never reached it) count as the budget (dotted line), so the mean is then a lower bound.
    Skipped regimes are listed with their reason.
    """
    score, fmt, limits = LOO_SCORES[metric]
    runs = pd.concat([curves[["method", "algo"]], skipped[["method", "algo"]]])
    algos = _algos([runs])
    keys = _keys(runs, "method", ordered_methods(runs["method"]), algos)
    figure = new_figure(12.0, 0.6 + 3.4 * len(keys))
    for row, (method, algo) in enumerate(keys):
        name = _name(method, algo, algos)
        stats = _rows_of(summary, method, algo).set_index("regime")
        regimes = [r for r in REGIMES if r in stats.index]
        label = {r: f"{r} (n={int(stats.loc[r, 'num_runs'])}, zero-shot {stats.loc[r, 'zero_shot_score']:{fmt}})"
                 for r in regimes}
        skips = dict(_rows_of(skipped, method, algo).drop_duplicates("regime")[["regime", "reason"]]
                     .itertuples(index=False))
        rows = [r for r in REGIMES if r in stats.index or r in skips]

        ax = figure.add_subplot(len(keys), 2, 2 * row + 1)
        data = _rows_of(curves, method, algo)
        if not data.empty:
            sns.lineplot(data=data.assign(label=data["regime"].map(label)), x="step", y="score", hue="label",
                         hue_order=[label[r] for r in regimes], palette={label[r]: REGIME_COLORS[r] for r in regimes},
                         estimator="mean", errorbar=("ci", 95), n_boot=1000, seed=seed,
                         err_kws={"alpha": 0.2, "linewidth": 0}, linewidth=1.8, ax=ax)
            ax.legend(title="regime (mean, 95% CI over runs)", fontsize="small", title_fontsize="small")
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1)
        if limits:
            ax.set_ylim(*limits)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.set_xlabel("environment steps on the held-out task")
        ax.set_ylabel(f"{score} (held-out task)")
        ax.set_title(f"{name}: learning the held-out task (threshold {threshold:g} dashed)")
        ax.grid(alpha=0.3)

        ax = figure.add_subplot(len(keys), 2, 2 * row + 2)
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
        ax.set_xlabel(f"env steps to {score} ≥ {threshold:g} (mean, 95% stratified bootstrap CI)\n"
                      "censored runs count as the budget (dotted); ◆: no CI (one seed)")
        ax.set_title(f"{name}: steps to threshold")
        ax.grid(axis="x", alpha=0.3)
    figure.suptitle(title)
    save_figure(figure, out_png)
    save_figure(figure, out_pdf)
