"""The experiment config: examples load, defaults are the documented ones, every bad input is
reported with its dotted key and what is allowed, overrides merge, and dump → load round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from varshare.config import METHODS, ConfigError, ExperimentConfig, dump_config, load_config
from varshare.envs.suites import SUITES

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MINIMAL = {"suite": "cartpole10", "methods": ["varshare"], "seeds": [0], "total_steps_per_task": 1000}
MINIMAL_YAML = "suite: cartpole10\nmethods: [varshare]\nseeds: [0]\ntotal_steps_per_task: 1000\n"


def with_(**changes) -> dict:
    """MINIMAL with top-level keys replaced."""
    return {**MINIMAL, **changes}


def errors_of(source, overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(source, overrides)
    return str(info.value)


def test_cartpole_example_loads():
    cfg = load_config(CONFIGS / "cartpole10_ppo.yaml")
    assert cfg.suite == "cartpole10"
    assert cfg.methods == list(METHODS)
    assert (cfg.seeds, cfg.total_steps_per_task, cfg.envs_per_task) == ([0], 300_000, 4)
    assert (cfg.ppo.num_steps, cfg.ppo.num_minibatches, cfg.ppo.learning_rate) == (128, 4, 2.5e-4)


def test_lunarlander_example_loads():
    cfg = load_config(CONFIGS / "lunarlander20_ppo.yaml")
    assert cfg.suite == "lunarlander20"
    assert cfg.methods == list(METHODS)
    assert (cfg.total_steps_per_task, cfg.envs_per_task, cfg.ppo.num_steps) == (1_000_000, 16, 1024)
    # RL-Zoo batch_size 64 per minibatch and task
    assert cfg.envs_per_task * cfg.ppo.num_steps // cfg.ppo.num_minibatches == 64
    assert (cfg.ppo.gamma, cfg.ppo.gae_lambda, cfg.ppo.update_epochs, cfg.ppo.ent_coef) == (0.999, 0.98, 4, 0.01)


def test_mt10_examples_load_with_the_reference_settings():
    """The MT10 configs: the multi-task multi-head SAC reference and continuous PPO with per-task
    observation normalisation; every method, Meta-World's 50-episode evaluation, device auto."""
    sac, ppo = load_config(CONFIGS / "mt10_sac.yaml"), load_config(CONFIGS / "mt10_ppo.yaml")
    for cfg, algo in ((sac, "sac"), (ppo, "ppo")):
        assert (cfg.suite, cfg.algo, cfg.methods, cfg.device) == ("mt10", algo, list(METHODS), "auto")
        assert (cfg.total_steps_per_task, cfg.eval.episodes, cfg.eval.sample_strategies) == (2_000_000, 50, [])
        assert cfg.network.hidden_sizes == [400, 400, 400] and cfg.cagrad.c == 0.9
        assert cfg.eval.episodes % cfg.eval.envs_per_task == 0
    s = sac.sac
    assert (s.batch_per_task, s.buffer_size, s.max_grad_norm, s.learning_starts, s.train_freq) == (128, 100_000, 1.0, 4000, 1)
    assert (s.policy_lr, s.q_lr, s.alpha_lr, s.tau, s.gamma, s.init_log_alpha) == (3e-4, 3e-4, 3e-4, 0.005, 0.99, 0.0)
    assert sac.network.activation == "relu" and s.target_entropy_per_dim == -1.0
    assert ppo.ppo.normalize_obs and ppo.envs_per_task * ppo.ppo.num_steps == 5000


def test_eval_copies_must_divide_the_episodes():
    message = errors_of(MINIMAL, {"eval": {"episodes": 10, "envs_per_task": 3}})
    assert "eval.envs_per_task = 3 must divide eval.episodes = 10" in message


