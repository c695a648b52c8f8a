"""`varshare.analysis`: tables, IQM + bootstrap CI and figures on synthetic run directories whose
answers are known by hand; `varshare aggregate` / `varshare figure` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from varshare.analysis import figures, mt10
from varshare.analysis.aggregate import RunDirectoryError, eval_curves, final_returns, load_runs, per_task_table
from varshare.analysis.figures import plot_iqm, plot_learning_curves
from varshare.analysis.mt10 import per_task_success, success_bands
from varshare.analysis.results import read_table, write_aggregate
from varshare.analysis.stats import iqm_with_ci
from varshare.analysis.style import METHOD_COLORS, method_color, ordered_methods
from varshare.cli import main
from varshare.config import METHODS
from varshare.run_io import MetricsTable

SUITE = "cartpole10"
TASKS = ["default", "moon", "mars"]


def make_run(root: Path, method: str, seed: int, evals: dict[int, list[float]], tasks: list[str] = TASKS,
             finished: bool = True, suite: str = SUITE, algo: str = "ppo",
             success: dict[int, list[float]] | None = None) -> Path:
    """A run directory as `varshare train` writes it: ``evals`` maps step → per-task eval returns,
    ``success`` step → per-task success rates (default 0)."""
    out = root / algo / method / f"seed{seed}"
    out.mkdir(parents=True)
    table = MetricsTable(f"{suite}/{algo}/{method}/seed{seed}", algo, method, seed)
    for step, returns in evals.items():
        rates = (success or {}).get(step, [0.0] * len(tasks))
        for task, value, rate in zip(tasks, returns, rates, strict=True):
            table.add_many(task, step, {"eval_return": value, "eval_length": 7.0, "eval_success": rate})
        table.add("all", step, "eval_return_mean", float(np.mean(returns)))
        # Training rows at the same step must not leak into evaluation results.
        table.add("all", step, "policy_loss", -1.0)
        for task in tasks:
            table.add(task, step, "train_return", 1e6)
    table.save(out / "metrics.csv")
    if finished:
        (out / "done.json").write_text(json.dumps({"run": table.run}) + "\n")
    return out


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    """hard_sharing seeds 0, 1 and varshare seed 0 on 3 tasks; varshare's last eval is at 150."""
    return [
        make_run(tmp_path, "hard_sharing", 0, {0: [1, 2, 3], 100: [10, 20, 30], 200: [40, 50, 60]}),
        make_run(tmp_path, "hard_sharing", 1, {0: [3, 2, 1], 100: [30, 20, 40], 200: [20, 70, 90]}),
        make_run(tmp_path, "varshare", 0, {0: [0, 0, 3], 150: [9, 9, 9]}),
    ]


def test_eval_curves_average_tasks_per_run_and_step(runs):
    curves = eval_curves(load_runs(runs))
    assert list(curves.columns) == ["algo", "method", "seed", "step", "return"]
    assert set(curves["algo"]) == {"ppo"}
    got = {(r.method, r.seed, r.step): r._5 for r in curves.itertuples()}
    assert got == {
        ("hard_sharing", 0, 0): 2.0, ("hard_sharing", 0, 100): 20.0, ("hard_sharing", 0, 200): 50.0,
        ("hard_sharing", 1, 0): 2.0, ("hard_sharing", 1, 100): 30.0, ("hard_sharing", 1, 200): 60.0,
        ("varshare", 0, 0): 1.0, ("varshare", 0, 150): 9.0,
    }
    assert list(curves["method"]) == ["hard_sharing"] * 6 + ["varshare"] * 2  # METHODS order


def test_final_returns_take_each_runs_last_evaluation(runs):
    final = final_returns(load_runs(runs))
    assert list(final.columns) == ["algo", "method", "seed", "task", "step", "return"]
    assert list(final["task"][:3]) == TASKS  # suite order, not alphabetical
    got = {(r.method, r.seed, r.task): (r.step, r._6) for r in final.itertuples()}
    assert got == {
        ("hard_sharing", 0, "default"): (200, 40.0), ("hard_sharing", 0, "moon"): (200, 50.0),
        ("hard_sharing", 0, "mars"): (200, 60.0),
        ("hard_sharing", 1, "default"): (200, 20.0), ("hard_sharing", 1, "moon"): (200, 70.0),
        ("hard_sharing", 1, "mars"): (200, 90.0),
        ("varshare", 0, "default"): (150, 9.0), ("varshare", 0, "moon"): (150, 9.0),
        ("varshare", 0, "mars"): (150, 9.0),
    }


def test_per_task_table_mean_and_std_over_seeds(runs):
    table = per_task_table(final_returns(load_runs(runs))).set_index("task")
    assert list(table.index) == TASKS
    assert list(table.columns) == ["algo", "hard_sharing_mean", "hard_sharing_std", "varshare_mean", "varshare_std",
                                   "num_seeds"]
    assert set(table["algo"]) == {"ppo"}
    assert table.loc["default", "hard_sharing_mean"] == 30.0
    assert table.loc["default", "hard_sharing_std"] == pytest.approx(math.sqrt(200))  # ddof 1: (40-20)²/2
    assert table.loc["mars", "hard_sharing_mean"] == 75.0
    assert table.loc["moon", "varshare_mean"] == 9.0
    assert math.isnan(table.loc["moon", "varshare_std"])  # one seed
    assert list(table["num_seeds"]) == [1, 1, 1]


