"""Portfolio tables (evaluation strategies, sharing map) and their multi-panel figures."""

from __future__ import annotations

import subprocess
import sys

from pathlib import Path

import pandas as pd
import pytest

from varshare.analysis import figures
from varshare.analysis.portfolio import sharing_map, strategy_curves
from varshare.analysis.results import write_aggregate
from varshare.cli import main
from varshare.run_io import MetricsTable

PRUNING_COLUMNS = ["run", "algo", "method", "seed", "eps", "task", "metric", "value"]


def synthetic_run(directory, method, seed, rows, algo="ppo"):
    table = MetricsTable(f"cartpole10/{algo}/{method}/seed{seed}", algo, method, seed)
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
    assert list(curves.columns) == ["algo", "method", "strategy", "seed", "step", "return"]
    at = curves.set_index(["strategy", "seed", "step"])["return"]
    assert at[("mean weights (eval)", 1, 100)] == (110 + 130) / 2 + 1
    assert at[("sample-1 (eval)", 0, 100)] == (60 + 80) / 2
    assert at[("sample-5 (eval)", 0, 0)] == 20
    assert at[("training rollouts", 0, 100)] == 7.0  # only the task that finished an episode
    assert "policy_loss" not in set(curves["strategy"])

    table = sharing_map(df)
    assert list(table.columns) == ["algo", "method", "layer", "task", "mu_abs_mean"] and set(table["algo"]) == {"ppo"}
    shares = table.set_index(["layer", "task"])["mu_abs_mean"]
    assert shares[("actor.layers.0", "b")] == 0.3 and shares[("actor.layers.1", "a")] == 0.5  # last step only


@pytest.mark.slow
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


@pytest.fixture
def two_algo_results(tmp_path) -> Path:
    """Results of varshare seeds 0, 1 under ppo and seed 0 under sac, with a pruning sweep per algo."""
    runs = [(tmp_path / f"runs/ppo{seed}", "ppo", seed, 0) for seed in (0, 1)] + [(tmp_path / "runs/sac0", "sac", 0, 50)]
    for directory, algo, seed, offset in runs:
        synthetic_run(directory, "varshare", seed, rows_for(offset), algo=algo)
    results = tmp_path / "results"
    write_aggregate([directory for directory, *_ in runs], "cartpole10", results, reps=20)
    for algo, scale in (("ppo", 1.0), ("sac", 2.0)):
        rows = [(f"cartpole10/{algo}/varshare/seed0", algo, "varshare", 0, eps, task, metric, value * scale)
                for eps, kept, ret in ((0.0, 1.0, 100.0), (0.1, 0.5, 90.0))
                for task, metric, value in (("all", "kept_fraction", kept), ("all", "eval_return_mean", ret),
                                            ("NA", "eval_return", ret))]
        (results / "pruning").mkdir(exist_ok=True)
        pd.DataFrame(rows, columns=PRUNING_COLUMNS).to_csv(results / f"pruning/{algo}_varshare_seed0.csv", index=False)
    return results


def plot(kind, results, *extra, saved):
    """Run `varshare plot KIND` on one results directory (panel "A"); the drawn figure."""
    assert main(["plot", kind, "--results", str(results), "--panel-titles", "A", "--methods", "varshare",
                 "--title", "t", "--png", "x.png", "--pdf", "x.pdf", *extra]) == 0
    return saved["x.png"]


def legend(figure) -> list[str]:
    return [t.get_text() for t in figure.axes[0].get_legend().get_texts()]


def test_plot_algo_option_filters_rows_and_labels_name_algo(two_algo_results, monkeypatch):
    saved = {}
    monkeypatch.setattr(figures, "save_figure", lambda figure, path, dpi=200: saved.update({Path(path).name: figure}))
    results = two_algo_results

    assert legend(plot("curves", results, saved=saved)) == ["varshare (PPO) (n=2)", "varshare (SAC) (n=1)"]
    assert legend(plot("curves", results, "--algo", "ppo", saved=saved)) == ["varshare (n=2)"]
    both = legend(plot("strategies", results, saved=saved))
    assert "mean weights (eval) (PPO) (n=2)" in both and "mean weights (eval) (SAC) (n=1)" in both
    only = plot("strategies", results, "--algo", "sac", saved=saved)
    assert "mean weights (eval) (n=1)" in legend(only)
    means = [list(line.get_ydata()) for line in only.axes[0].get_lines() if len(line.get_ydata())][0]
    assert means == [20.0 + 50, 120.0 + 50]  # sac's run: (10 + 30) / 2 + step + 50

    def titles(figure):
        return [ax.get_title() for ax in figure.axes if ax.get_title()]

    assert titles(plot("sharing-map", results, saved=saved)) == ["A (PPO)", "A (SAC)"]
    assert titles(plot("sharing-map", results, "--algo", "sac", saved=saved)) == ["A"]

    pruning = plot("pruning", results, saved=saved)
    assert legend(pruning) == ["seed 0 (PPO)", "seed 0 (SAC)"]
    assert [list(line.get_ydata()) for line in pruning.axes[0].get_lines()] == [[100.0, 90.0], [200.0, 180.0]]
    pruning = plot("pruning", results, "--algo", "sac", saved=saved)
    assert legend(pruning) == ["seed 0"]
    assert [list(line.get_xdata()) for line in pruning.axes[0].get_lines()] == [[2.0, 1.0]]


def test_plot_refuses_an_algo_without_rows(two_algo_results, capsys):
    assert main(["plot", "curves", "--results", str(two_algo_results), "--panel-titles", "A", "--methods", "varshare",
                 "--algo", "a2c", "--title", "t", "--png", "x.png", "--pdf", "x.pdf"]) == 2
    assert "no eval_curves rows for methods ['varshare'] and algo 'a2c'" in capsys.readouterr().err