def test_defaults_are_the_documented_values():
    cfg = load_config(MINIMAL)
    ppo = cfg.ppo
    assert (ppo.learning_rate, ppo.num_steps, ppo.update_epochs, ppo.num_minibatches) == (2.5e-4, 128, 4, 4)
    assert (ppo.gamma, ppo.gae_lambda, ppo.clip_coef, ppo.ent_coef) == (0.99, 0.95, 0.2, 0.01)
    assert (ppo.vf_coef, ppo.max_grad_norm) == (0.5, 0.5)
    assert ppo.anneal_lr is True and ppo.norm_adv is True and ppo.clip_vloss is True
    assert cfg.network.hidden_sizes == [64, 64] and cfg.network.activation == "tanh"
    assert (cfg.varshare.beta, cfg.varshare.sigma_prior, cfg.varshare.rho_init) == (1.0, 0.1, -5.0)
    assert cfg.varshare.estimator == "flipout"
    assert (cfg.cagrad.c, cfg.cagrad.rescale) == (0.5, 1)
    assert cfg.contextual.embedding_dim == 32
    assert cfg.l2_soft.coef == 1e-3
    assert (cfg.eval.every_steps, cfg.eval.episodes) == (10_000, 10)
    assert (cfg.envs_per_task, cfg.num_threads, cfg.device) == (4, 1, "cpu")


def test_allowed_names_come_from_the_registries():
    assert METHODS == ("independent", "hard_sharing", "contextual", "l2_soft", "pcgrad", "cagrad", "varshare",
                       "varshare_reptile", "varshare_lora", "varshare_trust_region", "varshare_horseshoe",
                       "varshare_shared_noise", "varshare_lrt", "varshare_adaptive_prior", "varshare_kl_anneal",
                       "varshare_mean_rollout")
    for suite in SUITES:
        assert load_config(with_(suite=suite)).suite == suite
    assert load_config(with_(methods=list(METHODS))).methods == list(METHODS)


# (id, config, texts the error message must contain: the dotted key, the value, what is allowed)
BAD_INPUTS = [
    ("unknown-top-level", with_(learning_rate=1e-3),
     ["unknown key 'learning_rate'", "allowed keys: suite, algo, methods"]),
    ("unknown-nested-did-you-mean", with_(ppo={"learning_rat": 1e-3}),
     ["unknown key 'ppo.learning_rat'", "allowed keys: learning_rate, num_steps", "did you mean 'learning_rate'?"]),
    ("unknown-nested", with_(ppo={"lr": 1e-3}), ["unknown key 'ppo.lr'", "allowed keys: learning_rate"]),
    ("str-for-float", with_(ppo={"learning_rate": "abc"}), ["ppo.learning_rate", "'abc'", "> 0"]),
    ("str-for-int", with_(ppo={"num_steps": "3"}), ["ppo.num_steps", "'3'", "an integer >= 1"]),
    ("float-for-int", with_(ppo={"num_steps": 2.0}), ["ppo.num_steps", "2.0", "an integer >= 1"]),
    ("int-for-bool", with_(ppo={"norm_adv": 1}), ["ppo.norm_adv", "got 1", "true or false"]),
    ("gamma-out-of-range", with_(ppo={"gamma": 1.5}), ["ppo.gamma", "1.5", "in [0, 1]"]),
    ("negative-lr", with_(ppo={"learning_rate": -1e-3}), ["ppo.learning_rate", "-0.001", "> 0"]),
    ("inf", with_(varshare={"sigma_prior": float("inf")}), ["varshare.sigma_prior", "inf", "finite"]),
    ("activation", with_(network={"activation": "sigmoid"}),
     ["network.activation", "'sigmoid'", "'tanh', 'relu'"]),
    ("hidden-size", with_(network={"hidden_sizes": [64, 0]}), ["network.hidden_sizes[1]", "got 0", ">= 1"]),
    ("estimator", with_(varshare={"estimator": "mc"}),
     ["varshare.estimator", "'mc'", "'flipout', 'shared_noise', 'local_reparam'"]),
    ("rescale", with_(cagrad={"rescale": 3}), ["cagrad.rescale", "got 3", "one of 0, 1, 2"]),
    ("device", with_(device="tpu"), ["device", "'tpu'", "'cpu', 'cuda', 'auto'"]),
    ("unknown-method", with_(methods=["varshare", "moe"]),
     ["methods[1]", "'moe'", "'independent', 'hard_sharing'"]),
    ("empty-methods", with_(methods=[]), ["methods", "got []", "non-empty list"]),
    ("duplicate-methods", with_(methods=["pcgrad", "pcgrad"]), ["methods", "unique", "duplicates: ['pcgrad']"]),
    ("duplicate-seeds", with_(seeds=[0, 1, 0]), ["seeds", "[0, 1, 0]", "unique", "duplicates: [0]"]),
    ("negative-seed", with_(seeds=[-1]), ["seeds[0]", "got -1", ">= 0"]),
    ("unknown-suite", with_(suite="cartpole"), ["suite", "'cartpole'", "'cartpole10', 'lunarlander20', 'mt10'"]),
    ("zero-steps", with_(total_steps_per_task=0), ["total_steps_per_task", "got 0", ">= 1"]),
    ("section-not-mapping", with_(eval=5), ["eval", "got 5", "a mapping with keys every_steps, episodes"]),
    ("missing", {"suite": "mt10"}, ["methods: missing", "seeds: missing", "total_steps_per_task: missing"]),
    ("batch-not-divisible", with_(envs_per_task=3, ppo={"num_steps": 100, "num_minibatches": 8}),
     ["ppo.num_minibatches = 8", "envs_per_task × ppo.num_steps = 3 × 100 = 300", "allowed: 1, 2, 3, 4, 5, 6"]),
]