@pytest.fixture
def two_algo_runs(tmp_path: Path) -> list[Path]:
    """hard_sharing seed 0 under ppo and under sac (differing only in algo), and varshare seed 0 under ppo."""
    return [
        make_run(tmp_path, "hard_sharing", 0, {0: [1, 2, 3], 100: [10, 20, 30]}),
        make_run(tmp_path, "hard_sharing", 0, {0: [4, 5, 6], 100: [70, 80, 90]}, algo="sac"),
        make_run(tmp_path, "varshare", 0, {0: [0, 0, 3], 100: [9, 9, 9]}),
    ]


def test_runs_differing_only_in_algo_never_collide(tmp_path, two_algo_runs):
    df = load_runs(two_algo_runs)
    curves = eval_curves(df)
    assert [(r.algo, r.method, r.step, r._5) for r in curves.itertuples()] == [
        ("ppo", "hard_sharing", 0, 2.0), ("ppo", "hard_sharing", 100, 20.0),
        ("ppo", "varshare", 0, 1.0), ("ppo", "varshare", 100, 9.0),
        ("sac", "hard_sharing", 0, 5.0), ("sac", "hard_sharing", 100, 80.0),  # algo, then method order
    ]
    final = final_returns(df)
    assert final.groupby(["algo", "method"])["return"].mean().to_dict() == {
        ("ppo", "hard_sharing"): 20.0, ("ppo", "varshare"): 9.0, ("sac", "hard_sharing"): 80.0}
    table = per_task_table(final).set_index(["algo", "task"])
    assert list(table.index) == [(a, t) for a in ("ppo", "sac") for t in TASKS]
    assert table.loc[("ppo", "moon"), "hard_sharing_mean"] == 20.0
    assert table.loc[("sac", "moon"), "hard_sharing_mean"] == 80.0
    assert math.isnan(table.loc[("sac", "moon"), "varshare_mean"])  # no sac varshare run
    assert list(table["num_seeds"]) == [1] * 6
    iqm = iqm_with_ci(final, seed=0, reps=50)
    assert [(r.algo, r.method, r.num_runs) for r in iqm.itertuples()] == [
        ("ppo", "hard_sharing", 1), ("ppo", "varshare", 1), ("sac", "hard_sharing", 1)]
    assert iqm.set_index(["algo", "method"]).loc[("sac", "hard_sharing"), "iqm"] == pytest.approx(80.0)
    summary = write_aggregate(two_algo_runs, SUITE, tmp_path / "results", reps=50)
    assert summary["algos"] == ["ppo", "sac"] and summary["methods"] == ["hard_sharing", "varshare"]
    assert summary["seeds"] == {"ppo": {"hard_sharing": [0], "varshare": [0]}, "sac": {"hard_sharing": [0]}}
    # the same (algo, method, seed) in two runs is still refused
    other = make_run(tmp_path / "other", "hard_sharing", 0, {0: [1, 2, 3]}, suite="lunarlander20")
    with pytest.raises(RunDirectoryError,
                       match=r"several runs share \(algo, method, seed\) \[\('ppo', 'hard_sharing', 0\)\]"):
        eval_curves(load_runs([two_algo_runs[0], other]))


def drawn(figure) -> tuple[list[str], list[list[float]]]:
    """Legend texts of a curve figure's first axes and the y data of its lines, in legend order."""
    ax = figure.axes[0]
    return ([t.get_text() for t in ax.get_legend().get_texts()],
            [list(line.get_ydata()) for line in ax.get_lines() if len(line.get_ydata())])


def test_figure_algo_option_filters_and_labels_lines_method_algo(tmp_path, two_algo_runs, monkeypatch, capsys):
    results = tmp_path / "results"
    assert main(["aggregate", "--suite", SUITE, "--out", str(results), "--reps", "50", *map(str, two_algo_runs)]) == 0
    saved = {}
    monkeypatch.setattr(figures, "save_figure", lambda figure, path, dpi=200: saved.update({Path(path).name: figure}))
    command = ["figure", "--results", str(results), "--title", "t", "--curves-png", "c.png", "--curves-pdf", "c.pdf",
               "--iqm-png", "i.png", "--iqm-pdf", "i.pdf"]

    assert main(command) == 0  # every algorithm present: one line per (method, algo)
    labels, lines = drawn(saved["c.png"])
    assert labels == ["hard_sharing (PPO) (n=1)", "hard_sharing (SAC) (n=1)", "varshare (PPO) (n=1)"]
    assert lines == [[2.0, 20.0], [5.0, 80.0], [1.0, 9.0]]
    assert [t.get_text() for t in saved["i.png"].axes[0].get_yticklabels()] == labels

    assert main([*command, "--algo", "sac"]) == 0  # one algorithm: labels as without the algo axis
    labels, lines = drawn(saved["c.png"])
    assert labels == ["hard_sharing (n=1)"] and lines == [[5.0, 80.0]]
    assert [t.get_text() for t in saved["i.png"].axes[0].get_yticklabels()] == ["hard_sharing (n=1)"]

    assert main([*command, "--algo", "ppo", "--methods", "varshare"]) == 0
    assert drawn(saved["c.png"]) == (["varshare (n=1)"], [[1.0, 9.0]])

    capsys.readouterr()
    assert main([*command, "--algo", "sac", "--methods", "varshare"]) == 2
    assert "no eval_curves rows for methods ['varshare'] and algo 'sac'" in capsys.readouterr().err


