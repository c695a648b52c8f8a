"""The claims report: its statistics against independent computations, the verdict rule, and each
claim on hand-made results whose answer is known (supported, contradicted, inconclusive, ceiling,
not tested)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from rliable import library, metrics

from varshare.analysis import claims as C
from varshare.analysis.efficiency import area_under_curve, normalised_curves, run_statistics, steps_to_threshold
from varshare.analysis.stats import comparison_interval, interquartile_mean, probability_of_improvement
from varshare.hpo.objective import ScoreRange

TASKS = ("default", "moon")
RANDOM = {"default": 20.0, "moon": 30.0}
CARTPOLE = ScoreRange("cartpole10", "return", 500.0, RANDOM, 10, 0, solved_is_ceiling=True)
LUNAR = ScoreRange("lunarlander20", "return", 200.0, {"default": -200.0, "moon": -100.0}, 10, 0)
FAST = C.ClaimSettings(reps=500)


def ret(task: str, score: float, scores: ScoreRange = CARTPOLE) -> float:
    """The return whose normalised score on ``task`` is ``score``."""
    return scores.random[task] + score * (scores.solved - scores.random[task])


def curves(method: str, score, algo: str = "ppo", seeds=range(5), steps=range(0, 60_001, 10_000),
           metric: str = "eval_return", scores: ScoreRange = CARTPOLE) -> pd.DataFrame:
    """task_curves rows: ``score(seed, task_index, step)`` in normalised units, stored as returns."""
    rows = [{"algo": algo, "method": method, "seed": seed, "task": task, "step": step, "metric": metric,
             "value": ret(task, score(seed, t, step), scores)}
            for seed in seeds for t, task in enumerate(TASKS) for step in steps]
    return pd.DataFrame(rows)


def learner(final: float, speed: float, noise: float = 0.0, seed_offset: int = 0):
    """Score rising linearly to ``final`` at ``speed`` steps, plus per-(seed, task) noise."""
    def score(seed, task, step):
        jitter = noise * np.random.default_rng(1000 * seed_offset + 10 * seed + task).standard_normal()
        return 0.0 if step == 0 else min(final, final * step / speed) + jitter
    return score


def suite(*frames, scores: ScoreRange = CARTPOLE, **kwargs) -> C.SuiteResults:
    return C.SuiteResults(scores.suite, scores, pd.concat(frames, ignore_index=True), **kwargs)


def claim(results, key, settings=FAST):
    return next(c for c in C.evaluate_claims(results if isinstance(results, list) else [results], settings)
                if c.key == key)


# --- statistics --------------------------------------------------------------------------------

def test_probability_of_improvement_and_iqm_equal_rliable_s_definitions():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 4, size=(3, 5)).astype(float)  # many ties
        y = rng.integers(0, 4, size=(4, 5)).astype(float)
        assert probability_of_improvement(x, y) == pytest.approx(metrics.probability_of_improvement(x, y))
        assert interquartile_mean(x) == pytest.approx(metrics.aggregate_iqm(x))
    same = rng.normal(size=(3, 4))
    assert probability_of_improvement(same, same) == pytest.approx(0.5)
    assert probability_of_improvement(same + 10, same) == 1.0


def test_bootstrap_interval_hand_worked_and_seeded():
    # two runs, one task: the resamples {0,0} {0,1} {1,0} {1,1} have means 0, ½, ½, 1
    mean = lambda a: a.mean(axis=(-2, -1))  # noqa: E731
    point, low, high = comparison_interval(mean, [np.array([[0.0], [1.0]])], seed=0, reps=4000)
    assert (point, low, high) == (0.5, 0.0, 1.0)
    x, y = np.random.default_rng(1).normal(size=(2, 5, 3))
    assert comparison_interval(probability_of_improvement, [x, y], 7) == comparison_interval(probability_of_improvement,
                                                                                              [x, y], 7)
    for single in ([x[:1], y[:1]], [x, y[:1]]):  # one run on either side: no interval
        _, low, high = comparison_interval(probability_of_improvement, single, 0)
        assert math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="different numbers of tasks"):
        comparison_interval(probability_of_improvement, [x, y[:, :2]], 0)


def test_bootstrap_interval_agrees_with_rliable_s_stratified_bootstrap():
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.3, 1, size=(5, 2)), rng.normal(0, 1, size=(5, 2))
    _, low, high = comparison_interval(probability_of_improvement, [x, y], seed=0, reps=2000)
    np.random.seed(0)
    _, theirs = library.get_interval_estimates({"p": (x, y)}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
                                               reps=400)
    assert low == pytest.approx(float(theirs["p"][0][0]), abs=0.08)
    assert high == pytest.approx(float(theirs["p"][1][0]), abs=0.08)


def test_area_under_curve_and_steps_to_threshold_hand_worked():
    steps, scores = np.array([0, 10, 20, 40]), np.array([-5.0, 0.5, 1.0, 1.0])
    assert area_under_curve(steps, scores, 40) == pytest.approx((0.5 * 10 + 1 * 10 + 1 * 20) / 40)
    assert area_under_curve(steps, np.array([99.0, 0.5, 1.0, 1.0]), 40) == pytest.approx(0.875)  # step 0 excluded
    assert area_under_curve(steps, scores, 25) == pytest.approx((0.5 * 10 + 1 * 10) / 20)
    assert math.isnan(area_under_curve(steps[:1], scores[:1], 40))
    with pytest.raises(ValueError, match="start at step 0"):
        area_under_curve(steps[1:], scores[1:], 40)
    assert steps_to_threshold(steps, scores, 0.9, 40) == 20
    assert steps_to_threshold(steps, scores, 2.0, 40) == math.inf
    assert steps_to_threshold(steps, scores, 0.9, 10) == math.inf  # reached only after the horizon: censored


def test_normalised_scores_and_run_statistics():
    table = pd.DataFrame([{"algo": "ppo", "method": "m", "seed": 0, "task": "default", "step": s, "metric": "eval_return",
                           "value": v} for s, v in [(0, 20.0), (10, 260.0), (20, 500.0)]])
    curve = normalised_curves(table, CARTPOLE)
    assert curve["score"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    stats = run_statistics(curve, threshold=0.9)
    assert stats.loc[0, ["final", "auc", "steps", "horizon"]].tolist() == pytest.approx([1.0, 0.75, 20, 20])
    with pytest.raises(ValueError, match="not in cartpole10's score range"):
        normalised_curves(table.assign(task="mars"), CARTPOLE)
    success = ScoreRange("mt10", "success", 1.0, {"default": 0.0}, 0, 0, solved_is_ceiling=True)
    with pytest.raises(ValueError, match="scored by its success rate"):
        normalised_curves(table, success, "eval_return")


# --- the verdict rule --------------------------------------------------------------------------

def test_verdict_rule():
    assert C.better_verdict(0.6, 0.9) == C.SUPPORTED
    assert C.better_verdict(0.1, 0.4) == C.CONTRADICTED
    assert C.better_verdict(0.4, 0.7) == C.INCONCLUSIVE
    assert C.better_verdict(0.4, 0.7, ceiling=True) == C.CEILING
    assert C.better_verdict(0.6, 0.9, ceiling=True) == C.SUPPORTED  # a decisive difference stands at the ceiling
    assert C.better_verdict(math.nan, math.nan) == C.INCONCLUSIVE
    assert C.equivalence_verdict(-0.02, 0.03, 0.05) == C.SUPPORTED
    assert C.equivalence_verdict(0.06, 0.2, 0.05) == C.CONTRADICTED
    assert C.equivalence_verdict(-0.01, 0.2, 0.05) == C.INCONCLUSIVE
    assert C.equivalence_verdict(0.0, 0.0, 0.05, ceiling=True) == C.CEILING  # a tie forced by the ceiling
    assert C.non_inferiority_verdict(-0.04, 0.3, 0.05) == C.SUPPORTED
    assert C.non_inferiority_verdict(-0.3, -0.06, 0.05) == C.CONTRADICTED
    assert C.non_inferiority_verdict(-0.1, 0.0, 0.05) == C.INCONCLUSIVE
    S, X, I, K = C.SUPPORTED, C.CONTRADICTED, C.INCONCLUSIVE, C.CEILING
    assert C.combine([K, S, I], "any") == S
    assert C.combine([K, S, X], "any") == X
    assert C.combine([K, S], "all") == K
    assert C.combine([K, I], "all") == I
    assert C.combine([S, S], "all") == S
    assert C.combine([], "all") == C.NOT_TESTED
    with pytest.raises(ValueError, match="need"):
        C.combine([S], "most")


# --- the claims on hand-made results -----------------------------------------------------------

def test_claim_a_supported_contradicted_inconclusive():
    fast, slow = learner(0.95, 20_000, 0.01), learner(0.6, 60_000, 0.01, seed_offset=1)
    supported = claim(suite(curves("varshare", fast), curves("hard_sharing", slow)), "a")
    assert supported.verdict == C.SUPPORTED
    assert {t.statistic for t in supported.tests} == {"final score", "AUC", "steps to τ"}
    assert all(t.estimate == 1.0 and t.verdict == C.SUPPORTED for t in supported.tests)
    assert "l2_soft" in supported.note and "independent" in supported.note  # what the preset did not run
    assert supported.tests[0].n == "5×2 vs 5×2"

    contradicted = claim(suite(curves("varshare", slow), curves("hard_sharing", fast)), "a")
    assert contradicted.verdict == C.CONTRADICTED

    same = [learner(0.7, 30_000, 0.1, seed_offset=k) for k in (2, 3)]
    inconclusive = claim(suite(curves("varshare", same[0]), curves("pcgrad", same[1])), "a")
    assert inconclusive.verdict == C.INCONCLUSIVE
    assert all(t.ci_low < 0.5 < t.ci_high for t in inconclusive.tests if t.statistic != "steps to τ")


def test_a_saturated_suite_is_inconclusive_ceiling_on_final_scores():
    # both solve every task by the end; varshare gets there sooner
    early, late = learner(1.0, 10_000), learner(1.0, 50_000)
    result = claim(suite(curves("varshare", early), curves("independent", late)), "a")
    final = next(t for t in result.tests if t.statistic == "final score")
    assert final.verdict == C.CEILING and final.estimate == 0.5
    assert next(t for t in result.tests if t.statistic == "AUC").verdict == C.SUPPORTED
    assert result.verdict == C.SUPPORTED  # the sample-efficiency statistics decide
    tie = claim(suite(curves("varshare", early), curves("independent", early)), "a")
    assert tie.verdict == C.INCONCLUSIVE
    assert next(t for t in tie.tests if t.statistic == "final score").verdict == C.CEILING
    equal = claim(suite(curves("varshare", early), curves("l2_soft", early)), "b")
    assert [t.verdict for t in equal.tests] == [C.CEILING, C.SUPPORTED]  # final: forced tie; AUC: equal
    assert equal.verdict == C.CEILING
    lines = C.saturation([suite(curves("varshare", early), curves("hard_sharing", learner(0.5, 30_000)))], FAST)
    assert lines == ["- cartpole10/ppo: 1 of 2 methods reach the ceiling with their final score's IQM CI: varshare."]


def test_claim_b_equivalence_within_the_margin():
    near = [learner(0.8, 30_000, 0.005, seed_offset=k) for k in (4, 5)]
    assert claim(suite(curves("varshare", near[0]), curves("l2_soft", near[1])), "b").verdict == C.SUPPORTED
    apart = claim(suite(curves("varshare", learner(0.9, 30_000)), curves("l2_soft", learner(0.6, 30_000))), "b")
    assert apart.verdict == C.CONTRADICTED
    assert apart.tests[0].estimate == pytest.approx(0.3)
    # LunarLander has no ceiling: a tie there is a tie
    lunar = [curves(m, learner(1.0, 10_000), scores=LUNAR) for m in ("varshare", "l2_soft")]
    assert claim(suite(*lunar, scores=LUNAR), "b").verdict == C.SUPPORTED


def test_claim_c_strategies_and_claim_e_lora_with_its_parameter_ratio():
    frames = [curves("varshare", learner(0.8, 30_000, 0.005, seed_offset=k), metric=m)
              for k, m in enumerate(C.STRATEGIES)]
    result = claim(suite(*frames), "c")
    assert result.verdict == C.SUPPORTED
    assert {t.comparison for t in result.tests} == {"mean weights vs sample-1", "mean weights vs sample-5",
                                                    "sample-1 vs sample-5"}
    frames[2] = curves("varshare", learner(0.4, 30_000), metric="eval_return_sample5")
    assert claim(suite(*frames), "c").verdict == C.CONTRADICTED

    parameters = pd.DataFrame({"algo": ["ppo", "ppo"], "method": ["varshare", "varshare_lora"],
                               "total": [0, 0], "per_task": [18_310, 1_500], "shared": [0, 0]})
    small_loss = suite(curves("varshare", learner(0.8, 30_000)), curves("varshare_lora", learner(0.78, 30_000)),
                       parameters=parameters)
    lora = claim(small_loss, "e")
    assert lora.verdict == C.SUPPORTED and "1,500 / 18,310 = 8.2%" in lora.note
    big_loss = claim(suite(curves("varshare", learner(0.8, 30_000)), curves("varshare_lora", learner(0.5, 30_000))), "e")
    assert big_loss.verdict == C.CONTRADICTED and "unknown" in big_loss.note


def test_claim_d_reptile_must_beat_every_variant():
    good, base = learner(0.9, 20_000, 0.01), learner(0.7, 40_000, 0.01, seed_offset=6)
    best = claim(suite(curves("varshare_reptile", good), curves("varshare", base), curves("varshare_lrt", base)), "d")
    assert best.verdict == C.SUPPORTED and len(best.comparisons()) == 2
    beaten = claim(suite(curves("varshare_reptile", base), curves("varshare", base), curves("varshare_lrt", good)), "d")
    assert beaten.verdict == C.CONTRADICTED
    assert C.deciding_test(beaten).comparison == "varshare_reptile vs varshare_lrt"


def test_claim_f_compares_sac_and_ppo_up_to_the_shorter_budget():
    ppo = curves("varshare", learner(1.0, 200_000), algo="ppo", steps=range(0, 300_001, 10_000))
    sac = curves("varshare", learner(1.0, 20_000), algo="sac", steps=range(0, 50_001, 5_000))
    result = claim(suite(ppo, sac), "f")
    assert result.verdict == C.SUPPORTED
    assert {t.comparison for t in result.tests} == {"sac vs ppo (H = 50,000 steps)"}
    assert {t.statistic for t in result.tests} == {"AUC", "steps to τ"}  # PPO never reaches τ by 50k: censored
    slower = curves("varshare", learner(1.0, 45_000), algo="sac", steps=range(0, 50_001, 5_000))
    fast_ppo = curves("varshare", learner(1.0, 10_000), algo="ppo", steps=range(0, 300_001, 10_000))
    assert claim(suite(fast_ppo, slower), "f").verdict == C.CONTRADICTED
    # PPO's first evaluation after step 0 comes after SAC's whole budget: nothing to compare
    late = curves("hard_sharing", learner(1.0, 200_000), algo="ppo", steps=[0, 64_000])
    early = curves("hard_sharing", learner(1.0, 20_000), algo="sac", steps=range(0, 50_001, 5_000))
    alone = claim(suite(late, early), "f")
    assert alone.verdict == C.NOT_TESTED
    assert alone.note == "no data: not comparable: cartpole10/hard_sharing (no evaluation of both algorithms in (0, 50,000] steps)"
    both = claim(suite(late, early, ppo, sac), "f")
    assert both.verdict == C.SUPPORTED and both.note.startswith("not comparable: cartpole10/hard_sharing")


def loo_runs(residual_steps, scratch_steps, budget=100_000):
    rows = []
    for regime, steps in (("residual", residual_steps), ("scratch", scratch_steps)):
        for seed, step in enumerate(steps):
            rows.append({"algo": "ppo", "method": "varshare", "regime": regime, "holdout": "moon", "seed": seed,
                         "steps_to_threshold": min(step, budget), "censored": step > budget, "budget": budget})
    return pd.DataFrame(rows)


def test_claim_g_leave_one_out_with_censored_runs():
    base = [curves("varshare", learner(0.9, 20_000))]
    faster = claim(suite(*base, loo_runs=loo_runs([5_000, 10_000, 5_000], [math.inf] * 3), loo_threshold="return 475"), "g")
    assert faster.verdict == C.SUPPORTED
    assert faster.tests[0].estimate == 1.0 and faster.tests[0].statistic == "steps to return 475"
    assert faster.tests[0].n == "3×1 vs 3×1"
    never = claim(suite(*base, loo_runs=loo_runs([math.inf] * 3, [math.inf] * 3), loo_threshold="return 475"), "g")
    assert never.verdict == C.INCONCLUSIVE and never.tests[0].estimate == 0.5  # both censored: a tie
    slower = claim(suite(*base, loo_runs=loo_runs([80_000] * 3, [10_000] * 3), loo_threshold="return 475"), "g")
    assert slower.verdict == C.CONTRADICTED


def test_a_claim_without_data_says_so_and_the_report_renders():
    results = suite(curves("varshare", learner(1.0, 20_000)), curves("hard_sharing", learner(0.5, 40_000)))
    found = C.evaluate_claims([results], FAST)
    assert [c.key for c in found] == list("abcdefg")
    missing = {c.key: c for c in found if c.verdict == C.NOT_TESTED}
    assert set(missing) == set("bcdefg")
    assert missing["f"].note == "no data: no suite has runs of one method under both PPO and SAC"
    assert missing["g"].note.startswith("no data: the preset ran no leave-one-out study")
    text = C.claims_markdown(found, [results], FAST, "hand-made results")
    summary = [line for line in text.splitlines() if line.startswith("| (")]
    assert len(summary) == 7
    assert summary[0].endswith("| **supported** |") and "cartpole10/ppo, varshare vs hard_sharing" in summary[0]
    assert "no data: no suite has runs of one method under both PPO and SAC | **not tested** |" in summary[5]
    assert "- cartpole10/ppo: 1 of 2 methods reach" in text
    assert "| cartpole10/ppo | varshare vs hard_sharing | AUC | 1.000 [1.000, 1.000] | 5×2 vs 5×2 | supported | supported |" in text
    table = C.claims_table(found)
    assert len(table) == 3 and set(table["verdict"]) == {C.SUPPORTED}


def test_varshare_claims_cli(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    frame = pd.concat([curves("varshare", learner(0.9, 20_000)), curves("l2_soft", learner(0.9, 20_000))])
    frame.to_csv(results / "task_curves.csv", index=False)
    (tmp_path / "range.json").write_text(CARTPOLE.to_json())
    out, table = tmp_path / "claims.md", tmp_path / "claims.csv"
    command = [sys.executable, "-m", "varshare.cli", "claims", "--results", str(results), "--score-range",
               str(tmp_path / "range.json"), "--out", str(out), "--table", str(table), "--reps", "200"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "(b) supported: 1 comparisons, 2 tests" in done.stdout
    assert "(a) not tested: 0 comparisons, 0 tests (no data: no CartPole-10" in done.stdout
    assert out.read_text().startswith("# Claims report")
    assert list(pd.read_csv(table)["claim"]) == ["b", "b"]
    bad = subprocess.run(command[:6] + [str(results), *command[6:]], capture_output=True, text=True)
    assert bad.returncode == 2 and "give one --score-range per --results directory" in bad.stderr


def test_parameter_counts_of_a_run_directory_closed_form(tmp_path):
    """Per-task parameters of the CartPole-10 PPO actor-critic (4 → 64 → 64 → 2 and → 1): the
    layers' weights and biases, 9,155 in all; VarShare's residual has a μ and a ρ for each."""
    import json
    import shutil

    from varshare.envs.specs import specs_to_json
    from varshare.envs.suites import build_suite
    from varshare.run_loading import parameter_counts

    layers = (4 * 64 + 64) + (64 * 64 + 64)
    network = 2 * layers + (64 * 2 + 2) + (64 * 1 + 1)  # actor and critic trunks, then their heads
    counts = {}
    for method in ("hard_sharing", "independent", "varshare", "varshare_lora"):
        run = tmp_path / method
        run.mkdir()
        shutil.copy("configs/cartpole10_ppo.yaml", run / "config.yaml")
        (run / "tasks.json").write_text(specs_to_json(build_suite("cartpole10")))
        (run / "manifest.json").write_text(json.dumps({"algo": "ppo", "method": method, "seed": 0}))
        counts[method] = parameter_counts(run)
    assert network == 9_155
    assert counts["independent"] == {"total": 10 * network, "per_task": network, "shared": 0}
    assert counts["varshare"] == {"total": 9_155 + 10 * 2 * 9_155, "per_task": 2 * 9_155, "shared": 9_155}
    assert counts["hard_sharing"]["per_task"] == (64 * 2 + 2) + (64 + 1)  # the task heads
    lora = counts["varshare_lora"]
    assert lora["shared"] == 9_155 and 0 < lora["per_task"] < counts["varshare"]["per_task"] / 4

    out = tmp_path / "parameters.csv"
    done = subprocess.run([sys.executable, "-m", "varshare.cli", "parameters", "--out", str(out),
                           str(tmp_path / "varshare_lora"), str(tmp_path / "varshare")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out)
    assert list(table["method"]) == ["varshare", "varshare_lora"]  # method order
    assert table.set_index("method").loc["varshare", "per_task"] == 2 * 9_155
    bad = subprocess.run([sys.executable, "-m", "varshare.cli", "parameters", "--out", str(out), str(tmp_path)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not a run directory of `varshare train` (config.yaml" in bad.stderr


def test_rliable_figures_cli(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    frame = pd.concat([curves("varshare", learner(0.9, 20_000, 0.02)), curves("hard_sharing", learner(0.6, 40_000, 0.02)),
                       curves("hard_sharing", learner(0.6, 40_000, 0.02), algo="sac")])
    frame.to_csv(results / "task_curves.csv", index=False)
    (tmp_path / "range.json").write_text(CARTPOLE.to_json())
    base = [sys.executable, "-m", "varshare.cli", "rliable-figures", "--results", str(results),
            "--score-range", str(tmp_path / "range.json"), "--reps", "200"]
    figures = [f"--{kind}-{ext}={tmp_path / f'{kind}.{ext}'}" for kind in ("profiles", "improvement")
               for ext in ("png", "pdf")]
    done = subprocess.run([*base, "--algos", "ppo", "sac", *figures], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert all((tmp_path / f"{kind}.{ext}").stat().st_size > 1000 for kind in ("profiles", "improvement")
               for ext in ("png", "pdf"))
    # SAC trains hard_sharing alone: a profile panel, but nothing whose improvement to draw
    alone = subprocess.run([*base, "--algos", "sac", *figures[2:]], capture_output=True, text=True)
    assert alone.returncode == 2 and "no probability of improvement to draw" in alone.stderr
    half = subprocess.run([*base, "--algos", "ppo", figures[0]], capture_output=True, text=True)
    assert half.returncode == 2 and "--profiles-png and --profiles-pdf go together" in half.stderr
