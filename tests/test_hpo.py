"""Hyperparameter optimisation (varshare.hpo): search spaces, the objective, and real Optuna studies
on two CartPole tasks (determinism, pruning, divergence, parallel workers, a killed worker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from varshare.cli import main
from varshare.config import ConfigError, load_config
from varshare.envs import build_suite, specs_to_json
from varshare.hpo.objective import ScoreRange, random_returns, score_range
from varshare.hpo.report import write_report
from varshare.hpo.space import SpaceFile, check_space, load_space_file, overrides_of, study_space
from varshare.hpo.spec import StudySettings, StudySpec, build_study_spec
from varshare.hpo.study import create_study, load_study, run_worker
from varshare.pipeline_config import load_pipeline_config

REPO = Path(__file__).resolve().parents[1]
TASKS = build_suite("cartpole10")[:2]
#: a trial of two CartPole tasks: 4 PPO iterations of 256 steps per task, evaluated at 512 and 1024
TRIAL = {"methods": ["varshare"], "seeds": [0], "total_steps_per_task": 1024, "ppo.num_steps": 64,
         "ppo.learning_rate": 2.5e-3, "network.hidden_sizes": [32, 32], "eval.every_steps": 512,
         "eval.episodes": 4, "eval.sample_strategies": []}
SPACE = {"algos": {"ppo": {"ppo.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}},
         "methods": {"varshare": {"varshare.beta": {"type": "float", "low": 0.01, "high": 10.0, "log": True}}}}


def trial_config(**changes):
    return load_config(REPO / "configs/cartpole10_ppo.yaml", {**TRIAL, **changes})


def make_study(directory: Path, space=SPACE, enqueue=(), **settings) -> StudySpec:
    """Create a study of varshare on TASKS in ``directory``; ``enqueue``: parameter sets queued after
    the default trial."""
    space, problems = study_space(SpaceFile.model_validate(space), "ppo", "varshare")
    assert not problems
    scores = ScoreRange("cartpole10", "return", 500.0, {t.name: 20.0 for t in TASKS}, 1, 0)
    spec = build_study_spec(trial_config(), "varshare", StudySettings(**settings), space, scores)
    assert create_study(directory, spec)
    study, _ = load_study(directory, spec)
    for params in enqueue:
        study.enqueue_trial(params)
    return spec


def trials_of(directory: Path, spec: StudySpec) -> list[optuna.trial.FrozenTrial]:
    return load_study(directory, spec)[0].get_trials()


# -- search spaces -------------------------------------------------------------------------------------


def space_problems(entries: dict, config=None) -> list[str]:
    space, problems = study_space(SpaceFile.model_validate({"algos": {"ppo": entries}}), "ppo", "varshare")
    return problems + (check_space(space, config or trial_config(), "s") if space and not problems else [])


@pytest.mark.parametrize("entry, message", [
    ({"ppo.gamma": {"type": "flot", "low": 0.9, "high": 0.99}},
     "got 'flot'; a dimension is one of {type: float, low: L, high: H"),
    ({"ppo.gamma": {"type": "float", "low": 0.99, "high": 0.9}}, "low = 0.99 must be below high = 0.9"),
    ({"ppo.ent_coef": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "log = true needs low > 0"),
    ({"ppo.gamma": {"type": "float", "low": 0.9}}, "['ppo.gamma'].high: missing required key; must be a finite number"),
    ({"ppo.gamma": {"type": "float", "low": 0.9, "high": 0.99, "lo": 1}}, "unknown key 'lo'"),
    ({"ppo.num_minibatches": {"type": "categorical", "choices": []}}, "choices"),
    ({"ppo.learnin_rate": {"type": "float", "low": 1e-4, "high": 1e-2}},
     "'ppo.learnin_rate' is not a key of the experiment config; did you mean 'ppo.learning_rate'?"),
    ({"ppo": {"type": "int", "low": 1, "high": 3}}, "'ppo' is a section of the experiment config, not a value"),
    ({"total_steps_per_task": {"type": "int", "low": 1, "high": 3}}, "is not a hyperparameter"),
    ({"ppo.gamma": {"type": "float", "low": 0.9, "high": 1.5}},
     "s['ppo.gamma'] = 1.5: ppo.gamma: got 1.5; must be a finite number in [0, 1]"),
    ({"ppo.num_minibatches": {"type": "int", "low": 1, "high": 7}},
     "s['ppo.num_minibatches'] = 7: ppo.num_minibatches = 7 must divide the PPO batch"),
    ({"ppo.ent_coef": {"type": "float", "low": 0.05, "high": 0.1}},
     "the experiment config's value 0.01 is outside the space ([0.05, 0.1])"),
    ({"ppo.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "also": ["ppo.ent_coef"]}},
     "also ties 'ppo.ent_coef' = 0.01 to 'ppo.learning_rate' = 0.0025; tied keys must start equal"),
])
def test_a_bad_search_space_names_the_key_and_the_allowed_forms(entry, message):
    problems = space_problems(entry)
    assert any(message in p for p in problems), problems


def test_an_empty_space_and_a_bad_space_file_are_refused(tmp_path):
    assert space_problems({}) == []  # nothing to parse ...
    assert "the search space is empty" in check_space({}, trial_config(), "s")[0]  # ... and nothing to search
    bad = tmp_path / "space.yaml"
    bad.write_text("algos: {a2c: {}}\nmethod: {}\n")
    with pytest.raises(ConfigError) as error:
        load_space_file(str(bad))
    assert "algos.a2c: unknown key 'a2c'; allowed: 'ppo' or 'sac'" in str(error.value)
    assert "unknown key 'method'; allowed keys: algos, methods" in str(error.value)


def test_the_shipped_space_file_is_valid_for_every_algorithm_and_method():
    space_file = load_space_file(str(REPO / "configs/hpo_space.yaml"))
    for algo, path in (("ppo", "configs/cartpole10_ppo.yaml"), ("sac", "configs/cartpole10_sac.yaml"),
                       ("ppo", "configs/lunarlander20_ppo.yaml"), ("sac", "configs/lunarlander20_sac.yaml")):
        config = load_config(REPO / path)
        for method in config.methods:
            space, problems = study_space(space_file, algo, method)
            assert not problems and not check_space(space, load_config(config.to_dict(), {"methods": [method]}), path)


def test_a_preset_with_a_bad_study_fails_at_load_naming_its_key():
    preset = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())
    preset["hpo"]["studies"]["cartpole10"]["ppo"]["space"] = {"ppo.gamma": {"type": "float", "low": 0.9, "high": 2}}
    preset["hpo"]["studies"]["lunarlander20"] = {"ppo": {"methods": ["varshare"], "set": {"ppo.gama": 0.9}}}
    preset["hpo"]["studies"]["mt10"] = {"ppo": {"methods": ["varshare"]}}  # MT10's PPO config has ent_coef 0
    with pytest.raises(ConfigError) as error:
        load_pipeline_config(preset, REPO)
    text = str(error.value)
    assert "hpo.studies.cartpole10.ppo (varshare): space['ppo.gamma'] = 2.0: ppo.gamma: got 2.0" in text
    assert "hpo.studies.lunarlander20.ppo.set: unknown key 'ppo.gama'" in text and "did you mean 'gamma'?" in text
    assert ("hpo.studies.mt10.ppo (varshare): space['ppo.ent_coef']: the experiment config's value 0.0 is outside "
            "the space ([0.0001, 0.1] log)") in text
    preset = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())
    preset["algos"] = ["ppo"]  # a study of an algorithm the preset leaves out is left out too
    assert load_pipeline_config(preset, REPO)[0].hpo.studies["cartpole10"]["sac"]
    preset["experiments"]["lunarlander20"].pop("sac")
    preset["algos"] = ["ppo", "sac"]
    preset["hpo"]["studies"]["lunarlander20"] = {"sac": {"methods": ["varshare"]}}
    with pytest.raises(ConfigError, match="hpo.studies.lunarlander20.sac: lunarlander20 does not train sac in this "
                                          "preset"):
        load_pipeline_config(preset, REPO)


def test_tied_keys_take_the_sampled_value():
    space, _ = study_space(load_space_file(str(REPO / "configs/hpo_space.yaml")), "sac", "varshare")
    assert overrides_of(space, {"sac.policy_lr": 1e-3})  == {"sac.policy_lr": 1e-3, "sac.q_lr": 1e-3}


# -- the objective ----------------------------------------------------------------------------------------


def test_the_score_normalises_each_task_between_random_and_solved():
    scores = ScoreRange("cartpole10", "return", 500.0, {"a": 20.0, "b": 100.0}, 10, 0)
    # a: (260 - 20) / 480 = 0.5; b: (100 - 100) / 400 = 0 -> mean 0.25
    assert scores.score({"a": 260.0, "b": 100.0}) == pytest.approx(0.25)
    assert scores.score({"a": 500.0, "b": 500.0}) == pytest.approx(1.0)
    assert np.isnan(scores.score({"a": float("nan"), "b": 1.0}))


def test_random_returns_match_a_uniform_policy_on_gymnasium_cartpole():
    import gymnasium as gym

    ours = random_returns(TASKS[:1], episodes=200, seed=0)["default"]
    env, rng, returns = gym.make("CartPole-v1"), np.random.default_rng(1), []
    for episode in range(200):
        env.reset(seed=episode)
        done, total = False, 0.0
        while not done:
            _, reward, terminated, truncated, _ = env.step(int(rng.integers(2)))
            total, done = total + reward, terminated or truncated
        returns.append(total)
    # two independent estimates of the same mean (≈ 22; std ≈ 12, so the standard error is ≈ 0.85 each)
    assert abs(ours - np.mean(returns)) < 4.0 and 15 < ours < 30


def test_meta_world_scores_its_success_rate_as_it_is():
    scores = score_range("mt10", build_suite("mt10"), episodes=5, seed=0)
    assert scores.metric == "success" and scores.solved == 1.0 and set(scores.random.values()) == {0.0}
    assert scores.score({task: 0.3 for task in scores.random}) == pytest.approx(0.3)


# -- studies ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_one_worker_gives_the_same_trial_sequence_and_best_value_twice(tmp_path):
    runs = []
    for name in ("a", "b"):
        spec = make_study(tmp_path / name, n_trials=4, startup_trials=2, pruner={"type": "none"})
        run_worker(tmp_path / name, TASKS, log=lambda line: None)
        trials = trials_of(tmp_path / name, spec)
        runs.append([(t.number, t.state, t.params, t.value, t.intermediate_values) for t in trials])
    assert runs[0] == runs[1] and len(runs[0]) == 4
    assert runs[0][0][2] == {"ppo.learning_rate": 2.5e-3, "varshare.beta": 1.0}  # trial 0: the defaults
    assert len({json.dumps(r[2], sort_keys=True) for r in runs[0]}) == 4  # four different proposals
    summary = write_report(tmp_path / "a", REPO / "configs/cartpole10_ppo.yaml", tmp_path / "t.csv",
                           tmp_path / "best.yaml", tmp_path / "tuned.yaml", tmp_path / "h.png", tmp_path / "i.png")
    best = max(runs[0], key=lambda r: r[3])
    assert summary["best_value"] == best[3] and summary["best_params"] == best[2]
    assert summary["default_value"] == runs[0][0][3] and summary["trials"] == {"complete": 4, "pruned": 0, "fail": 0}
    tuned = load_config(tmp_path / "tuned.yaml")
    assert tuned.ppo.learning_rate == best[2]["ppo.learning_rate"] and tuned.varshare.beta == best[2]["varshare.beta"]
    assert tuned.total_steps_per_task == 300_000 and tuned.methods == ["varshare"]  # the full budget
    assert (tmp_path / "h.png").stat().st_size > 10_000 and (tmp_path / "i.png").stat().st_size > 10_000


@pytest.mark.slow
def test_pruning_stops_a_bad_trial_early_and_a_diverging_trial_is_pruned_not_fatal(tmp_path):
    space = {"algos": {"ppo": {"ppo.learning_rate": {"type": "categorical", "choices": [2.5e-3, 1e-7, 1e30]}}}}
    # trial 0: the defaults (score ≈ 0.23 at step 512); 1: a learning rate too small to learn (≈ 0.11);
    # 2: one so large that the loss overflows in the first update
    spec = make_study(tmp_path, space, enqueue=[{"ppo.learning_rate": 1e-7}, {"ppo.learning_rate": 1e30}],
                      n_trials=3, pruner={"type": "median", "startup_trials": 1})
    run_worker(tmp_path, TASKS, log=lambda line: None)
    first, slow, diverged = trials_of(tmp_path, spec)
    assert first.state == TrialState.COMPLETE and list(first.intermediate_values) == [512, 1024]
    assert slow.state == TrialState.PRUNED and list(slow.intermediate_values) == [512]  # stopped at half the budget
    assert slow.intermediate_values[512] < first.intermediate_values[512]
    assert diverged.state == TrialState.PRUNED and diverged.user_attrs["reason"].startswith("non-finite")
    metrics = (tmp_path / spec.digest() / "trials" / "trial1" / "metrics.csv").read_text()
    assert not (tmp_path / spec.digest() / "trials" / "trial1" / "done.json").exists() and "eval_return" in metrics


def start_worker(study: Path, tasks: Path, done: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "varshare.cli", "hpo", "--study", str(study), "--tasks", str(tasks),
                             "--done", str(done)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_workers_share_one_storage_and_together_reach_n_trials(tmp_path):
    spec = make_study(tmp_path / "study", n_trials=4, startup_trials=2, pruner={"type": "none"})
    tasks = tmp_path / "tasks.json"
    tasks.write_text(specs_to_json(TASKS))
    workers = [start_worker(tmp_path / "study", tasks, tmp_path / f"w{k}.json") for k in range(2)]
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stderr.read()
    trials = trials_of(tmp_path / "study", spec)
    assert [t.number for t in trials] == [0, 1, 2, 3] and all(t.state == TrialState.COMPLETE for t in trials)
    ran = [json.loads((tmp_path / f"w{k}.json").read_text())["trials_run"] for k in range(2)]
    assert sum(ran) == 4 and min(ran) >= 1  # each worker ran trials of its own
    assert len({t.user_attrs["worker"] for t in trials}) == 2


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_a_study_a_rerun_completes(tmp_path):
    spec = make_study(tmp_path / "study", n_trials=3, startup_trials=2, pruner={"type": "none"},
                      heartbeat_seconds=0.2, grace_seconds=2.0)
    tasks = tmp_path / "tasks.json"
    tasks.write_text(specs_to_json(TASKS))
    worker = start_worker(tmp_path / "study", tasks, tmp_path / "w.json")
    deadline, killed = time.time() + 120, None
    while time.time() < deadline and killed is None:
        time.sleep(0.2)
        running = [t for t in trials_of(tmp_path / "study", spec)
                   if t.state == TrialState.RUNNING and t.number == 1 and "heartbeat" in t.user_attrs]
        if running:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            killed = running[0]
    assert killed is not None, "the worker never started trial 1"
    assert trials_of(tmp_path / "study", spec)[1].state == TrialState.RUNNING  # left behind by the dead worker
    assert main(["hpo", "--study", str(tmp_path / "study"), "--tasks", str(tasks)]) == 0  # the rerun
    trials = trials_of(tmp_path / "study", spec)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3
    stale = trials[1]
    assert stale.state == TrialState.FAIL and stale.user_attrs["reason"].startswith("stale")
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    assert len(retry) == 1 and retry[0].params == killed.params and retry[0].state == TrialState.COMPLETE


def test_the_cli_refuses_a_missing_study_and_tasks_of_another_suite(tmp_path, capsys):
    assert main(["hpo", "--study", str(tmp_path)]) == 2
    assert "no study.yaml; create the study with `varshare hpo-study` first" in capsys.readouterr().err
    make_study(tmp_path, n_trials=1)
    tasks = tmp_path / "tasks.json"
    tasks.write_text(specs_to_json(build_suite("cartpole10")[2:4]))
    assert main(["hpo", "--study", str(tmp_path), "--tasks", str(tasks)]) == 2
    assert "are not those of the study's score range" in capsys.readouterr().err


def test_a_plan_s_pruner_replaces_the_preset_s_for_its_studies_only():
    from varshare.pipeline_config import hpo_settings, hpo_studies

    preset = load_pipeline_config(yaml.safe_load((REPO / "configs/default.yaml").read_text()), REPO)[0]
    assert hpo_studies(preset) == {(suite, algo): ["hard_sharing", "varshare"]
                                   for suite in ("cartpole10", "lunarlander20") for algo in ("ppo", "sac")}
    assert hpo_settings(preset, "lunarlander20", "sac").pruner.warmup_steps == 15_000  # past SAC's warm-up
    ppo = hpo_settings(preset, "lunarlander20", "ppo")
    assert ppo.pruner == preset.hpo.pruner and ppo.n_trials == 20 and ppo.startup_trials == 5


def test_hpo_study_cli_names_a_bad_setting_or_dimension_and_creates_a_study_once(tmp_path, capsys):
    from varshare.config import dump_config
    from varshare.hpo.objective import write_score_range

    dump_config(trial_config(), tmp_path / "c.yaml")
    write_score_range(tmp_path / "sr.json", ScoreRange("cartpole10", "return", 500.0, {t.name: 20.0 for t in TASKS}, 1, 0))
    base = ["hpo-study", "--config", str(tmp_path / "c.yaml"), "--method", "varshare", "--space",
            str(REPO / "configs/hpo_space.yaml"), "--score-range", str(tmp_path / "sr.json"), "--out", str(tmp_path / "s")]
    assert main([*base, "--study-set", "n_trials=0", "--study-set", "pruner.typ=median"]) == 2
    err = capsys.readouterr().err
    assert "--study-set n_trials: got 0; must be an integer >= 1" in err and "did you mean 'type'?" in err
    assert main([*base, "--space-set", "ppo.gamma={type: float, low: 0.9}"]) == 2
    assert "['ppo.gamma'].high: missing required key" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # nothing written for a refused study
    good = [*base, "--space-set", "ppo.gamma=null", "--study-set", "n_trials=3"]
    assert main(good) == 0 and "created study cartpole10/ppo/varshare" in capsys.readouterr().out
    spec = StudySpec.read(tmp_path / "s" / "study.yaml")
    assert "ppo.gamma" not in spec.space and spec.settings.n_trials == 3
    assert main(good) == 0 and "kept the existing study" in capsys.readouterr().out  # a rerun keeps its trials