@pytest.mark.parametrize(("config", "expected"), [pytest.param(c, e, id=i) for i, c, e in BAD_INPUTS])
def test_bad_input_names_key_value_and_allowed(config, expected):
    message = errors_of(config)
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"


def test_every_problem_is_reported_one_per_line():
    config = with_(
        suite="nope",
        zzz=1,
        seeds=[0, 0],
        envs_per_task=3,  # 3 × 128 = 384 is not divisible by 5
        ppo={"gamma": 2, "lr": 1, "num_minibatches": 5},
        network={"activation": "gelu"},
    )
    with pytest.raises(ConfigError) as info:
        load_config(config)
    problems = info.value.problems
    assert len(problems) == 6, problems
    for key in ["suite", "unknown key 'zzz'", "seeds", "ppo.gamma", "unknown key 'ppo.lr'", "network.activation"]:
        assert sum(key in p for p in problems) >= 1, (key, problems)
    assert str(info.value).count("\n  - ") == 6


def test_batch_check_runs_alongside_unrelated_errors():
    with pytest.raises(ConfigError) as info:
        load_config(with_(device="tpu", ppo={"num_minibatches": 3}))
    problems = info.value.problems
    assert len(problems) == 2
    assert any("ppo.num_minibatches = 3" in p for p in problems)


def test_errors_from_a_file_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(MINIMAL_YAML + "ppo:\n  gamma: 1.5\n")
    message = errors_of(path)
    assert str(path) in message and "ppo.gamma" in message
    assert str(path) in errors_of(str(path))


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""], ids=["list", "scalar", "empty"])
def test_non_mapping_yaml_is_rejected(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    message = errors_of(path)
    assert "must be a mapping" in message and str(path) in message


def test_unparsable_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("suite: [cartpole10\n")
    assert "not valid YAML" in errors_of(path)


def test_scientific_notation_without_dot_is_a_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL_YAML + "ppo:\n  learning_rate: 3e-4\n")
    assert load_config(path).ppo.learning_rate == 3e-4


def test_int_is_accepted_for_a_float():
    cfg = load_config(with_(ppo={"gamma": 1}))
    assert cfg.ppo.gamma == 1.0 and isinstance(cfg.ppo.gamma, float)


