"""rliable's two standard figures (Agarwal et al., 2021) of a multi-task study: performance profiles
and probability-of-improvement plots, each written as PNG and PDF.

Inputs are task-normalised final scores: a score matrix ``[num_runs, num_tasks]`` per method (runs =
seeds; 0 = a uniformly random policy, 1 = solved). A **performance profile** (score distribution) is,
for each threshold τ, the fraction of the matrix's entries (runs × tasks) with score > τ; its band is
the 95% percentile interval of the profile over stratified-bootstrap copies of the matrix (runs
resampled with replacement within each task: :func:`varshare.analysis.stats.stratified_resample`),
drawn from a seeded ``numpy.random.Generator`` so the same inputs and seed give the same figure.
rliable's own ``create_performance_profile`` is not used for the band: its bootstrap (through
``arch``) costs seconds per method and ignores seeds. The **probability of improvement** P(X > Y)
and its interval come from the caller (e.g. :func:`varshare.analysis.stats.comparison_interval` of
:func:`varshare.analysis.stats.probability_of_improvement`).

The drawing is rliable's (``rliable.plot_utils.plot_performance_profiles`` and
``plot_probability_of_improvement``, on our axes), so the figures look like the ones researchers
know; methods keep the colours of :func:`varshare.analysis.style.method_color`, the figures are built
with :func:`varshare.analysis.figures.new_figure` and written with
:func:`varshare.analysis.figures.save_figure` (atomic, deterministic PDF metadata).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rliable import plot_utils

from varshare.analysis.figures import new_figure, save_figure
from varshare.analysis.stats import CONFIDENCE, stratified_resample
from varshare.analysis.style import method_color, ordered_methods

#: points of the default τ grid (:func:`default_taus`)
NUM_TAUS = 101
PROFILE_YLABEL = "fraction of runs × tasks with score > τ"
IMPROVEMENT_XLABEL = "P(X > Y) (95% stratified bootstrap CI)"
#: joins the two method names of a pair in the keys rliable's plot splits (never in a method name)
_PAIR_SEPARATOR = "\x1f"

Panels = Sequence[tuple[str, dict[str, np.ndarray]]]


def score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """The score distribution (performance profile) of score matrices at each threshold.

    Args:
        scores: normalised scores ``[..., num_runs, num_tasks]`` (leading axes, e.g. bootstrap
            replications, are kept).
        taus: thresholds ``[T]``, in score units.

    Returns:
        ``[..., T]``: for each matrix and each τ, the fraction of its ``num_runs × num_tasks``
        entries with score strictly greater than τ (in [0, 1]; non-increasing in τ for sorted
        ``taus``). NaN scores count as not above any τ.
    """
    scores = np.asarray(scores, dtype=float)
    taus = np.asarray(taus, dtype=float).reshape(-1)
    if scores.ndim < 2:
        raise ValueError(f"scores must be [..., num_runs, num_tasks], got shape {scores.shape}")
    flat = scores.reshape(*scores.shape[:-2], -1)
    if flat.shape[-1] == 0:
        raise ValueError(f"scores of shape {scores.shape} hold no entries")
    # one τ at a time: memory [..., runs × tasks], not [..., runs × tasks, T]
    out = np.empty((*flat.shape[:-1], taus.size))
    for index, tau in enumerate(taus):
        out[..., index] = (flat > tau).mean(axis=-1)
    return out


def profile_with_ci(scores: np.ndarray, taus: np.ndarray, seed: int,
                    reps: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A performance profile with its 95% stratified-bootstrap percentile band.

    Args:
        scores: normalised scores ``[num_runs, num_tasks]``.
        taus: thresholds ``[T]``.
        seed: seeds the ``numpy.random.Generator`` of the resampling (same inputs and seed ⇒ same
            band).
        reps: bootstrap replications.

    Returns:
        ``(profile, low, high)``, each ``[T]``: :func:`score_distribution` of ``scores``, and the
        2.5th and 97.5th percentiles (:data:`~varshare.analysis.stats.CONFIDENCE`) of the profiles
        of ``reps`` copies of ``scores`` whose runs are resampled with replacement within each task.
        Like the profile, the band is non-increasing in τ (for sorted ``taus``). With a single run
        there is nothing to resample, so ``low`` and ``high`` are NaN (a zero-width band would
        claim a certainty the data do not give).
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty [num_runs, num_tasks] matrix, got shape {scores.shape}")
    taus = np.asarray(taus, dtype=float).reshape(-1)
    profile = score_distribution(scores, taus)
    if scores.shape[0] < 2:
        nan = np.full_like(profile, np.nan)
        return profile, nan, nan.copy()
    rng = np.random.default_rng(seed)
    replicates = score_distribution(stratified_resample(scores, reps, rng), taus)  # [reps, T]
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail], axis=0)
    return profile, low, high


def _check_profile_panels(panels: Panels) -> None:
    """Raise ValueError (naming the panel) on no panels, an empty panel, a matrix that is not a
    non-empty finite ``[runs, tasks]`` array, or matrices of different task counts in a panel."""
    if not panels:
        raise ValueError("no panels to draw: give at least one (panel title, {method: score matrix})")
    for panel_title, matrices in panels:
        if not matrices:
            raise ValueError(f"panel {panel_title!r} is empty: no methods' score matrices")
        shapes = {}
        for method, matrix in matrices.items():
            matrix = np.asarray(matrix, dtype=float)
            if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
                raise ValueError(f"panel {panel_title!r}, method {method!r}: score matrix must be a non-empty "
                                 f"[num_runs, num_tasks] array, got shape {matrix.shape}")
            if not np.isfinite(matrix).all():
                raise ValueError(f"panel {panel_title!r}, method {method!r}: score matrix holds NaN or inf")
            shapes[method] = matrix.shape
        if len({shape[1] for shape in shapes.values()}) > 1:
            raise ValueError(f"panel {panel_title!r}: score matrices of different task counts "
                             f"(method: [runs, tasks]) {shapes}")


def default_taus(panels: Panels) -> np.ndarray:
    """The shared τ grid of :func:`plot_performance_profiles`: :data:`NUM_TAUS` evenly spaced
    thresholds from ``min(0, lowest score)`` to ``max(1, highest score)`` over every matrix of every
    panel (so [0, 1] when all scores lie in it), in score units."""
    _check_profile_panels(panels)
    values = np.concatenate([np.asarray(m, dtype=float).reshape(-1) for _, matrices in panels
                             for m in matrices.values()])
    return np.linspace(min(0.0, float(values.min())), max(1.0, float(values.max())), NUM_TAUS)


def plot_performance_profiles(panels: list[tuple[str, dict[str, np.ndarray]]], title: str | None,
                              out_png: str | Path, out_pdf: str | Path, seed: int, reps: int = 2000,
                              taus: np.ndarray | None = None, xlabel: str = "normalised score τ") -> None:
    """Performance profiles (score distributions), one axis per panel, drawn by rliable.

    Args:
        panels: ``(panel title, {method: score matrix [num_runs, num_tasks]})``, e.g. one panel per
            algorithm; the matrices of a panel cover the same tasks.
        title: figure title above the panels (None: none).
        out_png, out_pdf: output files.
        seed, reps: the bootstrap of each band (:func:`profile_with_ci`; every method's band is
            drawn from ``seed`` on its own, so it does not depend on which others are drawn).
        taus: the shared τ grid ``[T]``; None: :func:`default_taus`.
        xlabel: the x label (τ's units).

    Each axis: x = τ, y = the fraction of (run, task) entries with score > τ, in [0, 1]; one line
    per method (:func:`~varshare.analysis.style.ordered_methods` order, coloured by
    :func:`~varshare.analysis.style.method_color`) with its 95% band shaded, and a legend naming
    each method with its run count ``n``; a method with one run has no band (legend: "no CI").

    Raises:
        ValueError: no panels, an empty panel, a matrix that is not a non-empty finite 2-D array,
            or a panel whose matrices have different task counts.
    """
    _check_profile_panels(panels)
    taus = default_taus(panels) if taus is None else np.asarray(taus, dtype=float).reshape(-1)
    if taus.size == 0:
        raise ValueError("taus is empty: give at least one threshold")
    figure = new_figure(5.2 * len(panels), 4.2 + (0.3 if title else 0))
    for index, (panel_title, matrices) in enumerate(panels):
        ax = figure.add_subplot(1, len(panels), index + 1)
        profiles, bands, colors = {}, {}, {}
        for method in ordered_methods(matrices):
            matrix = np.asarray(matrices[method], dtype=float)
            profile, low, high = profile_with_ci(matrix, taus, seed, reps)
            label = f"{method} (n={matrix.shape[0]}{', no CI' if np.isnan(low).any() else ''})"
            profiles[label], colors[label] = profile, method_color(method)
            if not np.isnan(low).any():
                bands[label] = (low, high)
        plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=bands, ax=ax, colors=colors,
                                             alpha=0.2, xlabel=xlabel, ylabel=PROFILE_YLABEL, labelsize="large",
                                             ticklabelsize="medium")
        ax.set_xlim(taus[0], taus[-1])
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(panel_title)
        ax.legend(title=f"method (runs; {CONFIDENCE:.0%} bootstrap band)", fontsize="small", title_fontsize="small")
    if title:
        figure.suptitle(title)
    save_figure(figure, out_png)
    save_figure(figure, out_pdf)


def plot_improvement(panels: list[tuple[str, list[tuple[str, str, float, float, float]]]], title: str | None,
                     out_png: str | Path, out_pdf: str | Path) -> None:
    """Probability-of-improvement plots, one axis per panel, drawn by rliable.

    Args:
        panels: ``(panel title, entries)``, each entry ``(method_x, method_y, p, ci_low, ci_high)``:
            the probability P(X > Y) that a run of X scores higher than a run of Y on a task (ties
            half; in [0, 1]) and its interval (NaN, NaN when either side has one seed).
        title: figure title above the panels (None: none).
        out_png, out_pdf: output files.

    Each axis: one row per entry, in the order given, first on top (rows equally tall in every
    panel); X named on the left, Y on the right; x = P(X > Y) on [0, 1]; a bar (X's colour) spans
    the interval and a black tick marks p; a dashed line at 0.5 (no difference). An entry without
    an interval (NaN) is drawn as a diamond at p, and the x label says so.

    Raises:
        ValueError: no panels, an empty panel, an entry that does not hold five values, a pair
            drawn twice in a panel, or a probability outside [0, 1].
    """
    if not panels:
        raise ValueError("no panels to draw: give at least one (panel title, [(x, y, p, ci_low, ci_high), ...])")
    for panel_title, entries in panels:
        if not entries:
            raise ValueError(f"panel {panel_title!r} is empty: no (method_x, method_y, p, ci_low, ci_high) entries")
        seen = set()
        for entry in entries:
            if len(entry) != 5:
                raise ValueError(f"panel {panel_title!r}: entry {entry!r} is not (method_x, method_y, p, ci_low, "
                                 "ci_high)")
            x, y, p = entry[0], entry[1], float(entry[2])
            if (x, y) in seen:
                raise ValueError(f"panel {panel_title!r}: pair ({x!r}, {y!r}) given twice")
            seen.add((x, y))
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"panel {panel_title!r}: P({x} > {y}) = {p} is not a probability in [0, 1]")
    rows = max(len(entries) for _, entries in panels)
    figure = new_figure(5.6 * len(panels), 1.4 + 0.5 * rows + (0.3 if title else 0))
    for index, (panel_title, entries) in enumerate(panels):
        ax = figure.add_subplot(1, len(panels), index + 1)
        estimates, intervals, colors, missing = {}, {}, [], []
        for row, (x, y, p, low, high) in enumerate(entries):
            key = f"{x}{_PAIR_SEPARATOR}{y}"
            p, low, high = float(p), float(low), float(high)
            if math.isnan(low) or math.isnan(high):
                missing.append((row, p, method_color(x)))
                low = high = p  # zero-width bar: rliable draws the tick only
            estimates[key], intervals[key] = p, (low, high)
            colors.append(method_color(x))
        plot_utils.plot_probability_of_improvement(
            estimates, intervals, pair_separator=_PAIR_SEPARATOR, ax=ax, colors=colors, xlabel=IMPROVEMENT_XLABEL,
            left_ylabel="X", right_ylabel="Y", xticks=[0.0, 0.25, 0.5, 0.75, 1.0], labelsize="large",
            ticklabelsize="medium", ylabel_x_coordinate=0.08)
        for row, p, color in missing:
            ax.plot([p], [row], marker="D", color=color, markersize=7, zorder=3)
        ax.axvline(0.5, color="black", linestyle="--", linewidth=1, alpha=0.6)
        ax.set_xlim(0.0, 1.0)
        for axis in [a for a in figure.axes if a is ax or ax.get_shared_x_axes().joined(a, ax)]:
            axis.set_ylim(rows - 0.5, -0.5)  # first entry on top, on both sides; rows as tall in every panel
        if missing:
            ax.set_xlabel(IMPROVEMENT_XLABEL + "\n◆: no CI (one seed: no runs to resample)", fontsize="large")
        ax.set_title(panel_title)
    if title:
        figure.suptitle(title)
    save_figure(figure, out_png)
    save_figure(figure, out_pdf)