def test_unfinished_or_missing_run_is_a_clear_error(tmp_path, runs):
    unfinished = make_run(tmp_path, "pcgrad", 0, {0: [1, 2, 3]}, finished=False)
    with pytest.raises(RunDirectoryError, match=rf"{unfinished}.*unfinished \(no done.json\)"):
        load_runs([*runs, unfinished])
    with pytest.raises(RunDirectoryError, match="does not exist"):
        load_runs([tmp_path / "nope"])
    with pytest.raises(RunDirectoryError, match="already loaded"):
        load_runs([runs[0], runs[0]])


def test_task_names_stay_strings(tmp_path):
    run = make_run(tmp_path, "independent", 0, {0: [1, 2], 5: [3, 5]}, tasks=["NA", "1e3"])
    final = final_returns(load_runs([run]))
    assert list(final["task"]) == ["NA", "1e3"]
    assert list(final["return"]) == [3.0, 5.0]


def test_iqm_drops_bottom_and_top_quarter_one_seed(tmp_path):
    scores = [100.0, 0.0, 3.0, 4.0, 5.0, 6.0, -50.0, 7.0]  # sorted: -50 0 | 3 4 5 6 | 7 100
    tasks = [f"t{i}" for i in range(8)]
    final = final_returns(load_runs([make_run(tmp_path, "varshare", 0, {10: scores}, tasks=tasks)]))
    row = iqm_with_ci(final, seed=0, reps=200).iloc[0]
    assert (row["algo"], row["method"]) == ("ppo", "varshare") and row["iqm"] == pytest.approx(4.5)
    assert (row["num_runs"], row["num_tasks"]) == (1, 8)
    assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])  # nothing to resample over runs
    tasks_ci = iqm_with_ci(final, seed=0, reps=200, task_bootstrap=True).iloc[0]
    assert tasks_ci["iqm"] == pytest.approx(4.5) and tasks_ci["ci_low"] < tasks_ci["ci_high"]


def synthetic_final(methods: dict[str, np.ndarray], algo: str = "ppo") -> pd.DataFrame:
    """``final_returns``-shaped table from ``{method: [num_seeds, num_tasks] scores}``."""
    rows = [{"algo": algo, "method": m, "seed": s, "task": f"t{t}", "step": 1, "return": float(v)}
            for m, matrix in methods.items() for (s, t), v in np.ndenumerate(matrix)]
    return pd.DataFrame(rows)


def test_iqm_ci_contains_point_reproducible_and_leaves_global_rng_alone():
    rng = np.random.default_rng(1)
    a, b = rng.normal(50, 20, size=(4, 8)), rng.normal(80, 5, size=(5, 8))
    final = synthetic_final({"varshare": a, "independent": b})
    np.random.seed(123)
    before = np.random.get_state()
    first = iqm_with_ci(final, seed=7, reps=500)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]
    pd.testing.assert_frame_equal(first, iqm_with_ci(final, seed=7, reps=500))
    assert list(first["method"]) == ["independent", "varshare"]  # METHODS order
    for row in first.itertuples():
        assert row.ci_low < row.iqm < row.ci_high
    middle = np.sort(a.ravel())[8:24]  # 32 scores: drop 8 at each end
    assert first.set_index("method").loc["varshare", "iqm"] == pytest.approx(middle.mean())
    # A method's interval does not depend on which other methods are aggregated with it.
    alone = iqm_with_ci(synthetic_final({"varshare": a}), seed=7, reps=500)
    pd.testing.assert_frame_equal(alone, first[first["method"] == "varshare"].reset_index(drop=True))
    assert not iqm_with_ci(final, seed=8, reps=500).equals(first)


def test_iqm_refuses_incomplete_score_matrix():
    final = synthetic_final({"varshare": np.ones((2, 3))})
    with pytest.raises(ValueError, match=r"ppo/varshare: no final return for \(seed, task\) \[\(1, 't2'\)\]"):
        iqm_with_ci(final[:-1], seed=0, reps=10)


def test_method_colors_fixed_distinct_and_ordered():
    assert set(METHOD_COLORS) == set(METHODS)
    assert len(set(METHOD_COLORS.values())) == len(METHODS)
    assert method_color("new_method") == method_color("new_method")
    assert method_color("new_method") not in METHOD_COLORS.values()
    assert ordered_methods(["zz", "varshare", "independent", "aa", "varshare"]) == ["independent", "varshare",
                                                                                  "aa", "zz"]


def assert_png(path: Path, min_width: int = 600, min_height: int = 300) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.width >= min_width and image.height >= min_height


def assert_pdf(path: Path) -> None:
    data = path.read_bytes()
    assert data[:5] == b"%PDF-" and len(data) > 1000