def test_nested_and_dotted_overrides_merge_and_do_not_mutate():
    source = with_(ppo={"gamma": 0.9, "num_steps": 64})
    cfg = load_config(source, {"ppo": {"learning_rate": 1e-3}, "network.hidden_sizes": [32], "seeds": [1, 2]})
    assert (cfg.ppo.gamma, cfg.ppo.num_steps, cfg.ppo.learning_rate) == (0.9, 64, 1e-3)  # merged, not replaced
    assert cfg.network.hidden_sizes == [32] and cfg.seeds == [1, 2]
    assert source == with_(ppo={"gamma": 0.9, "num_steps": 64})
    dotted_inside = load_config(MINIMAL, {"varshare": {"beta": 0.5}, "ppo.gamma": 0.5})
    assert (dotted_inside.varshare.beta, dotted_inside.ppo.gamma) == (0.5, 0.5)


def test_overrides_apply_to_files_and_are_validated():
    path = CONFIGS / "cartpole10_ppo.yaml"
    assert load_config(path, {"ppo.learning_rate": 1e-3}).ppo.learning_rate == 1e-3
    message = errors_of(path, {"ppo.learning_rate": -1.0, "ppo.lr": 1.0})
    assert "ppo.learning_rate: got -1.0; must be a finite number > 0" in message
    assert "unknown key 'ppo.lr'" in message and str(path) in message


@pytest.mark.parametrize("source", [MINIMAL, CONFIGS / "cartpole10_ppo.yaml", CONFIGS / "lunarlander20_ppo.yaml"])
def test_dump_then_load_round_trips(tmp_path, source):
    cfg = load_config(source, {"ppo.learning_rate": 1e-5, "varshare.rho_init": -4})
    path = tmp_path / "run" / "config.yaml"
    dump_config(cfg, path)
    again = load_config(path)
    assert isinstance(again, ExperimentConfig) and again == cfg
    assert again.to_dict() == cfg.to_dict()


def test_config_is_frozen():
    cfg = load_config(MINIMAL)
    with pytest.raises(ValidationError, match="frozen"):
        cfg.ppo.gamma = 0.5  # type: ignore[misc]


