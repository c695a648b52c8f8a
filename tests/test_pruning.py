"""Post-training pruning of the variational residual means: counts, bytes, returns, CLI."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml

from varshare.algos.ppo import ActorCritic
from varshare.cli import main
from varshare.config import load_config
from varshare.envs import build_suite, make_vec_env, specs_to_json
from varshare.eval.evaluate import evaluate
from varshare.eval.pruning import (PRUNING_COLUMNS, PruningError, final_eval_seed, prune_residuals,
                                   prune_sweep, residual_counts, variational_layers)
from varshare.methods import make_method
from varshare.nn import affine
from varshare.run_loading import load_run
from varshare.run_io import MetricsTable
from varshare.train import train

SPECS = build_suite("cartpole10")[:2]
CONFIG = load_config("configs/cartpole10_ppo.yaml", {"network.hidden_sizes": [3], "eval.episodes": 2})


def constructed_model(method: str = "varshare"):
    """A CartPole actor-critic (4 → 3 → 2 / 4 → 3 → 1, 2 tasks) whose residual means are all 0
    except: task 0 actor.layers.0 weights 0.5, -0.05, 0.005; task 1 critic.layers.1 bias -0.5."""
    torch.manual_seed(0)
    model = ActorCritic(make_method(method, CONFIG, 2, 0), 4, 2, True, CONFIG.network)
    layers = variational_layers(model)
    if layers:
        with torch.no_grad():
            for layer in layers.values():
                layer.mu_weight.zero_()
                layer.mu_bias.zero_()
            actor0 = layers["actor.layers.0"].mu_weight
            actor0[0, 0, 0], actor0[0, 1, 2], actor0[0, 2, 3] = 0.5, -0.05, 0.005
            layers["critic.layers.1"].mu_bias[1, 0] = -0.5
    return model


#: residual entries per task: actor (4·3+3) + (3·2+2) = 23, critic (4·3+3) + (3·1+1) = 19
N_ACTOR, N_TOTAL = 23, 42


def test_counts_and_pruning_by_hand():
    model = constructed_model()
    counts = residual_counts(model, 0.0)
    assert counts.total == N_TOTAL and counts.total_actor == N_ACTOR
    assert counts.kept.tolist() == [N_TOTAL, N_TOTAL]  # ε = 0 keeps every entry, zeros included

    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    counts = prune_residuals(model, 0.01)
    assert counts.kept.tolist() == [2, 1] and counts.kept_actor.tolist() == [2, 0]
    actor0 = model.actor.layers[0].mu_weight
    assert actor0[0, 0, 0] == 0.5 and actor0[0, 1, 2] == -0.05 and actor0[0, 2, 3] == 0  # |0.005| < 0.01
    assert model.critic.layers[1].mu_bias[1, 0] == -0.5
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert changed == {"actor.layers.0.mu_weight"}  # σ (ρ) untouched: the mean strategy ignores it
    assert residual_counts(model, 0.01).kept.tolist() == [2, 1]

    model = constructed_model()
    unchanged = {k: v.clone() for k, v in model.state_dict().items()}
    prune_residuals(model, 0.0)
    assert all(torch.equal(v, unchanged[k]) for k, v in model.state_dict().items())

    with pytest.raises(ValueError, match="eps"):
        prune_residuals(model, -1.0)
    with pytest.raises(PruningError, match="no VariationalResidualLinear"):
        prune_residuals(constructed_model("hard_sharing"), 0.1)


def test_huge_eps_keeps_nothing_and_leaves_the_shared_theta_policy():
    model = constructed_model()
    with torch.no_grad():  # make every residual mean non-zero and large-ish
        for layer in variational_layers(model).values():
            layer.mu_weight.normal_(0, 0.3)
            layer.mu_bias.normal_(0, 0.3)
    counts = prune_residuals(model, 1e9)
    assert counts.kept.sum() == 0 and counts.kept_actor.sum() == 0
    obs = torch.randn(2, 5, 4)
    h = obs
    for i, layer in enumerate(model.actor.layers):  # θ only
        h = affine(h, layer.theta_weight, layer.theta_bias)
        h = torch.tanh(h) if i == 0 else h
    assert all(not layer.mu_weight.any() and not layer.mu_bias.any() for layer in variational_layers(model).values())
    with torch.no_grad():
        logits = model(obs, None).logits
    torch.testing.assert_close(logits, h)  # θ + 0 vs θ: equal up to the matmul kernels' rounding
    assert torch.equal(logits.argmax(-1), h.argmax(-1))


def write_run(directory, model, method: str = "varshare") -> None:
    """A run directory holding ``model`` as the final checkpoint (no training needed)."""
    directory.mkdir()
    (directory / "config.yaml").write_text(yaml.safe_dump(CONFIG.to_dict(), sort_keys=False))
    (directory / "tasks.json").write_text(specs_to_json(SPECS))
    (directory / "manifest.json").write_text(json.dumps({"run": f"cartpole10/ppo/{method}/seed0", "algo": "ppo",
                                                         "method": method, "seed": 0}))
    torch.save({"model": model.state_dict()}, directory / "checkpoint.pt")


def table(rows):
    return {(r[4], r[5], r[6]): r[7] for r in rows}


def test_sweep_reports_kept_fraction_bytes_and_returns(tmp_path):
    write_run(tmp_path / "run", constructed_model())
    rows = prune_sweep(tmp_path / "run", [0.01, 1e9])
    assert all(len(r) == len(PRUNING_COLUMNS) for r in rows)
    assert sorted({r[4] for r in rows}) == [0.0, 0.01, 1e9]  # ε = 0 (unpruned) always included
    t = table(rows)
    a, b = (s.name for s in SPECS)
    # ε = 0.01: task a keeps 2 entries (actor), task b 1 (critic)
    assert t[0.01, a, "kept_fraction"] == 2 / N_TOTAL and t[0.01, b, "kept_fraction"] == 1 / N_TOTAL
    assert t[0.01, "all", "kept_fraction"] == 3 / (2 * N_TOTAL)
    assert t[0.01, "all", "kept_fraction_actor"] == 2 / (2 * N_ACTOR)
    assert t[0.01, a, "task_bytes_sparse"] == 16 and t[0.01, b, "task_bytes_sparse"] == 8
    assert t[0.01, "all", "task_bytes_sparse"] == 12 and t[0.01, "all", "task_bytes_sparse_actor"] == 8
    assert t[0.01, "all", "task_bytes_dense"] == 4 * N_TOTAL and t[0.01, "all", "task_bytes_dense_actor"] == 4 * N_ACTOR
    assert t[0.0, "all", "kept_fraction"] == 1 and t[0.0, "all", "task_bytes_sparse"] == 8 * N_TOTAL
    assert t[1e9, "all", "kept_fraction"] == 0 and t[1e9, "all", "task_bytes_sparse"] == 0

    # ε = 0 is the unpruned model's evaluation, exactly; 1e9 the θ-only model's; same env seed for all
    run = load_run(tmp_path / "run")
    seed = final_eval_seed(run)
    make_env = lambda n: make_vec_env(SPECS, n, seed=seed)  # noqa: E731
    unpruned = evaluate(run.model, make_env, 2)
    prune_residuals(run.model, 1e9)
    theta_only = evaluate(run.model, make_env, 2)
    for m, name in enumerate((a, b)):
        assert t[0.0, name, "eval_return"] == sum(unpruned.returns[m]) / 2
        assert t[0.0, name, "eval_length"] == sum(unpruned.lengths[m]) / 2
        assert t[1e9, name, "eval_return"] == sum(theta_only.returns[m]) / 2
    assert t[0.0, "all", "eval_return_mean"] == (t[0.0, a, "eval_return"] + t[0.0, b, "eval_return"]) / 2

    assert prune_sweep(tmp_path / "run", [1e9]) == [r for r in rows if r[4] != 0.01]  # deterministic


def test_runs_without_variational_residuals_are_refused_clearly(tmp_path, capsys):
    write_run(tmp_path / "run", constructed_model("hard_sharing"), "hard_sharing")
    with pytest.raises(PruningError, match="'hard_sharing'.*no variational residuals"):
        prune_sweep(tmp_path / "run", [0.1])
    assert main(["prune", "--run", str(tmp_path / "run"), "--eps", "0.1"]) == 2
    assert "no variational residuals" in capsys.readouterr().err
    assert not (tmp_path / "run/pruning.csv").exists()
    assert main(["prune", "--run", str(tmp_path / "missing"), "--eps", "0.1"]) == 2
    assert "not a finished run directory" in capsys.readouterr().err


def test_cli_end_to_end_on_a_trained_run(tmp_path, capsys):
    config = load_config("configs/cartpole10_ppo.yaml", {
        "methods": ["varshare"], "seeds": [1], "total_steps_per_task": 64, "envs_per_task": 2,
        "ppo.num_steps": 16, "ppo.num_minibatches": 2, "eval.every_steps": 32, "eval.episodes": 3,
        "network.hidden_sizes": [8]})
    run = tmp_path / "run"
    train(config, SPECS, "varshare", 1, run)
    out = tmp_path / "sweep/pruning.csv"
    assert main(["prune", "--run", str(run), "--eps", "1e-3", "0", "1e9", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with open(out, newline="") as handle:
        reader = csv.reader(handle)
        assert tuple(next(reader)) == PRUNING_COLUMNS
        rows = [(r[0], r[1], r[2], int(r[3]), float(r[4]), r[5], r[6], float(r[7])) for r in reader]
    assert {r[:4] for r in rows} == {("cartpole10/ppo/varshare/seed1", "ppo", "varshare", 1)}
    t = table(rows)
    assert sorted({r[4] for r in rows}) == [0.0, 1e-3, 1e9]
    # ε = 0 reproduces the run's final evaluation (same env seed and episodes by default)
    final = {(r[4], r[6]): r[7] for r in MetricsTable.load_rows(run / "metrics.csv") if r[5] == 64}
    for spec in SPECS:
        assert t[0.0, spec.name, "eval_return"] == final[spec.name, "eval_return"]
        assert t[0.0, spec.name, "eval_success"] == final[spec.name, "eval_success"]
    assert t[0.0, "all", "eval_return_mean"] == final["all", "eval_return_mean"]
    assert t[0.0, "all", "kept_fraction"] == 1.0
    assert 0.0 <= t[1e-3, "all", "kept_fraction"] <= 1.0
    assert t[1e9, "all", "kept_fraction"] == 0.0 and t[1e9, "all", "task_bytes_sparse"] == 0.0
    # --episodes / --eval-seed change the evaluation, not the counts; default output beside the run
    assert main(["prune", "--run", str(run), "--eps", "1e9", "--episodes", "1", "--eval-seed", "4"]) == 0
    with open(run / "pruning.csv", newline="") as handle:
        other = {(float(r["eps"]), r["task"], r["metric"]): float(r["value"]) for r in csv.DictReader(handle)}
    assert other[1e9, "all", "kept_fraction"] == 0.0 and other[0.0, "all", "kept_fraction"] == 1.0