def test_figures_written_as_png_and_pdf(tmp_path, runs):
    df = load_runs(runs)
    out = tmp_path / "fig"
    plot_learning_curves(eval_curves(df), "synthetic", out / "curves.png", out / "curves.pdf")
    iqm = iqm_with_ci(final_returns(df), seed=0, reps=100)
    plot_iqm(iqm, "synthetic", out / "iqm.png", out / "iqm.pdf")
    assert_png(out / "curves.png")
    assert_png(out / "iqm.png", min_height=150)
    assert_pdf(out / "curves.pdf")
    assert_pdf(out / "iqm.pdf")
    assert sorted(p.name for p in out.iterdir()) == ["curves.pdf", "curves.png", "iqm.pdf", "iqm.png"]
    first = (out / "curves.pdf").read_bytes()
    plot_learning_curves(eval_curves(df), "synthetic", out / "curves.png", out / "curves.pdf")
    assert (out / "curves.pdf").read_bytes() == first  # no timestamp: same figure, same file


def test_cli_aggregate_and_figure_end_to_end(tmp_path, runs, capsys):
    results = tmp_path / "results"
    assert main(["aggregate", "--suite", SUITE, "--out", str(results), "--reps", "200", *map(str, runs)]) == 0
    assert sorted(p.name for p in results.iterdir()) == ["aggregate.json", "eval_curves.csv", "final_returns.csv",
                                                         "final_success.csv", "iqm.csv",
                                                         "per_task_final.csv", "sharing_map.csv", "strategy_curves.csv",
                                                         "success_curves.csv", "success_iqm.csv", "task_curves.csv"]
    # per-task evaluations, as logged: the claims report's input
    per_task = read_table(results, "task_curves")
    assert list(per_task.columns) == ["algo", "method", "seed", "task", "step", "metric", "value"]
    logged = load_runs(runs)
    assert len(per_task) == logged["metric"].isin(["eval_return", "eval_success"]).sum()
    assert set(per_task["metric"]) == {"eval_return", "eval_success"}
    summary = json.loads((results / "aggregate.json").read_text())
    assert summary["num_runs"] == 3 and summary["methods"] == ["hard_sharing", "varshare"]
    assert summary["algos"] == ["ppo"] and summary["seeds"] == {"ppo": {"hard_sharing": [0, 1], "varshare": [0]}}
    assert summary["tasks"] == TASKS and summary["final_steps_per_task"] == [150, 200]
    assert summary["bootstrap"]["seed"] == 0 and summary["versions"]["rliable"] != "not installed"
    df = load_runs(runs)
    pd.testing.assert_frame_equal(pd.read_csv(results / "eval_curves.csv"), eval_curves(df), check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_csv(results / "iqm.csv"),
                                  iqm_with_ci(final_returns(df), seed=0, reps=200), check_dtype=False)
    first = {p.name: p.read_bytes() for p in results.iterdir() if p.suffix == ".csv"}
    assert main(["aggregate", "--suite", SUITE, "--out", str(results), "--reps", "200", *map(str, runs)]) == 0
    assert {p.name: p.read_bytes() for p in results.iterdir() if p.suffix == ".csv"} == first

    figs = tmp_path / "figs"
    assert main(["figure", "--results", str(results), "--title", "synthetic",
                 "--curves-png", str(figs / "c.png"), "--curves-pdf", str(figs / "c.pdf"),
                 "--iqm-png", str(figs / "i.png"), "--iqm-pdf", str(figs / "i.pdf")]) == 0
    assert_png(figs / "c.png")
    assert_pdf(figs / "i.pdf")

    unfinished = make_run(tmp_path, "pcgrad", 0, {0: [1, 2, 3]}, finished=False)
    capsys.readouterr()
    assert main(["aggregate", "--suite", SUITE, "--out", str(tmp_path / "r2"), *map(str, runs), str(unfinished)]) == 2
    assert "unfinished" in capsys.readouterr().err
    other = make_run(tmp_path / "other", "pcgrad", 0, {0: [1, 2, 3]}, suite="lunarlander")
    assert main(["aggregate", "--suite", SUITE, "--out", str(tmp_path / "r3"), str(other)]) == 2
    assert "is not a cartpole10 run" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_learning_range_is_set_by_the_evaluations_after_step_0():
    curves = pd.DataFrame([("a", "ppo", seed, step, value) for seed, values in ((0, (-1000, 10, 50)), (1, (-1000, 30, 50)))
                           for step, value in zip((0, 100, 200), values)] + [("b", "sac", 0, 0, -900), ("b", "sac", 0, 100, 40)],
                          columns=["method", "algo", "seed", "step", "return"])
    low, high = figures.learning_range(curves, ["method", "algo"])
    spread = 50 - (20 - math.sqrt(200))  # a at step 100: mean 20, std sqrt(200) over two seeds; top: 50
    assert (low, high) == pytest.approx((20 - math.sqrt(200) - 0.05 * spread, 50 + 0.05 * spread))
    assert figures.learning_range(curves[curves["step"] == 0], ["method", "algo"]) is None  # nothing after step 0


