"""Leave-one-out: held-out pretraining, the scratch / full / residual regimes, the analysis, the DAG."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from helpers import copy_checkout, randomise_
from varshare.algos.ppo import PPO, ActorCritic
from varshare.analysis import figures
from varshare.analysis.aggregate import RunDirectoryError
from varshare.analysis.loo import load_loo_runs, regime_summary, run_table, steps_to_threshold, write_loo_results
from varshare.cli import main
from varshare.config import load_config
from varshare.envs import build_suite, make_vec_env
from varshare.eval.evaluate import evaluate, mean_or_nan
from varshare.run_loading import load_run
from varshare.loo import NO_SHARED_PARAMETERS, adapt, initialiser
from varshare.methods import make_method
from varshare.nn import shared_parameters
from varshare.run_io import MetricsTable
from varshare.train import RunSetupError, derived_seed, train

REPO = Path(__file__).resolve().parents[1]
HOLDOUT = "heavy-cart-short-pole"
TASKS = build_suite("cartpole10")[:3]  # pretraining keeps the other two
TINY = {"total_steps_per_task": 64, "envs_per_task": 2, "ppo.num_steps": 16, "ppo.num_minibatches": 2,
        "eval.every_steps": 32, "eval.episodes": 2, "network.hidden_sizes": [16, 16]}


def tiny_config(method: str, **overrides):
    base = {"suite": "cartpole10", "methods": [method], "seeds": [1], "total_steps_per_task": 64}
    return load_config(base, {**TINY, **overrides})


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict[str, Path]:
    """Finished runs of a few methods, each trained without HOLDOUT (seed 1)."""
    root = tmp_path_factory.mktemp("pretrained")
    runs = {}
    for method in ("varshare", "pcgrad", "independent"):
        train(tiny_config(method, holdout=HOLDOUT), TASKS, method, 1, root / method)
        runs[method] = root / method
    return runs


def eval_returns(run: Path) -> list[tuple[str, int, float]]:
    """(task, step, eval_return) rows of a run's metrics."""
    return [(r[4], r[5], r[7]) for r in MetricsTable.load_rows(run / "metrics.csv") if r[6] == "eval_return"]


def theta(state: dict, model) -> dict[str, torch.Tensor]:
    """The shared parameters θ of a model state dict (names from ``model``)."""
    return {name: state[name] for name in shared_parameters(model.networks())}


def build_model(method_name: str, config, num_tasks: int, seed: int = 0) -> ActorCritic:
    """A CartPole actor-critic of ``method_name`` for ``num_tasks`` tasks, freshly initialised."""
    return ActorCritic(make_method(method_name, config, num_tasks, seed), 4, 2, True, config.network)


# --- held-out pretraining ---------------------------------------------------------------------------
def test_holdout_trains_on_the_other_tasks_and_is_recorded_everywhere(pretrained):
    run = pretrained["varshare"]
    assert [t["name"] for t in json.loads((run / "tasks.json").read_text())] == ["default", "heavy-cart-short-pole-high-g"]
    assert {task for task, _, _ in eval_returns(run)} == {s.name for s in TASKS} - {HOLDOUT}
    assert f"holdout: {HOLDOUT}" in (run / "config.yaml").read_text()
    for name in ("manifest.json", "done.json"):
        record = json.loads((run / name).read_text())
        assert record["holdout"] == HOLDOUT and record["run"] == f"cartpole10/ppo/varshare/seed1/holdout-{HOLDOUT}"
        assert record["algo"] == "ppo"
    assert torch.load(run / "checkpoint.pt", weights_only=False)["holdout"] == HOLDOUT


