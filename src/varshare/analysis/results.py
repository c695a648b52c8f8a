"""The results directory of one suite: the aggregate tables, written atomically, and read back.

``varshare aggregate`` writes, into ``DIR``:

* ``eval_curves.csv`` — :func:`~varshare.analysis.aggregate.eval_curves` (algo, method, seed, step, return);
* ``final_returns.csv`` — :func:`~varshare.analysis.aggregate.final_returns` (algo, method, seed, task, step,
  return);
* ``task_curves.csv`` — :func:`~varshare.analysis.aggregate.task_curves` (algo, method, seed, task,
  step, metric, value: per-task evaluations, every strategy; the claims report's input);
* ``per_task_final.csv`` — :func:`~varshare.analysis.aggregate.per_task_table` (a row per algo and task);
* ``iqm.csv`` — :func:`~varshare.analysis.stats.iqm_with_ci` (a row per algo and method);
* ``success_curves.csv``, ``final_success.csv``, ``success_iqm.csv`` — the same three for the
  success rate (``eval_success``; columns ``success`` instead of ``return``): the score of
  Meta-World MT10 (Fig. 7); empty tables (header only) when the runs log no success;
* ``strategy_curves.csv`` — :func:`~varshare.analysis.portfolio.strategy_curves` (Fig. 3);
* ``sharing_map.csv`` — :func:`~varshare.analysis.portfolio.sharing_map` (the sharing map);
* ``aggregate.json`` — what went in (runs, algos, methods, seeds per algo and method, tasks), the
  bootstrap settings, the package versions, each run's lock sha256 and the warnings when the runs
  come from different (or unlocked) environments, written last.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from varshare.analysis.aggregate import (SUCCESS_METRIC, RunDirectoryError, eval_curves, final_returns, has_metric,
                                        load_runs, per_task_table, task_curves)
from varshare.analysis.portfolio import sharing_map, strategy_curves
from varshare.analysis.stats import CONFIDENCE, INTERVAL_METHOD, iqm_with_ci
from varshare.analysis.style import ordered_algos, ordered_methods
from varshare.environment import mixed_environment_warnings
from varshare.io import atomic_write_text
from varshare.run_io import git_commit

TABLES = ("eval_curves", "task_curves", "final_returns", "per_task_final", "iqm", "success_curves", "final_success",
          "success_iqm", "strategy_curves", "sharing_map")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _seeds(final: pd.DataFrame) -> dict[str, dict[str, list[int]]]:
    """``{algo: {method: seeds ascending}}`` of the runs in ``final`` (algorithm and method order)."""
    seeds = {}
    for algo in ordered_algos(final["algo"]):
        rows = final[final["algo"] == algo]
        seeds[algo] = {method: sorted(int(s) for s in rows.loc[rows["method"] == method, "seed"].unique())
                       for method in ordered_methods(rows["method"])}
    return seeds


def write_aggregate(run_dirs: Iterable[str | Path], suite: str, out: str | Path,
                    bootstrap_seed: int = 0, reps: int = 2000, task_bootstrap: bool = False) -> dict:
    """Aggregate finished runs of ``suite`` into the results directory ``out``.

    Raises:
        RunDirectoryError: for a missing/unfinished run, or a run of another suite.

    Returns:
        The summary written to ``aggregate.json``.
    """
    run_dirs = [str(d) for d in run_dirs]
    df = load_runs(run_dirs)
    for run in df["run"].unique():
        if run.split("/")[0] != suite:
            raise RunDirectoryError(f"run {run!r} is not a {suite} run")
    curves = eval_curves(df)
    final = final_returns(df)
    tables = {
        "eval_curves": curves,
        "task_curves": task_curves(df),
        "final_returns": final,
        "per_task_final": per_task_table(final),
        "iqm": iqm_with_ci(final, seed=bootstrap_seed, reps=reps, task_bootstrap=task_bootstrap),
        **success_tables(df, bootstrap_seed, reps, task_bootstrap),
        "strategy_curves": strategy_curves(df),
        "sharing_map": sharing_map(df),
    }
    out = Path(out)
    for name, table in tables.items():
        atomic_write_text(out / f"{name}.csv", table.to_csv(index=False, lineterminator="\n"))
    environments = run_environments(run_dirs)
    summary = {
        "suite": suite,
        "num_runs": int(df["run"].nunique()),
        "runs": list(df["run"].unique()),
        "run_dirs": run_dirs,
        "algos": ordered_algos(df["algo"]),
        "methods": ordered_methods(df["method"]),
        "seeds": _seeds(final),
        "tasks": list(final["task"].unique()),
        "final_steps_per_task": sorted(int(s) for s in final["step"].unique()),
        "bootstrap": {"seed": bootstrap_seed, "reps": reps, "confidence": CONFIDENCE,
                      "interval": INTERVAL_METHOD, "task_bootstrap": task_bootstrap,
                      "resamples": "runs within each task" + (" and tasks" if task_bootstrap else ""),
                      "rng": "numpy global RNG seeded per method, restored after"},
        "files": [f"{name}.csv" for name in TABLES],
        "versions": {name: _version(name) for name in ("varshare", "rliable", "arch", "numpy", "pandas", "scipy")},
        "git_commit": git_commit(Path(__file__).resolve().parent),
        # each run's lock sha256 (varshare.environment) and the warnings when they are not all one
        "environments": {run: (record or {}).get("lock_sha256") for run, record in environments.items()},
        "environment_warnings": mixed_environment_warnings(environments),
    }
    atomic_write_text(out / "aggregate.json", json.dumps(summary, indent=2) + "\n")
    return summary


def run_environments(run_dirs: Iterable[str | Path]) -> dict[str, dict | None]:
    """Each run's ``manifest.json`` environment record (None for a manifest without one), keyed by
    run name; directories without a manifest (hand-made metrics tables) are left out."""
    environments = {}
    for directory in map(Path, run_dirs):
        if (directory / "manifest.json").is_file():
            manifest = json.loads((directory / "manifest.json").read_text())
            environments[manifest.get("run", str(directory))] = manifest.get("environment")
    return environments


def success_tables(df: pd.DataFrame, bootstrap_seed: int, reps: int, task_bootstrap: bool) -> dict[str, pd.DataFrame]:
    """``success_curves``, ``final_success`` and ``success_iqm`` of the metrics ``df``: as the return's
    tables, for ``eval_success`` (column ``success``); header-only tables when no run logs it."""
    if not has_metric(df, SUCCESS_METRIC):
        return {"success_curves": pd.DataFrame(columns=["algo", "method", "seed", "step", "success"]),
                "final_success": pd.DataFrame(columns=["algo", "method", "seed", "task", "step", "success"]),
                "success_iqm": pd.DataFrame(columns=["algo", "method", "iqm", "ci_low", "ci_high", "num_runs",
                                                     "num_tasks"])}
    final = final_returns(df, SUCCESS_METRIC, "success")
    return {"success_curves": eval_curves(df, SUCCESS_METRIC, "success"), "final_success": final,
            "success_iqm": iqm_with_ci(final, seed=bootstrap_seed, reps=reps, task_bootstrap=task_bootstrap,
                                       column="success")}


def read_table(results: str | Path, name: str) -> pd.DataFrame:
    """One table of a results directory (``name`` in :data:`TABLES`); task names stay strings."""
    path = Path(results) / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run `varshare aggregate` first")
    columns = pd.read_csv(path, nrows=0).columns
    names = [c for c in ("algo", "method", "task", "strategy", "layer") if c in columns]
    return pd.read_csv(path, dtype={c: str for c in names}, keep_default_na=False,
                       na_values={c: ["", "nan", "NaN"] for c in columns if c not in names})


def select_rows(table: pd.DataFrame, methods: list[str] | None = None, algo: str | None = None) -> pd.DataFrame:
    """The rows of ``table`` (with columns ``method`` and ``algo``) whose method is one of
    ``methods`` and whose algorithm is ``algo``; None selects every method / algorithm."""
    keep = pd.Series(True, index=table.index)
    if methods is not None:
        keep &= table["method"].isin(methods)
    if algo is not None:
        keep &= table["algo"] == algo
    return table[keep]


def selection_text(methods: list[str] | None = None, algo: str | None = None) -> str:
    """What :func:`select_rows` selected, for messages: ``"methods [...] and algo 'ppo'"``."""
    parts = ([f"methods {list(methods)}"] if methods is not None else []) + ([f"algo {algo!r}"] if algo else [])
    return " and ".join(parts) or "any method and algo"