@pytest.fixture
def ppo_and_sac_results(tmp_path: Path) -> list[Path]:
    """Results of two suites: PPO hard_sharing, l2_soft and varshare (seeds 0, 1), SAC hard_sharing and
    varshare (seed 0); a fresh policy's return at step 0 is -1000; lunarlander20 has PPO runs only."""
    runs = []
    for method, offset in (("hard_sharing", 0), ("l2_soft", 5), ("varshare", 10)):
        for seed in (0, 1):
            runs.append(make_run(tmp_path / "cp", method, seed, {0: [-1000] * 3, 100: [20 + offset + seed] * 3,
                                                                200: [40 + offset] * 3}))
    for method in ("hard_sharing", "varshare"):
        runs.append(make_run(tmp_path / "cp", method, 0, {0: [-1000] * 3, 50: [60] * 3, 100: [80] * 3}, algo="sac"))
    results = [tmp_path / "results/cartpole10", tmp_path / "results/lunarlander20"]
    write_aggregate(runs, SUITE, results[0], reps=20)
    lunar = [make_run(tmp_path / "ll", "hard_sharing", 0, {0: [1, 2, 3], 100: [4, 5, 6]}, suite="lunarlander20")]
    write_aggregate(lunar, "lunarlander20", results[1], reps=20)
    return results


def plot_algos(results: list[Path], *extra: str) -> list[str]:
    return ["plot", "algos", "--results", *map(str, results), "--panel-titles", *"AB"[:len(results)],
            "--methods", "hard_sharing", "l2_soft", "varshare", "--title", "t", "--png", "x.png", "--pdf", "x.pdf",
            *extra]