def test_check_config_command_reports_every_problem_and_exits_2(tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "varshare.cli", "check-config", "configs/cartpole10_ppo.yaml"]
    bad = subprocess.run(command + ["--set", "ppo.gamma=1.5", "--set", "methods=[varshare,maml]"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "ppo.gamma: got 1.5" in bad.stderr and "methods[1]" in bad.stderr and "hard_sharing" in bad.stderr
    out = tmp_path / "resolved.yaml"
    good = subprocess.run(command + ["--set", "ppo.learning_rate=1e-3", "--out", str(out)],
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert load_config(out).ppo.learning_rate == 1e-3


# --- pipeline presets (varshare.pipeline_config) ---------------------------------------------------

from varshare.config import ALGOS  # noqa: E402
from varshare.pipeline_config import (config_pairs, experiment_overrides, job_resources,  # noqa: E402
                                      load_pipeline_config, plan_seeds, training_plan)

REPO = CONFIGS.parent


def preset_data(name: str, **changes) -> dict:
    import yaml

    data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    return {**data, **changes}


def preset_errors(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(data, REPO)
    return str(info.value)


COMPARED = ["independent", "hard_sharing", "contextual", "l2_soft", "pcgrad", "cagrad", "varshare"]
TWO_SUITES = ["cartpole10", "lunarlander20"]  # the smoke preset without MT10 (its own methods and seeds)


@pytest.mark.parametrize("name, sac_methods", [
    ("smoke", COMPARED),
    ("default", ["hard_sharing", "varshare"]),
    ("paper", list(METHODS)),  # every method and variant: the plans list none
])
def test_shipped_presets_resolve_one_experiment_config_per_suite_and_algo(name, sac_methods):
    preset, experiments = load_pipeline_config(preset_data(name), REPO)
    assert preset.algos == ["ppo", "sac"] and preset.loo.algos == ["ppo"]
    assert set(experiments) == {(suite, algo) for suite in preset.suites for algo in ("ppo", "sac")}
    assert all(cfg.algo == algo and cfg.suite == suite for (suite, algo), cfg in experiments.items())
    plan = training_plan(preset)
    suites = [suite for suite in preset.suites if suite != "mt10"]  # MT10's plans list their own methods
    assert all(plan[suite, "ppo"] == list(METHODS) and plan[suite, "sac"] == sac_methods for suite in suites)
    assert all(experiments[suite, "sac"].methods == sac_methods for suite in suites)
    assert all(experiments[suite, algo].seeds == plan_seeds(preset, suite, algo) for suite, algo in experiments)


def test_a_plan_without_methods_trains_every_method_and_a_methods_override_narrows_every_plan():
    data = preset_data("smoke")
    del data["experiments"]["lunarlander20"]["sac"]["methods"]
    preset, _ = load_pipeline_config(data, REPO)
    plan = training_plan(preset)
    assert plan["cartpole10", "sac"] == COMPARED and plan["lunarlander20", "sac"] == list(METHODS)
    # `--config methods=[...] variants=[...]`: the plans train those of their methods that remain
    preset, experiments = load_pipeline_config(
        preset_data("smoke", methods=["pcgrad", "varshare"], variants=["varshare", "varshare_lora"],
                    top_variants=["varshare"]), REPO)
    plan = training_plan(preset)
    assert plan["cartpole10", "ppo"] == ["pcgrad", "varshare", "varshare_lora"]
    assert plan["cartpole10", "sac"] == ["pcgrad", "varshare"]  # its plan lists no variant
    assert experiments["cartpole10", "sac"].methods == ["pcgrad", "varshare"]
    assert experiment_overrides(preset, "cartpole10", "sac")["total_steps_per_task"] == 600  # the plan's set


def test_algos_filter_the_plans():
    preset, experiments = load_pipeline_config(preset_data("smoke", algos=["ppo"], suites=TWO_SUITES), REPO)
    assert set(training_plan(preset)) == set(experiments) == {("cartpole10", "ppo"), ("lunarlander20", "ppo")}
    data = preset_data("smoke", algos=["sac"], suites=TWO_SUITES)
    data["loo"]["algos"] = ["sac"]
    preset, experiments = load_pipeline_config(data, REPO)
    assert set(training_plan(preset)) == set(experiments) == {("cartpole10", "sac"), ("lunarlander20", "sac")}


def test_leave_one_out_uses_the_suite_s_plan_of_its_algorithm():
    data = preset_data("smoke", algos=["ppo"], suites=TWO_SUITES)
    data["loo"]["algos"] = ["ppo", "sac"]  # SAC is not trained, but leave-one-out runs it
    preset, experiments = load_pipeline_config(data, REPO)
    assert config_pairs(preset) == [("cartpole10", "ppo"), ("lunarlander20", "ppo"), ("cartpole10", "sac"),
                                    ("lunarlander20", "sac")]
    assert experiments["cartpole10", "sac"].methods == ["varshare"]  # loo.methods
    assert experiments["cartpole10", "sac"].total_steps_per_task == 600
    del data["experiments"]["cartpole10"]["sac"]
    assert "loo.algos: 'sac' has no plan on cartpole10 (experiments.cartpole10.sac); allowed: ppo" in \
        preset_errors(data)


def plans(**per_suite) -> dict:
    """The smoke preset on CartPole-10 and LunarLander-20 with ``experiments.<suite>`` replaced by the
    given mappings."""
    data = preset_data("smoke", suites=TWO_SUITES)
    data["experiments"] = {**data["experiments"], **per_suite}
    return data


SAC_PLAN = {"experiment": "configs/cartpole10_sac.yaml"}
PPO_PLAN = {"experiment": "configs/cartpole10_ppo.yaml"}


@pytest.mark.parametrize("data, expected", [
    pytest.param(plans(cartpole10={"ppo": PPO_PLAN, "sak": SAC_PLAN}),
                 ["experiments.cartpole10.sak: unknown key 'sak'; allowed: 'ppo' or 'sac'"], id="unknown-algo-key"),
    pytest.param(plans(cartpole10={"experiment": "configs/cartpole10_ppo.yaml", "set": {}}),
                 ["experiments.cartpole10.experiment: unknown key 'experiment'; allowed: 'ppo' or 'sac' "
                  "(experiments.<suite> maps each algorithm to its plan {experiment, set, methods})",
                  "experiments.cartpole10.set: unknown key 'set'"], id="old-schema"),
    pytest.param(plans(cartpole10={"sac": {**SAC_PLAN, "methods": ["varshare", "maml"]}}),
                 ["experiments.cartpole10.sac.methods[1]: got 'maml'; must be one of 'independent'"],
                 id="unknown-plan-method"),
    pytest.param(plans(cartpole10={"sac": {**SAC_PLAN, "methods": []}}),
                 ["experiments.cartpole10.sac.methods: got []; must be a non-empty list"], id="empty-plan-methods"),
    pytest.param(plans(cartpole10={"sac": {**SAC_PLAN, "method": ["varshare"]}}),
                 ["unknown key 'experiments.cartpole10.sac.method'; allowed keys: experiment, set, methods, seeds; "
                  "did you mean 'methods'?"], id="unknown-plan-key"),
    pytest.param(plans(cartpole10={"ppo": PPO_PLAN}, lunarlander20={"ppo": PPO_PLAN}),
                 ["algos: 'sac' trains nothing: no suite of ['cartpole10', 'lunarlander20'] has a plan for it "
                  "(experiments.<suite>.sac); allowed: ppo (algorithms with a plan that trains a method)"],
                 id="algo-without-plan"),
    pytest.param({**plans(lunarlander20={"sac": {"experiment": "configs/lunarlander20_sac.yaml"}}), "algos": ["ppo"]},
                 ["experiments.lunarlander20: trains nothing: no plan for an algorithm of algos ['ppo'] (plans: "
                  "['sac']); every suite in 'suites' needs one"], id="suite-without-plan"),
    pytest.param({**plans(cartpole10={"ppo": PPO_PLAN, "sac": {**SAC_PLAN, "methods": ["contextual"]}},
                          lunarlander20={"ppo": PPO_PLAN, "sac": {**SAC_PLAN, "methods": ["contextual"]}}),
                  "methods": ["hard_sharing", "varshare"], "variants": ["varshare"], "top_variants": ["varshare"]},
                 ["algos: 'sac' trains nothing: its plans (experiments.<suite>.sac of ['cartpole10', 'lunarlander20']) "
                  "list none of the preset's methods and variants ['hard_sharing', 'varshare']; allowed: ppo"],
                 id="plan-methods-not-trained"),
    pytest.param(plans(cartpole10={"sac": {"experiment": "configs/cartpole10_sak.yaml"}}),
                 ["experiments.cartpole10.sac.experiment: no such file 'configs/cartpole10_sak.yaml'"],
                 id="missing-experiment-file"),
    pytest.param(plans(cartpole10={"ppo": PPO_PLAN, "sac": {**SAC_PLAN, "set": {"sac.learning_startz": 1}}}),
                 ["experiments.cartpole10.sac (configs/cartpole10_sac.yaml): unknown key 'sac.learning_startz'",
                  "did you mean 'learning_starts'?"], id="bad-sac-override"),
])
def test_bad_plans_name_the_key_and_what_is_allowed(data, expected):
    message = preset_errors(data)
    assert all(line in message for line in expected), message


def test_algos_default_to_ppo_and_are_validated():
    data = preset_data("smoke")
    del data["algos"], data["loo"]["algos"]
    preset, _ = load_pipeline_config(data, REPO)
    assert preset.algos == ["ppo"] == preset.loo.algos == list(ALGOS[:1])
    message = preset_errors(preset_data("smoke", algos=["ppo", "sak"]))
    assert "algos[1]: got 'sak'; must be one of 'ppo'" in message
    assert "(duplicates: ['ppo'])" in preset_errors(preset_data("smoke", algos=["ppo", "ppo"]))


def test_paper_preset_asks_gpus_only_for_mt10():
    preset, _ = load_pipeline_config(preset_data("paper"), REPO)
    for family in ("train", "loo", "prune"):
        for suite in ("cartpole10", "lunarlander20"):
            assert job_resources(preset, family, suite, "ppo").gpu == 0, (family, suite)
    assert job_resources(preset, "train", "mt10", "ppo").gpu == 1
    assert job_resources(preset, "loo", "mt10", "ppo").gpu == 1
    assert job_resources(preset, "train", "lunarlander20", "ppo").runtime > job_resources(
        preset, "train", "cartpole10", "ppo").runtime


def test_resource_overrides_merge_over_the_family_defaults_suite_then_suite_algo():
    resources = {"train": {"threads": 2, "mem_mb": 3000, "runtime": 100, "gpu": 0,
                           "overrides": {"cartpole10": {"mem_mb": 5000, "runtime": 50},
                                         "cartpole10/ppo": {"runtime": 70, "gpu": 1},
                                         "cartpole10/sac": {"threads": 3}}}}
    preset, _ = load_pipeline_config(preset_data("smoke", resources=resources), REPO)
    got = job_resources(preset, "train", "cartpole10", "ppo")
    assert (got.threads, got.mem_mb, got.runtime, got.gpu) == (2, 5000, 70, 1)
    sac = job_resources(preset, "train", "cartpole10", "sac")
    assert (sac.threads, sac.mem_mb, sac.runtime, sac.gpu) == (3, 5000, 50, 0)
    other = job_resources(preset, "train", "lunarlander20", "ppo")
    assert (other.threads, other.mem_mb, other.runtime, other.gpu) == (2, 3000, 100, 0)
    # families left out take the schema defaults: one thread, 2000 MB, 60 min, no GPU
    prune = job_resources(preset, "prune", "cartpole10", "ppo")
    assert (prune.threads, prune.mem_mb, prune.runtime, prune.gpu) == (1, 2000, 60, 0)


@pytest.mark.parametrize("resources, expected", [
    ({"train": {"threads": 0}}, "resources.train.threads: got 0; must be an integer >= 1"),
    ({"train": {"gpus": 1}}, "unknown key 'resources.train.gpus'; allowed keys: threads, mem_mb, runtime, gpu, "
                             "overrides; did you mean 'gpu'?"),
    ({"analysis": {}}, "unknown key 'resources.analysis'; allowed keys: train, loo, prune"),
    ({"loo": {"overrides": {"mt10": {"mem": 1}}}},
     "unknown key 'resources.loo.overrides.mt10.mem'; allowed keys: threads, mem_mb, runtime, gpu"),
    ({"train": {"overrides": {"cartpol10": {"gpu": 1}}}},
     "resources.train.overrides.cartpol10: unknown suite 'cartpol10'; a key is a suite or suite/algo with "
     "suites: cartpole10, lunarlander20, mt10; algos: ppo"),
    ({"prune": {"overrides": {"mt10/sak": {"gpu": 1}}}},
     "resources.prune.overrides.mt10/sak: unknown algorithm 'sak'"),
])
def test_bad_resources_name_the_key_and_what_is_allowed(resources, expected):
    assert expected in preset_errors(preset_data("smoke", resources=resources))


def test_old_train_resources_key_is_rejected_with_a_hint():
    message = preset_errors(preset_data("smoke", train_resources={"threads": 1}))
    assert "unknown key 'train_resources'" in message and "resources" in message


def test_a_figure_of_an_untrained_method_is_a_preset_error():
    message = preset_errors(preset_data("smoke", variants=["varshare"], top_variants=["varshare", "varshare_lora"]))
    assert "top_variants: ['varshare_lora'] are not trained by this preset" in message


def test_a_bad_experiment_override_names_suite_algo_and_key():
    data = preset_data("smoke")
    data["experiments"]["cartpole10"]["ppo"]["set"] = {"ppo.num_stepz": 64}
    message = preset_errors(data)
    assert "experiments.cartpole10.ppo (configs/cartpole10_ppo.yaml)" in message and "did you mean 'num_steps'" in message
