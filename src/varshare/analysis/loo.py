"""Leave-one-out results: learning curves and steps-to-threshold per adaptation regime.

Reads the run directories of ``varshare adapt`` (:mod:`varshare.loo`): their ``metrics.csv`` through
:func:`~varshare.analysis.aggregate.load_runs` (the code of the main study), their ``done.json`` for
the regime and held-out task, and skipped regimes from ``done.json`` alone. A run's *score* is the
held-out task's evaluation metric of the suite (deterministic policy, mean weights;
:data:`METRICS`): ``return`` reads ``eval_return`` (CartPole-10, LunarLander-20), ``success`` reads
``eval_success``, the fraction of evaluation episodes that succeeded, in [0, 1] (Meta-World MT10).
``step`` is env steps on the held-out task.

**Steps to threshold.** The first evaluation step at which the run's score is ``≥ threshold`` — 0
when the zero-shot policy already reaches it. A run that never reaches it is *censored*: it counts
as its budget (its last evaluation step), so a mean over runs with censored ones is a lower bound of
the true mean. Resolution: the evaluation interval.

**Statistics.** Per algorithm, method and regime the runs form a matrix ``[seeds, held-out tasks]``; the mean
steps-to-threshold (and the mean zero-shot and final scores) come with 95% stratified-bootstrap
CIs (:func:`~varshare.analysis.stats.bootstrap_interval`: seeds resampled within each held-out task;
NaN with one seed).

``varshare loo-aggregate`` writes, into ``DIR``: ``loo_curves.csv`` (:func:`load_loo_runs`),
``loo_runs.csv`` (:func:`run_table`), ``loo_summary.csv`` (:func:`regime_summary`),
``loo_skipped.csv`` (algo, method, regime, holdout, seed, reason) and ``loo.json`` (inputs, metric,
threshold, bootstrap settings; written last). Every table is keyed by ``algo`` as well as ``method``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from varshare.analysis.aggregate import EVAL_METRIC, SUCCESS_METRIC, RunDirectoryError, _sort, load_runs
from varshare.analysis.stats import CONFIDENCE, INTERVAL_METHOD, bootstrap_interval
from varshare.analysis.style import ordered_algos, ordered_methods
from varshare.config import REGIMES
from varshare.io import atomic_write_text

#: the score of a leave-one-out study (``loo.suites.<suite>.metric``) → the metric it reads
METRICS: dict[str, str] = {"return": EVAL_METRIC, "success": SUCCESS_METRIC}
RUN_KEYS = ["algo", "method", "regime", "holdout", "seed"]
CURVE_COLUMNS = [*RUN_KEYS, "step", "score"]
SKIPPED_COLUMNS = [*RUN_KEYS, "reason"]
TABLES = ("loo_curves", "loo_runs", "loo_summary", "loo_skipped")


def _sort_runs(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sort by ``by``: algorithms, methods and regimes (:data:`REGIMES`) in their fixed orders."""
    return _sort(df, by, regime=list(REGIMES))


def load_loo_runs(run_dirs: Iterable[str | Path], suite: str | None = None,
                  metric: str = "return") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The adaptation runs' held-out-task evaluation curves, and the skipped regimes (of ``suite``, if given).

    Args:
        metric: the score, a key of :data:`METRICS`.

    Returns:
        ``(curves, skipped)``: curves with columns ``algo, method, regime, holdout, seed, step,
        score`` (one row per run and evaluation step; ``score`` the held-out task's ``metric``);
        skipped with ``algo, method, regime, holdout, seed, reason``.

    Raises:
        ValueError: an unknown ``metric``.
        RunDirectoryError: a directory without ``done.json``, one that is not an adaptation run (or
            whose ``done.json`` names no ``algo``), a run of another suite, or runs without the metric.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown leave-one-out metric {metric!r}; allowed: {', '.join(METRICS)}")
    finished, skipped = [], []
    for directory in map(Path, run_dirs):
        done = directory / "done.json"
        if not done.is_file():
            raise RunDirectoryError(f"{directory}: run is unfinished (no done.json)")
        summary = json.loads(done.read_text())
        if "adaptation" not in summary:
            raise RunDirectoryError(f"{directory}: not a leave-one-out adaptation run (`varshare adapt`)")
        if "algo" not in summary:
            raise RunDirectoryError(f"{done}: no 'algo' (written before runs were keyed by algorithm; rerun it)")
        if suite is not None and summary["run"].split("/")[0] != suite:
            raise RunDirectoryError(f"{directory}: run {summary['run']!r} is not a {suite} run")
        if "skipped" in summary:
            skipped.append({"algo": summary["algo"], "method": summary["method"],
                            "regime": summary["adaptation"]["regime"],
                            "holdout": summary["holdout"], "seed": summary["seed"], "reason": summary["skipped"]})
        else:
            finished.append((directory, summary))
    skipped = pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)
    if not finished:
        return pd.DataFrame(columns=CURVE_COLUMNS), skipped
    df = load_runs([directory for directory, _ in finished])
    regime = {s["run"]: s["adaptation"]["regime"] for _, s in finished}
    holdout = {s["run"]: s["holdout"] for _, s in finished}
    rows = df[(df["metric"] == METRICS[metric]) & (df["task"] == df["run"].map(holdout))]
    if rows.empty:
        raise RunDirectoryError(f"no {METRICS[metric]!r} rows of the held-out tasks in the adaptation runs "
                                f"(metric {metric!r})")
    curves = rows.assign(regime=rows["run"].map(regime), holdout=rows["task"]).rename(columns={"value": "score"})
    return _sort_runs(curves[CURVE_COLUMNS], [*RUN_KEYS, "step"]), _sort_runs(skipped, RUN_KEYS)