def test_fig6_draws_each_method_under_both_algorithms_ppo_solid_sac_dashed(ppo_and_sac_results, monkeypatch):
    saved = {}
    monkeypatch.setattr(figures, "save_figure", lambda figure, path, dpi=200: saved.update({Path(path).name: figure}))
    assert main(plot_algos(ppo_and_sac_results[:1], "--algos", "ppo", "sac")) == 0
    ax = saved["x.png"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    # l2_soft has no SAC run: not drawn; the rest: one line per (method, algorithm)
    assert labels == ["hard_sharing (PPO) (n=2)", "hard_sharing (SAC) (n=1)", "varshare (PPO) (n=2)",
                      "varshare (SAC) (n=1)"]
    lines = [line for line in ax.get_lines() if len(line.get_ydata())]
    assert [list(line.get_ydata()) for line in lines] == [[-1000, 20.5, 40], [-1000, 60, 80],
                                                          [-1000, 30.5, 50], [-1000, 60, 80]]
    assert [line.get_linestyle() for line in lines] == ["-", "--", "-", "--"]
    assert [line.get_color() for line in lines] == [METHOD_COLORS[m] for m in ("hard_sharing",) * 2 + ("varshare",) * 2]
    low, high = ax.get_ylim()
    assert 15 < low < 20 and 80 < high < 85  # the learning (20..80) sets the axis, not the step-0 -1000
    assert ax.get_title() == "A" and saved["x.png"].get_suptitle() == "t"


def test_fig6_refuses_a_panel_without_one_of_the_algorithms(ppo_and_sac_results, capsys):
    assert main(plot_algos(ppo_and_sac_results, "--algos", "ppo", "sac")) == 2
    assert "panel 'B': no evaluation curves of algo sac; algos present: ppo" in capsys.readouterr().err
    assert main(plot_algos(ppo_and_sac_results[:1], "--algos", "ppo")) == 2  # nothing to compare
    assert main(plot_algos(ppo_and_sac_results[:1], "--algos", "ppo", "sac", "--algo", "ppo")) == 2
    assert "two or more distinct algorithms" in capsys.readouterr().err
    assert main(["plot", "curves", "--results", str(ppo_and_sac_results[0]), "--panel-titles", "A", "--methods",
                 "varshare", "--algos", "ppo", "sac", "--title", "t", "--png", "x.png", "--pdf", "x.pdf"]) == 2
    assert "--algos is for kind algos" in capsys.readouterr().err
    curves = pd.read_csv(ppo_and_sac_results[0] / "eval_curves.csv")
    with pytest.raises(ValueError, match=r"panel 'A': none of the methods \['l2_soft'\] has curves of every algo"):
        figures.plot_algorithm_comparison([("A", curves)], ["ppo", "sac"], ["l2_soft"], "t", "x.png", "x.pdf")



@pytest.fixture
def tuned_results(tmp_path: Path) -> Path:
    """Results of cartpole10 runs with tuned hyperparameters: PPO varshare (seeds 0, 1), SAC varshare
    (seed 0) and PPO l2_soft (seed 0; l2_soft has no SAC run in :func:`ppo_and_sac_results`)."""
    runs = [make_run(tmp_path / "tuned", "varshare", seed, {0: [-1000] * 3, 100: [50 + seed] * 3, 200: [90] * 3})
            for seed in (0, 1)]
    runs.append(make_run(tmp_path / "tuned", "varshare", 0, {0: [-1000] * 3, 50: [70] * 3, 100: [120] * 3}, algo="sac"))
    runs.append(make_run(tmp_path / "tuned", "l2_soft", 0, {0: [-1000] * 3, 100: [500] * 3}))
    write_aggregate(runs, SUITE, tmp_path / "results/cartpole10_tuned", reps=20)
    return tmp_path / "results/cartpole10_tuned"


def legend_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def drawn_lines(ax) -> list:
    return [line for line in ax.get_lines() if len(line.get_ydata())]


def test_fig6_draws_tuned_curves_at_full_strength_beside_thinner_defaults(ppo_and_sac_results, tuned_results,
                                                                         monkeypatch):
    saved = {}
    monkeypatch.setattr(figures, "save_figure", lambda figure, path, dpi=200: saved.update({Path(path).name: figure}))
    assert main(plot_algos(ppo_and_sac_results[:1], "--algos", "ppo", "sac",
                           "--tuned-results", str(tuned_results))) == 0
    ax = saved["x.png"].axes[0]
    # only varshare was tuned; l2_soft's tuned run is not drawn (no default SAC line); each tuned line
    # is listed after its default one
    assert legend_labels(ax) == ["hard_sharing (PPO) (n=2)", "hard_sharing (SAC) (n=1)", "varshare (PPO) (n=2)",
                                 "varshare (PPO, tuned) (n=2)", "varshare (SAC) (n=1)", "varshare (SAC, tuned) (n=1)"]
    lines = drawn_lines(ax)
    assert [list(line.get_ydata()) for line in lines] == [[-1000, 20.5, 40], [-1000, 60, 80], [-1000, 30.5, 50],
                                                          [-1000, 60, 80], [-1000, 50.5, 90], [-1000, 70, 120]]
    defaults, tuned = lines[:4], lines[4:]
    assert [line.get_color() for line in lines] == [METHOD_COLORS[m] for m in
                                                    ("hard_sharing",) * 2 + ("varshare",) * 4]
    assert [line.get_linestyle() for line in lines] == ["-", "--", "-", "--", "-", "--"]
    assert all(line.get_linewidth() == 1.2 and line.get_alpha() == 0.45 and line.get_marker() in ("None", "", None)
               for line in defaults)
    assert all(line.get_linewidth() == 2.2 and line.get_alpha() is None and line.get_marker() == "o" for line in tuned)
    handles = dict(zip(legend_labels(ax), ax.get_legend().legend_handles))
    assert handles["varshare (SAC, tuned) (n=1)"].get_marker() == "o"
    assert handles["varshare (SAC) (n=1)"].get_alpha() == 0.45
    low, high = ax.get_ylim()
    assert 10 < low < 20 and 120 < high < 126  # the tuned SAC curve's 120 is in range; step 0 is not


def test_fig6_tuned_results_none_leaves_a_panel_as_without_tuned_curves(ppo_and_sac_results, tuned_results,
                                                                        monkeypatch):
    saved = {}
    monkeypatch.setattr(figures, "save_figure", lambda figure, path, dpi=200: saved.update({Path(path).name: figure}))
    both = [ppo_and_sac_results[0]] * 2
    assert main(plot_algos(both, "--algos", "ppo", "sac")) == 0
    plain = saved["x.png"].axes[0]
    expected = (legend_labels(plain), [(list(line.get_ydata()), line.get_color(), line.get_linestyle(),
                                        line.get_linewidth(), line.get_alpha(), line.get_marker())
                                       for line in drawn_lines(plain)], plain.get_ylim())
    assert expected[1][0][3:] == (1.8, None, "None")
    assert main(plot_algos(both, "--algos", "ppo", "sac", "--tuned-results", "none", str(tuned_results))) == 0
    untuned, tuned = saved["x.png"].axes[:2]
    assert (legend_labels(untuned), [(list(line.get_ydata()), line.get_color(), line.get_linestyle(),
                                      line.get_linewidth(), line.get_alpha(), line.get_marker())
                                     for line in drawn_lines(untuned)], untuned.get_ylim()) == expected
    assert "varshare (PPO, tuned) (n=2)" in legend_labels(tuned) and len(drawn_lines(tuned)) == 6
    # a tuned table with none of the drawn methods and algorithms: the panel as without it
    curves = pd.read_csv(ppo_and_sac_results[0] / "eval_curves.csv")
    tuned_curves = pd.read_csv(tuned_results / "eval_curves.csv")
    figures.plot_algorithm_comparison([("A", curves)], ["ppo", "sac"], ["hard_sharing"], "t", "x.png", "x.pdf",
                                      tuned=[tuned_curves])
    ax = saved["x.png"].axes[0]
    assert legend_labels(ax) == ["hard_sharing (PPO) (n=2)", "hard_sharing (SAC) (n=1)"]
    assert [line.get_linewidth() for line in drawn_lines(ax)] == [1.8, 1.8]


def test_fig6_refuses_wrong_tuned_results(ppo_and_sac_results, tuned_results, tmp_path, capsys):
    both = [ppo_and_sac_results[0]] * 2
    assert main(plot_algos(both, "--algos", "ppo", "sac", "--tuned-results", str(tuned_results))) == 2
    assert capsys.readouterr().err == ("give one --tuned-results entry (a results directory, or none) per "
                                       "--results directory\n")
    assert main(plot_algos(ppo_and_sac_results[:1], "--algos", "ppo", "sac", "--tuned-results", "none", "none")) == 2
    assert "give one --tuned-results entry" in capsys.readouterr().err
    assert main(["plot", "curves", "--results", str(ppo_and_sac_results[0]), "--panel-titles", "A", "--methods",
                 "varshare", "--tuned-results", str(tuned_results), "--title", "t", "--png", "x.png",
                 "--pdf", "x.pdf"]) == 2
    assert capsys.readouterr().err == "--tuned-results is for kind algos (Fig. 6)\n"
    assert main(plot_mt10_command(ppo_and_sac_results[0], "--tuned-results", "none")) == 2
    assert "--tuned-results is for kind algos" in capsys.readouterr().err
    assert main(plot_algos(ppo_and_sac_results[:1], "--algos", "ppo", "sac", "--tuned-results",
                           str(tmp_path / "missing"))) == 2
    assert "eval_curves.csv: not found" in capsys.readouterr().err
    assert main(plot_algos(ppo_and_sac_results[:1], "--algos", "ppo", "sac", "--tuned-results", str(tuned_results),
                           "--methods", "hard_sharing")) == 2
    assert f"{tuned_results}: no eval_curves rows for methods ['hard_sharing']" in capsys.readouterr().err
    curves = pd.read_csv(ppo_and_sac_results[0] / "eval_curves.csv")
    with pytest.raises(ValueError, match="1 tuned entries for 2 panels"):
        figures.plot_algorithm_comparison([("A", curves), ("B", curves)], ["ppo", "sac"], ["varshare"], "t",
                                          "x.png", "x.pdf", tuned=[None])

# --- Fig. 7, Meta-World MT10: success rates -------------------------------------------------------
MT10_TASKS = ["reach-v3", "push-v3", "pick-place-v3", "door-open-v3"]
# SAC hard_sharing, seeds 0-2: per-task success at steps 0, 100, 200 (the final one)
SAC_SUCCESS = {0: {0: [0, 0, 0, 0], 100: [0.5, 0, 0, 0.5], 200: [1.0, 0.2, 0.0, 0.9]},
               1: {0: [0, 0, 0, 0], 100: [1.0, 0, 0, 0.0], 200: [1.0, 0.4, 0.1, 0.7]},
               2: {0: [0, 0, 0, 0], 100: [0.5, 0.5, 0, 1.0], 200: [0.8, 0.6, 0.3, 1.0]}}


@pytest.fixture
def mt10_results(tmp_path: Path) -> Path:
    """Aggregated MT10-like runs: SAC hard_sharing seeds 0-2 (:data:`SAC_SUCCESS`), SAC varshare seed 0
    (success 1 everywhere at the end), PPO hard_sharing seed 0 (0.25 on every task)."""
    runs = [make_run(tmp_path, "hard_sharing", seed, {step: [1.0] * 4 for step in rates}, tasks=MT10_TASKS,
                     suite="mt10", algo="sac", success=rates) for seed, rates in SAC_SUCCESS.items()]
    runs.append(make_run(tmp_path, "varshare", 0, {0: [1.0] * 4, 200: [2.0] * 4}, tasks=MT10_TASKS, suite="mt10",
                         algo="sac", success={0: [0.0] * 4, 200: [1.0] * 4}))
    runs.append(make_run(tmp_path, "hard_sharing", 0, {0: [1.0] * 4, 200: [2.0] * 4}, tasks=MT10_TASKS, suite="mt10",
                         success={0: [0.0] * 4, 200: [0.25] * 4}))
    write_aggregate(runs, "mt10", tmp_path / "results", bootstrap_seed=3, reps=500)
    return tmp_path / "results"


def test_success_tables_and_fig7_statistics_against_a_hand_computation(mt10_results):
    curves = read_table(mt10_results, "success_curves")
    sac = curves[(curves["algo"] == "sac") & (curves["method"] == "hard_sharing")]
    by_hand = {(seed, step): float(np.mean(rates)) for seed, steps in SAC_SUCCESS.items() for step, rates in steps.items()}
    assert {(r.seed, r.step): r.success for r in sac.itertuples()} == pytest.approx(by_hand)

    # final-success IQM over the [3 seeds, 4 tasks] matrix: drop the 3 lowest and 3 highest of the 12
    final = np.array([SAC_SUCCESS[seed][200] for seed in range(3)]).ravel()
    middle = np.sort(final)[3:9]  # 0.3 0.4 0.6 0.7 0.8 0.9
    iqm = read_table(mt10_results, "success_iqm").set_index(["algo", "method"])
    row = iqm.loc[("sac", "hard_sharing")]
    assert row["iqm"] == pytest.approx(middle.mean()) and middle.sum() == pytest.approx(3.7)
    assert (row["num_runs"], row["num_tasks"]) == (3, 4)
    assert final.min() <= row["ci_low"] < row["iqm"] < row["ci_high"] <= final.max() + 1e-12
    assert math.isnan(iqm.loc[("sac", "varshare"), "ci_low"])  # one seed: no interval
    assert iqm.loc[("ppo", "hard_sharing"), "iqm"] == pytest.approx(0.25)

    bands = success_bands(curves, seed=3, reps=500).set_index(["algo", "method", "step"])
    for step in (0, 100, 200):
        rates = [by_hand[seed, step] for seed in range(3)]
        band = bands.loc[("sac", "hard_sharing", step)]
        assert band["mean"] == pytest.approx(np.mean(rates)) and band["num_seeds"] == 3
        if np.ptp(rates) == 0:  # every seed alike: the interval is the point
            assert band["ci_low"] == band["ci_high"] == pytest.approx(rates[0])
        else:
            eps = 1e-12  # the bootstrap means' rounding
            assert min(rates) - eps <= band["ci_low"] < band["mean"] < band["ci_high"] <= max(rates) + eps
    assert math.isnan(bands.loc[("sac", "varshare", 200), "ci_low"])  # one seed
    pd.testing.assert_frame_equal(success_bands(curves, seed=3, reps=500), bands.reset_index()[
        ["algo", "method", "step", "mean", "ci_low", "ci_high", "num_seeds"]])  # reproducible

    cells = per_task_success(read_table(mt10_results, "final_success"))
    sac_cells = cells[(cells["algo"] == "sac") & (cells["method"] == "hard_sharing")]
    assert list(sac_cells["task"]) == MT10_TASKS  # suite order
    assert sac_cells["success"].tolist() == pytest.approx(
        np.mean([SAC_SUCCESS[seed][200] for seed in range(3)], axis=0).tolist())
    assert [tuple(r) for r in cells[["algo", "method"]].drop_duplicates().values] == [
        ("ppo", "hard_sharing"), ("sac", "hard_sharing"), ("sac", "varshare")]


def plot_mt10_command(results: Path, *extra: str) -> list[str]:
    return ["plot", "mt10", "--results", str(results), "--panel-titles", "MT10", "--methods", "hard_sharing",
            "varshare", "--bootstrap-seed", "3", "--title", "t", "--png", "x.png", "--pdf", "x.pdf", *extra]


def test_fig7_draws_a_row_per_algorithm_curves_iqm_and_the_per_task_means(mt10_results, monkeypatch, capsys):
    saved = {}
    monkeypatch.setattr(mt10, "save_figure", lambda figure, path, dpi=200: saved.update({Path(path).name: figure}))
    assert main(plot_mt10_command(mt10_results)) == 0
    axes = {ax.get_title(): ax for ax in saved["x.png"].axes if ax.get_title()}
    assert list(axes) == ["MT10, PPO: success rate", "PPO: final success (IQM over seeds × tasks)",
                          "PPO: final success per task (mean over seeds)", "MT10, SAC: success rate",
                          "SAC: final success (IQM over seeds × tasks)", "SAC: final success per task (mean over seeds)"]
    curves = axes["MT10, SAC: success rate"]
    assert [t.get_text() for t in curves.get_legend().get_texts()] == ["hard_sharing (n=3)", "varshare (n=1)"]
    by_seed = [[np.mean(SAC_SUCCESS[seed][step]) for seed in range(3)] for step in (0, 100, 200)]
    assert [list(line.get_ydata()) for line in curves.get_lines()] == [
        pytest.approx(np.mean(by_seed, axis=1).tolist()), [0.0, 1.0]]
    assert curves.get_ylim() == (-0.03, 1.03)
    iqm = axes["SAC: final success (IQM over seeds × tasks)"]
    assert [t.get_text() for t in iqm.get_yticklabels()] == ["hard_sharing (n=3)", "varshare (n=1)"]
    heatmap = axes["SAC: final success per task (mean over seeds)"]
    cells = np.asarray(heatmap.collections[0].get_array()).reshape(2, len(MT10_TASKS))
    expected = np.mean([SAC_SUCCESS[seed][200] for seed in range(3)], axis=0)
    assert cells.tolist() == [pytest.approx(expected.tolist()), [1.0] * 4]
    assert [t.get_text() for t in heatmap.get_xticklabels()] == MT10_TASKS
    assert [t.get_text() for t in heatmap.get_yticklabels()] == ["hard_sharing (n=3)", "varshare (n=1)"]

    assert main(plot_mt10_command(mt10_results, "--algo", "sac")) == 0  # one algorithm: one row
    assert sum(1 for ax in saved["x.png"].axes if ax.get_title().endswith("success rate")) == 1
    capsys.readouterr()
    assert main(plot_mt10_command(mt10_results, "--algo", "ppo", "--methods", "varshare")) == 2
    assert "no success_curves rows for methods ['varshare'] and algo 'ppo'" in capsys.readouterr().err


def test_fig7_written_as_png_and_pdf(mt10_results, tmp_path):
    out = tmp_path / "fig"
    assert main(["plot", "mt10", "--results", str(mt10_results), "--panel-titles", "MT10", "--methods", "hard_sharing",
                 "varshare", "--title", "t", "--png", str(out / "f.png"), "--pdf", str(out / "f.pdf")]) == 0
    assert_png(out / "f.png", min_height=400)
    assert_pdf(out / "f.pdf")


def test_runs_without_success_give_header_only_success_tables(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    table = MetricsTable("cartpole10/ppo/varshare/seed0", "ppo", "varshare", 0)
    table.add_many("moon", 0, {"eval_return": 1.0})
    table.save(run / "metrics.csv")
    (run / "done.json").write_text("{}")
    write_aggregate([run], SUITE, tmp_path / "results", reps=20)
    assert read_table(tmp_path / "results", "success_iqm").empty
    assert main(["plot", "mt10", "--results", str(tmp_path / "results"), "--panel-titles", "x", "--methods", "varshare",
                 "--title", "t", "--png", "x.png", "--pdf", "x.pdf"]) == 2
    assert "no success_curves rows" in capsys.readouterr().err
