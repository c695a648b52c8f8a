"""`varshare train`: the run directory's contents, validation before start, reproducibility."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from varshare.cli import main
from varshare.envs import build_suite, specs_to_json
from varshare.run_io import METRIC_COLUMNS, MetricsTable

TINY = ["--set", "total_steps_per_task=96", "--set", "envs_per_task=2", "--set", "ppo.num_steps=16",
        "--set", "ppo.num_minibatches=2", "--set", "eval.every_steps=64", "--set", "eval.episodes=2",
        "--set", "network.hidden_sizes=[16,16]"]


def train(tmp_path: Path, out: str, method: str = "varshare", *extra: str) -> subprocess.CompletedProcess:
    tasks = tmp_path / "tasks.json"
    tasks.write_text(specs_to_json(build_suite("cartpole10")[:3]))
    return subprocess.run(
        [sys.executable, "-m", "varshare.cli", "train", "--config", "configs/cartpole10_ppo.yaml",
         "--suite", "cartpole10", "--method", method, "--seed", "3", "--out", str(tmp_path / out),
         "--tasks", str(tasks), *TINY, *extra],
        capture_output=True, text=True,
    )


@pytest.mark.slow
def test_run_directory_holds_config_manifest_metrics_checkpoint_and_marker(tmp_path):
    result = train(tmp_path, "run")
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {
        "config.yaml", "manifest.json", "tasks.json", "metrics.csv", "progress.log", "checkpoint.pt", "done.json"}
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["methods"] == ["varshare"] and config["seeds"] == [3] and config["ppo"]["num_steps"] == 16
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest["versions"]) >= {"varshare", "torch", "gymnasium", "metaworld", "mujoco"}
    assert len(manifest["task_specs_sha256"]) == 64 and manifest["git_commit"]
    assert config["algo"] == "ppo"  # the default algorithm, recorded in every file
    assert (manifest["algo"], manifest["method"], manifest["seed"]) == ("ppo", "varshare", 3)
    assert manifest["run"] == "cartpole10/ppo/varshare/seed3"
    rows = MetricsTable.load_rows(run / "metrics.csv")
    assert (run / "metrics.csv").read_text().splitlines()[0] == ",".join(METRIC_COLUMNS)
    assert METRIC_COLUMNS[:4] == ("run", "algo", "method", "seed")
    assert {r[:4] for r in rows} == {("cartpole10/ppo/varshare/seed3", "ppo", "varshare", 3)}
    eval_steps = sorted({r[5] for r in rows if r[6] == "eval_return"})
    assert eval_steps == [0, 64, 96]  # start, every 64 steps per task, and the end
    tasks = {r[4] for r in rows if r[6] == "eval_return"}
    assert tasks == {s.name for s in build_suite("cartpole10")[:3]}
    update_metrics = {r[6] for r in rows if r[4] == "all"}
    assert {"policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "kl",
            "ratio_first_minibatch", "logprob_replay_error"} <= update_metrics
    assert any(m.startswith("sigma_mean/") for m in update_metrics)
    assert "sps" in (run / "progress.log").read_text() and "sps" in result.stdout
    done = json.loads((run / "done.json").read_text())
    assert done["steps_per_task"] == 96 and done["iterations"] == 3
    assert (done["run"], done["algo"], done["method"], done["seed"]) == ("cartpole10/ppo/varshare/seed3", "ppo",
                                                                         "varshare", 3)


@pytest.mark.slow
def test_same_seed_twice_gives_identical_metrics(tmp_path):
    assert train(tmp_path, "a", "pcgrad").returncode == 0
    assert train(tmp_path, "b", "pcgrad", "--algo", "ppo").returncode == 0  # the default, given explicitly
    assert (tmp_path / "a/metrics.csv").read_text() == (tmp_path / "b/metrics.csv").read_text()


@pytest.mark.parametrize("bad, message", [
    (["--set", "ppo.gamma=1.5"], "ppo.gamma"),
    (["--set", "ppo.learning_rat=0.1"], "did you mean 'learning_rate'"),
    (["--set", "ppo.num_minibatches=5"], "num_minibatches"),
])
def test_bad_config_fails_before_anything_is_written(tmp_path, bad, message):
    result = train(tmp_path, "run", "varshare", *bad)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


def test_unknown_algorithm_is_refused_before_anything_is_written(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--config", "configs/cartpole10_ppo.yaml", "--suite", "cartpole10", "--algo", "a2c",
              "--method", "varshare", "--seed", "0", "--out", str(tmp_path / "run")])
    assert exited.value.code == 2
    assert re.search(r"argument --algo: invalid choice: 'a2c' \(choose from '?ppo'?, '?sac'?\)", capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_a_new_user_s_mistakes_get_a_short_clear_message(tmp_path, capsys):
    """The mistakes of a first session (issue 17): each is a message, not a traceback."""
    run = ["--method", "varshare", "--seed", "0", "--out", str(tmp_path / "run")]
    assert main(["train", "--config", "missing.yaml", "--suite", "cartpole10", *run]) == 2
    assert "invalid experiment config (missing.yaml): 1 problem\n  - cannot read it: No such file or directory" in \
        capsys.readouterr().err
    assert main(["check-config", str(tmp_path)]) == 2
    assert "is a directory; give an experiment config YAML file" in capsys.readouterr().err
    # a LunarLander config with --suite cartpole10 would train CartPole with LunarLander's hyperparameters
    assert main(["train", "--config", "configs/lunarlander20_ppo.yaml", "--suite", "cartpole10", *run]) == 2
    assert ("--suite cartpole10 contradicts the config's suite lunarlander20 (configs/lunarlander20_ppo.yaml)"
            in capsys.readouterr().err)
    assert not (tmp_path / "run").exists()
    assert main(["summarize", str(tmp_path / "nowhere")]) == 1
    assert "no such run directory" in capsys.readouterr().out


def test_a_budget_that_is_not_whole_iterations_is_announced():
    from varshare.train import budget_warning

    assert budget_warning(512, 16_384, 1) == ("total_steps_per_task = 512 is less than one iteration (16384 env "
                                              "steps per task): training one whole iteration, 16384 steps per task")
    assert budget_warning(50_000, 512, 97) == ("total_steps_per_task = 50000 is not a whole number of iterations of "
                                               "512 steps: training 49664 steps per task")
    assert budget_warning(1024, 512, 2) is None


@pytest.mark.parametrize("config, algo", [("configs/cartpole10_ppo.yaml", "sac"), ("configs/cartpole10_sac.yaml", "ppo")])
def test_an_algo_that_contradicts_the_config_is_refused(tmp_path, capsys, config, algo):
    """Another algorithm's experiment config would train with default hyperparameters: refused."""
    assert main(["train", "--config", config, "--suite", "cartpole10", "--algo", algo, "--method", "varshare",
                 "--seed", "0", "--out", str(tmp_path / "run")]) == 2
    other = "ppo" if algo == "sac" else "sac"
    assert f"--algo {algo} contradicts the config's algo {other} ({config})" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
