"""Portfolio tables (evaluation strategies, sharing map) and their multi-panel figures."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from varshare.analysis.portfolio import sharing_map, strategy_curves
from varshare.analysis.results import write_aggregate
from varshare.run_io import MetricsTable


def synthetic_run(directory, method, seed, rows):
    table = MetricsTable(f"cartpole10/{method}/seed{seed}", method, seed)
    for task, step, metric, value in rows:
        table.add(task, step, metric, value)
    directory.mkdir(parents=True)
    table.save(directory / "metrics.csv")
    (directory / "done.json").write_text("{}")
    return pd.read_csv(directory / "metrics.csv")


def rows_for(seed_offset):
    rows = []
    for step in (0, 100):
        for task, base in (("a", 10.0), ("b", 30.0)):
            rows += [(task, step, "eval_return", base + step + seed_offset),
                     (task, step, "eval_return_sample1", base + step / 2),
                     (task, step, "eval_return_sample5", base + step / 4)]
        rows += [("all", step, "eval_return_mean", 0.0), ("all", step, "policy_loss", 1.0)]
    rows += [("a", 100, "train_return", 7.0)]  # task b finished no episode in that iteration
    for step, scale in ((0, 0.0), (100, 1.0)):
        rows += [("a", step, "mu_abs_mean/actor.layers.0", 0.1 * scale), ("b", step, "mu_abs_mean/actor.layers.0", 0.3 * scale),
                 ("a", step, "mu_abs_mean/actor.layers.1", 0.5 * scale), ("b", step, "mu_abs_mean/actor.layers.1", 0.7 * scale)]
    return rows


def test_strategy_curves_and_sharing_map_by_hand(tmp_path):
    frames = [synthetic_run(tmp_path / f"s{seed}", "varshare", seed, rows_for(seed)) for seed in (0, 1)]
    df = pd.concat(frames, ignore_index=True)
    df["task"] = df["task"].astype(str)
    curves = strategy_curves(df)
    at = curves.set_index(["strategy", "seed", "step"])["return"]
    assert at[("mean weights (eval)", 1, 100)] == (110 + 130) / 2 + 1
    assert at[("sample-1 (eval)", 0, 100)] == (60 + 80) / 2
    assert at[("sample-5 (eval)", 0, 0)] == 20
    assert at[("training rollouts", 0, 100)] == 7.0  # only the task that finished an episode
    assert "policy_loss" not in set(curves["strategy"])

    shares = sharing_map(df).set_index(["layer", "task"])["mu_abs_mean"]
    assert shares[("actor.layers.0", "b")] == 0.3 and shares[("actor.layers.1", "a")] == 0.5  # last step only


def test_plot_cli_draws_panels_per_results_directory(tmp_path):
    for seed in (0, 1):
        synthetic_run(tmp_path / "runs" / f"s{seed}", "varshare", seed, rows_for(seed))
    results = tmp_path / "results"
    write_aggregate([tmp_path / "runs/s0", tmp_path / "runs/s1"], "cartpole10", results, reps=50)
    for kind in ("curves", "strategies", "sharing-map"):
        out = tmp_path / f"{kind}.png"
        result = subprocess.run(
            [sys.executable, "-m", "varshare.cli", "plot", kind, "--results", str(results), str(results),
             "--panel-titles", "A", "B", "--methods", "varshare", "--title", kind, "--png", str(out),
             "--pdf", str(tmp_path / f"{kind}.pdf")], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / f"{kind}.pdf").stat().st_size > 1000
    missing = subprocess.run(
        [sys.executable, "-m", "varshare.cli", "plot", "curves", "--results", str(results), "--panel-titles", "A",
         "--methods", "hard_sharing", "--title", "t", "--png", str(tmp_path / "x.png"), "--pdf", str(tmp_path / "x.pdf")],
        capture_output=True, text=True)
    assert missing.returncode == 2 and "no eval_curves rows for methods ['hard_sharing']" in missing.stderr
