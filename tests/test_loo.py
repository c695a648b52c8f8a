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
from varshare.algos.ppo import PPO, evaluate, mean_or_nan
from varshare.analysis.loo import regime_summary, run_table, steps_to_threshold
from varshare.config import load_config
from varshare.envs import build_suite, make_vec_env
from varshare.run_loading import load_run
from varshare.loo import NO_SHARED_PARAMETERS, adapt, initialiser
from varshare.methods import make_method
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
    return [(r[3], r[4], r[6]) for r in MetricsTable.load_rows(run / "metrics.csv") if r[5] == "eval_return"]


def theta(state: dict, model) -> dict[str, torch.Tensor]:
    """The shared parameters θ of a model state dict (names from ``model``)."""
    return {name: state[name] for name in model.shared_parameters()}


# --- held-out pretraining ---------------------------------------------------------------------------
def test_holdout_trains_on_the_other_tasks_and_is_recorded_everywhere(pretrained):
    run = pretrained["varshare"]
    assert [t["name"] for t in json.loads((run / "tasks.json").read_text())] == ["default", "heavy-cart-short-pole-high-g"]
    assert {task for task, _, _ in eval_returns(run)} == {s.name for s in TASKS} - {HOLDOUT}
    assert f"holdout: {HOLDOUT}" in (run / "config.yaml").read_text()
    for name in ("manifest.json", "done.json"):
        record = json.loads((run / name).read_text())
        assert record["holdout"] == HOLDOUT and record["run"] == f"cartpole10/varshare/seed1/holdout-{HOLDOUT}"
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
    initial = make_method(method, tiny_config(method), 1, 1).build_model(4, 2, True)
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
    shared = agent.model.shared_parameters()
    optimized = {id(p) for group in agent.optimizer.param_groups for p in group["params"]}
    replicas = agent._replica_parameters()
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
    pretrained = make_method(method_name, config, 2, 0).build_model(4, 2, True)
    randomise_(pretrained, seed=3)
    torch.manual_seed(7)
    model = make_method(method_name, config, 1, 0).build_model(4, 2, True)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    make_method(method_name, config, 1, 0).unseen_task_parameters(pretrained, model)
    return pretrained, model, fresh


@pytest.mark.parametrize("method", ["varshare", "hard_sharing", "l2_soft", "pcgrad"])
def test_unseen_task_copies_theta_and_keeps_the_fresh_task_parameters(method):
    pretrained, model, fresh = unseen(method)
    shared = pretrained.shared_parameters()
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
    shared = pretrained.shared_parameters()
    assert shared and all(torch.equal(p, shared[n]) for n, p in model.shared_parameters().items())


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
    curves = pd.DataFrame([{"method": "varshare", "regime": r, "holdout": h, "seed": s, "step": step, "return": v}
                           for (r, h, s), values in curve.items() for step, v in zip((0, 100, 200), values)])
    runs = run_table(curves, 475)
    assert runs["steps_to_threshold"].tolist() == [100, 200, 200, 100]
    assert runs["censored"].tolist() == [False, False, True, False]
    assert runs["zero_shot_return"].tolist() == [100, 100, 0, 0]
    row = regime_summary(runs, seed=0, reps=200).iloc[0]
    assert row["steps_to_threshold"] == 150 and row["num_censored"] == 1 and row["budget"] == 200
    assert row["steps_to_threshold_ci_low"] <= 150 <= row["steps_to_threshold_ci_high"]


# --- the pipeline ---------------------------------------------------------------------------------
def test_smoke_dag_builds_the_loo_figure_into_figures_all(tmp_path):
    copy_checkout(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "figures/all",
                             "--configfile", "configs/smoke.yaml"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    all_rule = result.stdout[result.stdout.index("rule all:"):]
    all_inputs = all_rule[all_rule.index("input:"):].splitlines()[0]
    assert "figures/loo_cartpole10.png" in all_inputs and "data/results/cartpole10/loo/loo_summary.csv" in all_inputs
    for regime in ("scratch", "full", "residual"):
        assert f"data/runs/cartpole10/loo/varshare/moon/seed0/{regime}/done.json" in result.stdout
