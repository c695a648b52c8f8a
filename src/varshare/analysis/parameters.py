"""Parameter counts of the models a suite's runs train: ``varshare parameters`` writes
``data/results/<suite>/parameters.csv`` (claim (e) of the claims report reads LoRA's per-task
parameter ratio from it).

Kept apart from the metrics tables of :mod:`varshare.analysis.results`: counting rebuilds each
method's model (torch, the task family, the method and the algorithm), so the tables and figures
that only read metrics do not depend on training code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from varshare.analysis.aggregate import _sort
from varshare.io import atomic_write_text
from varshare.run_loading import parameter_counts

COLUMNS = ["algo", "method", "total", "per_task", "shared"]


def parameter_table(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """Parameter counts per (algo, method) (:func:`varshare.run_loading.parameter_counts` of its
    first run directory; a method's seeds share one architecture): columns ``algo, method, total,
    per_task, shared``, in algorithm and method order.

    Raises:
        ValueError: a directory without the config, tasks and manifest ``varshare train`` writes.
    """
    first: dict[tuple[str, str], Path] = {}
    for directory in map(Path, run_dirs):
        missing = [name for name in ("config.yaml", "tasks.json", "manifest.json") if not (directory / name).is_file()]
        if missing:
            raise ValueError(f"{directory}: not a run directory of `varshare train` ({', '.join(missing)} missing)")
        manifest = json.loads((directory / "manifest.json").read_text())
        first.setdefault((manifest["algo"], manifest["method"]), directory)
    rows = [{"algo": algo, "method": method, **parameter_counts(directory)}
            for (algo, method), directory in first.items()]
    table = pd.DataFrame(rows, columns=COLUMNS)
    return _sort(table, ["algo", "method"])


def write_parameter_table(run_dirs: Iterable[str | Path], out: str | Path) -> pd.DataFrame:
    """:func:`parameter_table` of ``run_dirs``, written atomically to ``out`` (CSV)."""
    table = parameter_table(run_dirs)
    atomic_write_text(out, table.to_csv(index=False, lineterminator="\n"))
    return table
