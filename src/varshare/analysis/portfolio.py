"""Tables behind the VarShare portfolio figures: evaluation strategies and the sharing map.

Both read the tidy metrics of :func:`varshare.analysis.aggregate.load_runs`.
"""

from __future__ import annotations

import pandas as pd

from varshare.analysis.aggregate import _sort

#: metric → strategy label of Fig. 3 (evaluation strategies, and the training return, which comes
#: from the stochastic-weight rollouts themselves)
STRATEGY_METRICS: dict[str, str] = {
    "eval_return": "mean weights (eval)",
    "eval_return_sample1": "sample-1 (eval)",
    "eval_return_sample5": "sample-5 (eval)",
    "train_return": "training rollouts",
}

#: the per-task diagnostic drawn in the sharing map
SHARING_METRIC = "mu_abs_mean"


def strategy_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Task-averaged return per (algo, method, seed, step) under each strategy of :data:`STRATEGY_METRICS`.

    Returns:
        Columns ``algo, method, strategy, seed, step, return``, sorted in that order (strategies by
        name); ``return`` is the mean over the tasks that
        have the metric at that step (training returns exist only for tasks that finished an
        episode in that iteration). Methods without sample-k evaluations (deterministic weights)
        have only the mean and training rows.
    """
    rows = df[df["metric"].isin(STRATEGY_METRICS) & (df["task"] != "all")]
    curves = (rows.groupby(["algo", "method", "metric", "seed", "step"])["value"].mean()
              .rename("return").reset_index())
    curves["strategy"] = curves.pop("metric").map(STRATEGY_METRICS)
    columns = ["algo", "method", "strategy", "seed", "step"]
    return _sort(curves[[*columns, "return"]], columns)


def sharing_map(df: pd.DataFrame) -> pd.DataFrame:
    """Mean |μ| of every variational layer and task at each run's last diagnostic step, averaged
    over seeds: where the residuals moved away from the shared θ.

    Returns:
        Columns ``algo, method, layer, task, mu_abs_mean``, sorted in that order (layers by name,
        tasks in suite order); empty when no run logs the diagnostic.
    """
    columns = ["algo", "method", "layer", "task"]
    rows = df[df["metric"].str.startswith(SHARING_METRIC + "/") & (df["task"] != "all")]
    if rows.empty:
        return pd.DataFrame(columns=[*columns, SHARING_METRIC])
    last = rows["step"] == rows.groupby("run")["step"].transform("max")
    rows = rows[last].assign(layer=lambda r: r["metric"].str.split("/", n=1).str[1])
    table = rows.groupby(columns, sort=False)["value"].mean().rename(SHARING_METRIC).reset_index()
    return _sort(table, columns, task=list(dict.fromkeys(rows["task"])))