def steps_to_threshold(steps: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[int, bool]:
    """``(steps, censored)`` of one learning curve (evaluation ``steps`` ascending, ``scores``):
    the first step with score ``≥ threshold``, else the last step (the budget) and ``censored``."""
    reached = np.flatnonzero(np.asarray(scores) >= threshold)
    if reached.size:
        return int(steps[reached[0]]), False
    return int(steps[-1]), True


def run_table(curves: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """One row per adaptation run: ``algo, method, regime, holdout, seed, zero_shot_score`` (step
    0), ``final_score`` (last evaluation), ``budget`` (last evaluation step), ``steps_to_threshold``
    and ``censored``."""
    rows = []
    for (algo, method, regime, holdout, seed), run in curves.groupby(RUN_KEYS, sort=False):
        run = run.sort_values("step")
        steps, censored = steps_to_threshold(run["step"].to_numpy(), run["score"].to_numpy(), threshold)
        first, last = run.iloc[0], run.iloc[-1]
        if first["step"] != 0:
            raise RunDirectoryError(f"{algo}/{method}/{regime}/{holdout}/seed{seed}: no step-0 (zero-shot) evaluation")
        rows.append({"algo": algo, "method": method, "regime": regime, "holdout": holdout, "seed": int(seed),
                     "zero_shot_score": first["score"], "final_score": last["score"], "budget": int(last["step"]),
                     "steps_to_threshold": steps, "censored": censored})
    columns = [*RUN_KEYS, "zero_shot_score", "final_score", "budget", "steps_to_threshold", "censored"]
    return _sort_runs(pd.DataFrame(rows, columns=columns), RUN_KEYS)


def regime_summary(runs: pd.DataFrame, seed: int, reps: int = 2000) -> pd.DataFrame:
    """One row per (algo, method, regime): columns ``algo, method, regime``; the mean (over seeds
    and held-out tasks) of steps-to-threshold, zero-shot score and final score, each with a 95%
    stratified-bootstrap CI (``<quantity>``, ``<quantity>_ci_low``, ``<quantity>_ci_high``); then
    ``num_runs``, ``num_holdouts``, ``num_censored`` and ``budget`` (the largest).

    Raises:
        ValueError: when some (seed, held-out task) of an algorithm, method and regime has no run.
    """
    rows = []
    quantities = ("steps_to_threshold", "zero_shot_score", "final_score")
    columns = ["algo", "method", "regime"]
    columns += [f"{q}{suffix}" for q in quantities for suffix in ("", "_ci_low", "_ci_high")]
    columns += ["num_runs", "num_holdouts", "num_censored", "budget"]
    for (algo, method, regime), group in runs.groupby(["algo", "method", "regime"], sort=False):
        row = {"algo": algo, "method": method, "regime": regime}
        for quantity in quantities:
            matrix = group.pivot(index="seed", columns="holdout", values=quantity).sort_index()
            if matrix.isna().to_numpy().any():
                raise ValueError(f"{algo}/{method}/{regime}: runs missing for some (seed, held-out task): "
                                 f"seeds {list(matrix.index)}, held-out tasks {list(matrix.columns)}")
            point, low, high = bootstrap_interval(matrix.to_numpy(dtype=float), np.mean, seed, reps)
            row.update({quantity: point, f"{quantity}_ci_low": low, f"{quantity}_ci_high": high})
        row.update({"num_runs": len(group), "num_holdouts": group["holdout"].nunique(),
                    "num_censored": int(group["censored"].sum()), "budget": int(group["budget"].max())})
        rows.append(row)
    return _sort_runs(pd.DataFrame(rows, columns=columns), ["algo", "method", "regime"])


def write_loo_results(run_dirs: Iterable[str | Path], suite: str, threshold: float, out: str | Path,
                      bootstrap_seed: int = 0, reps: int = 2000, metric: str = "return") -> dict:
    """Tables of the adaptation runs of ``suite`` into ``out`` (see the module docstring), scored by
    ``metric`` (a key of :data:`METRICS`); returns the summary written to ``loo.json``.

    Raises:
        ValueError: an unknown metric.
        RunDirectoryError: an unfinished or non-adaptation run, a run of another suite, or runs
            without the metric.
    """
    run_dirs = [str(d) for d in run_dirs]
    curves, skipped = load_loo_runs(run_dirs, suite, metric)
    runs = run_table(curves, threshold)
    tables = {"loo_curves": curves, "loo_runs": runs, "loo_summary": regime_summary(runs, bootstrap_seed, reps),
              "loo_skipped": skipped}
    out = Path(out)
    for name, table in tables.items():
        atomic_write_text(out / f"{name}.csv", table.to_csv(index=False, lineterminator="\n"))
    summary = {
        "suite": suite, "metric": metric, "metric_column": METRICS[metric], "threshold": threshold,
        "run_dirs": run_dirs,
        "algos": ordered_algos(pd.concat([curves["algo"], skipped["algo"]])),
        "methods": ordered_methods(pd.concat([curves["method"], skipped["method"]])),
        "regimes": [r for r in REGIMES if r in set(curves["regime"]) | set(skipped["regime"])],
        "holdouts": sorted(set(curves["holdout"]) | set(skipped["holdout"])),
        "seeds": sorted(int(s) for s in set(curves["seed"]) | set(skipped["seed"])),
        "steps_to_threshold": f"first evaluation step with {metric} >= threshold; censored runs count as their budget",
        "bootstrap": {"seed": bootstrap_seed, "reps": reps, "confidence": CONFIDENCE, "interval": INTERVAL_METHOD,
                      "resamples": "seeds within each held-out task"},
        "files": [f"{name}.csv" for name in TABLES],
    }
    atomic_write_text(out / "loo.json", json.dumps(summary, indent=2) + "\n")
    return summary