def test_bad_holdout_name_fails_before_anything_starts(tmp_path, pretrained):
    result = subprocess.run(
        [sys.executable, "-m", "varshare.cli", "train", "--config", "configs/cartpole10_ppo.yaml", "--suite",
         "cartpole10", "--method", "varshare", "--seed", "0", "--holdout", "mooon", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    assert "holdout = 'mooon' is not a task of suite cartpole10; allowed: default, heavy-cart-short-pole" in result.stderr
    assert not (tmp_path / "run").exists()
    # adaptation to a task the pretrained run trained on is refused, naming the held-out one
    with pytest.raises(RunSetupError, match=f"task 'default' is not a task that run .* held out; allowed: .*{HOLDOUT}"):
        adapt(pretrained["varshare"], "default", "full", tmp_path / "adapt")
    assert not (tmp_path / "adapt").exists()


# --- the regimes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["varshare", "pcgrad"])  # pcgrad: the per-task-gradient path
def test_residual_keeps_theta_bit_identical_while_task_parameters_learn(tmp_path, pretrained, method):
    out = tmp_path / "residual"
    summary = adapt(pretrained[method], HOLDOUT, "residual", out)
    assert summary["adaptation"]["regime"] == "residual" and summary["holdout"] == HOLDOUT
    source = load_run(pretrained[method]).model
    initial = build_model(method, tiny_config(method), 1, 1)
    final = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    before, after = theta(source.state_dict(), source), theta(final, source)
    assert before and all(torch.equal(before[name], after[name]) for name in before)
    task_specific = [name for name in final if name not in before]
    assert any(not torch.equal(final[name], initial.state_dict()[name]) for name in task_specific)


@pytest.mark.parametrize("regime", ["full", "residual"])
def test_residual_freezes_theta_out_of_the_optimizer_and_the_per_task_gradient_path(pretrained, regime):
    config = tiny_config("pcgrad")
    source = load_run(pretrained["pcgrad"]).model
    method = make_method("pcgrad", config, 1, 1)
    spec = next(s for s in build_suite("cartpole10") if s.name == HOLDOUT)
    agent = PPO(config, method, make_vec_env([spec], 2, seed=1), seed=1, init_model=initialiser(regime, method, source))
    shared = shared_parameters(agent.model.networks())
    optimized = {id(p) for group in agent.optimizer.param_groups for p in group["params"]}
    replicas = agent._replicas()
    if regime == "residual":
        assert not any(p.requires_grad or id(p) in optimized for p in shared.values())
        assert replicas is None
    else:
        assert all(p.requires_grad and id(p) in optimized for p in shared.values())
        assert set(replicas) == set(shared)
    assert len(optimized) == sum(p.requires_grad for p in agent.model.parameters())


def test_full_starts_from_the_pretrained_theta_and_its_zero_shot_return(tmp_path, pretrained):
    config = tiny_config("varshare")
    source = load_run(pretrained["varshare"]).model
    method = make_method("varshare", config, 1, 1)
    spec = next(s for s in build_suite("cartpole10") if s.name == HOLDOUT)
    agent = PPO(config, method, make_vec_env([spec], 2, seed=1), seed=1,
                init_model=initialiser("full", method, source))
    start = agent.model.state_dict()
    assert all(torch.equal(start[n], p) for n, p in theta(source.state_dict(), source).items())  # θ at step 0
    zero_shot = evaluate(agent.model, lambda n: make_vec_env([spec], n, seed=derived_seed(1, 1, 0)), 2)

    adapt(pretrained["varshare"], HOLDOUT, "full", tmp_path / "full")
    rows = eval_returns(tmp_path / "full")
    assert rows[0] == (HOLDOUT, 0, mean_or_nan(zero_shot.returns[0]))  # the logged zero-shot return
    final = torch.load(tmp_path / "full/checkpoint.pt", weights_only=False)["model"]
    assert any(not torch.equal(final[n], p) for n, p in theta(source.state_dict(), source).items())  # θ trains


def test_interrupted_adaptation_resumes_to_the_uninterrupted_result(tmp_path, pretrained, monkeypatch):
    overrides = {"total_steps_per_task": 96, "checkpoint.every_steps": 32}  # a resume.pt every iteration
    adapt(pretrained["pcgrad"], HOLDOUT, "residual", tmp_path / "reference", overrides=overrides)

    iterate, calls = PPO.iterate, []

    def crash_in_third_iteration(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return iterate(self)

    monkeypatch.setattr(PPO, "iterate", crash_in_third_iteration)
    with pytest.raises(KeyboardInterrupt):
        adapt(pretrained["pcgrad"], HOLDOUT, "residual", tmp_path / "killed", overrides=overrides)
    assert torch.load(tmp_path / "killed/resume.pt", weights_only=False)["iteration"] == 2
    monkeypatch.setattr(PPO, "iterate", iterate)
    adapt(pretrained["pcgrad"], HOLDOUT, "residual", tmp_path / "killed", overrides=overrides)
    assert "resumed from" in (tmp_path / "killed/progress.log").read_text()
    assert (tmp_path / "killed/metrics.csv").read_text() == (tmp_path / "reference/metrics.csv").read_text()
    final, reference = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=False)["model"] for d in ("killed", "reference"))
    assert all(torch.equal(final[k], reference[k]) for k in reference)


def test_scratch_ignores_the_pretrained_weights(tmp_path, pretrained):
    other = tmp_path / "other-pretrained"  # the same run with different weights
    shutil.copytree(pretrained["varshare"], other)
    state = torch.load(other / "checkpoint.pt", weights_only=False)
    state["model"] = {k: v + 1.0 for k, v in state["model"].items()}
    torch.save(state, other / "checkpoint.pt")
    for source, out in ((pretrained["varshare"], "a"), (other, "b")):
        adapt(source, HOLDOUT, "scratch", tmp_path / out)
    spec = next(s for s in build_suite("cartpole10") if s.name == HOLDOUT)
    train(tiny_config("varshare"), [spec], "varshare", 1, tmp_path / "fresh")
    assert eval_returns(tmp_path / "a") == eval_returns(tmp_path / "b") == eval_returns(tmp_path / "fresh")


def test_residual_is_skipped_without_shared_parameters(tmp_path, pretrained):
    out = tmp_path / "residual"
    summary = adapt(pretrained["independent"], HOLDOUT, "residual", out)
    assert summary["skipped"] == NO_SHARED_PARAMETERS == "skipped: no shared parameters"
    assert [p.name for p in out.iterdir()] == ["done.json"]
    assert json.loads((out / "done.json").read_text())["skipped"] == NO_SHARED_PARAMETERS


# --- the unseen-task initialisation of each method -------------------------------------------------
def unseen(method_name: str, **overrides):
    """(pretrained model with random weights, M = 2; new model for one task after the hook; the new
    model's fresh initialisation)."""
    config = tiny_config(method_name, **overrides)
    pretrained = build_model(method_name, config, 2)
    randomise_(pretrained, seed=3)
    torch.manual_seed(7)
    model = build_model(method_name, config, 1)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    make_method(method_name, config, 1, 0).unseen_task_parameters(pretrained.networks(), model.networks())
    return pretrained, model, fresh


@pytest.mark.parametrize("method", ["varshare", "hard_sharing", "l2_soft", "pcgrad"])
def test_unseen_task_copies_theta_and_keeps_the_fresh_task_parameters(method):
    pretrained, model, fresh = unseen(method)
    shared = shared_parameters(pretrained.networks())
    for name, param in model.state_dict().items():
        assert torch.equal(param, shared[name] if name in shared else fresh[name]), name
    if method == "varshare":
        layers = [m for m in model.modules() if hasattr(m, "mu_weight")]
        assert layers and all(torch.equal(m.mu_weight, torch.zeros_like(m.mu_weight)) for m in layers)
        assert all(torch.equal(m.rho_weight, torch.full_like(m.rho_weight, -5.0)) for m in layers)


def test_unseen_task_of_contextual_is_the_mean_embedding():
    pretrained, model, _ = unseen("contextual")
    for trained, new in ((pretrained.actor, model.actor), (pretrained.critic, model.critic)):
        expected = F.normalize(trained.task_embedding, dim=-1).mean(dim=0, keepdim=True)
        assert torch.equal(new.task_embedding, expected)
    shared = shared_parameters(pretrained.networks())
    assert shared and all(torch.equal(p, shared[n]) for n, p in shared_parameters(model.networks()).items())


def test_unseen_task_of_independent_is_the_mean_network():
    pretrained, model, _ = unseen("independent")
    trained = dict(pretrained.named_parameters())
    assert all(torch.equal(p, trained[n].mean(dim=0, keepdim=True)) for n, p in model.named_parameters())


# --- analysis -------------------------------------------------------------------------------------
def test_steps_to_threshold_of_a_hand_made_curve():
    steps = np.array([0, 100, 200, 300])
    assert steps_to_threshold(steps, np.array([10, 480, 300, 500]), 475) == (100, False)  # first crossing
    assert steps_to_threshold(steps, np.array([500, 10, 10, 10]), 475) == (0, False)  # zero-shot
    assert steps_to_threshold(steps, np.array([10, 20, 474.9, 30]), 475) == (300, True)  # censored: budget


def test_regime_summary_counts_censored_runs_as_the_budget():
    curve = {  # (regime, holdout, seed) -> returns at steps 0, 100, 200
        ("full", "a", 0): [100, 480, 500], ("full", "a", 1): [100, 200, 490],
        ("full", "b", 0): [0, 0, 0], ("full", "b", 1): [0, 500, 500],
    }
    curves = pd.DataFrame([{"algo": "ppo", "method": "varshare", "regime": r, "holdout": h, "seed": s, "step": step,
                            "score": v}
                           for (r, h, s), values in curve.items() for step, v in zip((0, 100, 200), values)])
    runs = run_table(curves, 475)
    assert list(runs.columns[:5]) == ["algo", "method", "regime", "holdout", "seed"] and set(runs["algo"]) == {"ppo"}
    assert runs["steps_to_threshold"].tolist() == [100, 200, 200, 100]
    assert runs["censored"].tolist() == [False, False, True, False]
    assert runs["zero_shot_score"].tolist() == [100, 100, 0, 0]
    row = regime_summary(runs, seed=0, reps=200).iloc[0]
    assert (row["algo"], row["method"], row["regime"]) == ("ppo", "varshare", "full")
    assert row["steps_to_threshold"] == 150 and row["num_censored"] == 1 and row["budget"] == 200
    assert row["steps_to_threshold_ci_low"] <= 150 <= row["steps_to_threshold_ci_high"]


def adaptation_run(root: Path, algo: str, method: str, regime: str, returns=None, skipped=None) -> Path:
    """An adaptation run directory of held-out task "moon", seed 0, as `varshare adapt` writes it:
    ``returns`` at steps 0 and 100 (success rates: return / 500), or only a done.json with the
    ``skipped`` reason."""
    run = f"cartpole10/{algo}/{method}/seed0/holdout-moon/{regime}"
    out = root / algo / method / regime
    out.mkdir(parents=True)
    done = {"run": run, "algo": algo, "method": method, "seed": 0, "holdout": "moon", "adaptation": {"regime": regime}}
    if skipped:
        done["skipped"] = skipped
    else:
        table = MetricsTable(run, algo, method, 0)
        for step, value in zip((0, 100), returns):
            table.add_many("moon", step, {"eval_return": value, "eval_success": value / 500})
        table.save(out / "metrics.csv")
    (out / "done.json").write_text(json.dumps(done))
    return out


def test_loo_tables_and_figure_keep_algorithms_apart(tmp_path, monkeypatch, capsys):
    runs = [adaptation_run(tmp_path, "ppo", "varshare", "full", [100, 500]),
            adaptation_run(tmp_path, "sac", "varshare", "full", [0, 400]),  # same method, seed, task: another algo
            adaptation_run(tmp_path, "ppo", "independent", "residual", skipped="skipped: no shared parameters"),
            adaptation_run(tmp_path, "sac", "independent", "residual", skipped="skipped: no shared parameters")]
    out = tmp_path / "loo"
    summary = write_loo_results(runs, "cartpole10", 475, out, reps=20)
    assert summary["algos"] == ["ppo", "sac"] and summary["methods"] == ["independent", "varshare"]
    table = pd.read_csv(out / "loo_runs.csv")
    assert [(r.algo, r.method, r.steps_to_threshold, r.censored) for r in table.itertuples()] == [
        ("ppo", "varshare", 100, False), ("sac", "varshare", 100, True)]
    assert pd.read_csv(out / "loo_summary.csv")[["algo", "method", "regime"]].values.tolist() == [
        ["ppo", "varshare", "full"], ["sac", "varshare", "full"]]
    assert pd.read_csv(out / "loo_skipped.csv")[["algo", "method"]].values.tolist() == [
        ["ppo", "independent"], ["sac", "independent"]]

    saved = {}
    monkeypatch.setattr(figures, "save_figure", lambda figure, path, dpi=200: saved.update({Path(path).name: figure}))
    command = ["loo-figure", "--results", str(out), "--title", "t", "--png", "x.png", "--pdf", "x.pdf"]

    def panels():
        axes = [ax for ax in saved["x.png"].axes if ax.get_title().endswith("steps to threshold")]
        return [ax.get_title().removesuffix(": steps to threshold") for ax in axes]

    assert main(command) == 0
    assert panels() == ["independent (PPO)", "independent (SAC)", "varshare (PPO)", "varshare (SAC)"]
    assert main([*command, "--algo", "sac"]) == 0
    assert panels() == ["independent", "varshare"]
    curve = next(ax for ax in saved["x.png"].axes if ax.get_title().startswith("varshare: learning"))
    drawn = [list(line.get_ydata()) for line in curve.get_lines()]
    assert [0.0, 400.0] in drawn and [100.0, 500.0] not in drawn  # sac's run only
    capsys.readouterr()
    assert main([*command, "--algo", "a2c"]) == 2
    assert "no leave-one-out runs of algo 'a2c'" in capsys.readouterr().err

    done = json.loads((runs[0] / "done.json").read_text())
    del done["algo"]
    (runs[0] / "done.json").write_text(json.dumps(done))
    with pytest.raises(RunDirectoryError, match="no 'algo'"):
        load_loo_runs(runs)


def test_the_success_metric_scores_runs_by_their_success_rate(tmp_path, monkeypatch):
    runs = [adaptation_run(tmp_path, "sac", "varshare", "full", [100, 475]),  # success 0.2 then 0.95
            adaptation_run(tmp_path, "sac", "varshare", "scratch", [0, 400])]  # 0 then 0.8
    summary = write_loo_results(runs, "cartpole10", 0.9, tmp_path / "loo", reps=20, metric="success")
    assert (summary["metric"], summary["metric_column"], summary["threshold"]) == ("success", "eval_success", 0.9)
    table = pd.read_csv(tmp_path / "loo/loo_runs.csv").set_index("regime")
    assert table.loc["full", ["zero_shot_score", "final_score"]].tolist() == [0.2, 0.95]
    assert (table.loc["full", "steps_to_threshold"], table.loc["full", "censored"]) == (100, False)
    assert (table.loc["scratch", "steps_to_threshold"], table.loc["scratch", "censored"]) == (100, True)
    assert json.loads((tmp_path / "loo/loo.json").read_text())["metric"] == "success"

    saved = {}
    monkeypatch.setattr(figures, "save_figure", lambda figure, path, dpi=200: saved.update({Path(path).name: figure}))
    assert main(["loo-figure", "--results", str(tmp_path / "loo"), "--title", "t", "--png", "x.png",
                 "--pdf", "x.pdf"]) == 0
    curve, steps = saved["x.png"].axes[:2]
    assert curve.get_ylabel() == "success rate (held-out task)" and curve.get_ylim() == (-0.03, 1.03)
    assert steps.get_xlabel().startswith("env steps to success rate ≥ 0.9")
    assert [t.get_text() for t in curve.get_legend().get_texts()] == ["scratch (n=1, zero-shot 0.00)",
                                                                     "full (n=1, zero-shot 0.20)"]
    with pytest.raises(ValueError, match="unknown leave-one-out metric 'succes'; allowed: return, success"):
        write_loo_results(runs, "cartpole10", 0.9, tmp_path / "bad", metric="succes")


SAC_TINY = {"total_steps_per_task": 64, "envs_per_task": 1, "sac.learning_starts": 16, "sac.steps_per_iteration": 16,
            "sac.batch_per_task": 8, "sac.buffer_size": 100, "eval.every_steps": 32, "eval.episodes": 1,
            "checkpoint.every_steps": 32, "network.hidden_sizes": [16, 16]}


def test_sac_pretrained_runs_adapt_under_every_regime_and_residual_freezes_theta(tmp_path):
    config = load_config(REPO / "configs/cartpole10_sac.yaml",
                         {**SAC_TINY, "methods": ["varshare"], "seeds": [1], "holdout": HOLDOUT})
    train(config, TASKS, "varshare", 1, tmp_path / "pretrain")
    source = load_run(tmp_path / "pretrain").model
    before = theta(source.state_dict(), source)
    assert {name.split(".")[0] for name in before} == {"actor", "q1", "q2"}
    for regime in ("scratch", "full", "residual"):
        summary = adapt(tmp_path / "pretrain", HOLDOUT, regime, tmp_path / regime)
        assert (summary["algo"], summary["adaptation"]["regime"], summary["holdout"]) == ("sac", regime, HOLDOUT)
        assert {task for task, _, _ in eval_returns(tmp_path / regime)} == {HOLDOUT}
    residual = theta(torch.load(tmp_path / "residual/checkpoint.pt", weights_only=False)["model"], source)
    assert all(torch.equal(before[name], residual[name]) for name in before)  # θ frozen
    full = theta(torch.load(tmp_path / "full/checkpoint.pt", weights_only=False)["model"], source)
    assert any(not torch.equal(before[name], full[name]) for name in before)  # θ trains


# --- the pipeline ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_dag_builds_the_loo_figure_of_every_suite_into_figures_all(tmp_path):
    copy_checkout(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "2", "figures/all",
                             "--configfile", "configs/smoke.yaml"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    all_rule = result.stdout[result.stdout.index("rule study_manifest:"):]
    all_inputs = all_rule[all_rule.index("input:"):].splitlines()[0]
    # one figure per suite and algorithm: PPO varshare on CartPole-10 and LunarLander-20, SAC
    # hard_sharing on MT10 (the suite's own algorithm and method)
    for suite, algo, method, holdout in (("cartpole10", "ppo", "varshare", "moon"),
                                         ("lunarlander20", "ppo", "varshare", "earth-windy"),
                                         ("mt10", "sac", "hard_sharing", "reach-v3")):
        assert f"figures/loo_{suite}_{algo}.png" in all_inputs
        assert f"data/results/{suite}/loo/loo_summary.csv" in all_inputs
        for stage in ("pretrain", "scratch", "full", "residual"):
            assert f"data/runs/{suite}/loo/{algo}/{method}/{holdout}/seed0/{stage}/done.json" in result.stdout
    assert "varshare loo-aggregate --suite mt10 --metric success --threshold 0.9" in result.stdout
    assert "varshare loo-aggregate --suite lunarlander20 --metric return --threshold 200" in result.stdout
