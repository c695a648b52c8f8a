"""The Snakemake workflow as users run it: presets, load-time validation, `figures/all` end to end.

Every test here but the in-process preset checks starts Snakemake (2-3 s per parse of the Snakefile,
far more for the paper preset's 2,675-job DAG): all but one representative of each kind are marked
`slow`; the schema checks they exercise run in-process (tests/test_config.py, preset section, and
the preset checks below) for the fast tier."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import copy_checkout

from varshare.config import ConfigError
from varshare.pipeline_config import job_resources, load_pipeline_config, loo_suites, plan_seeds, training_plan

REPO = Path(__file__).resolve().parents[1]
# The smoke preset on CartPole-10 and MT10 with fewer methods: every kind of rule, MT10's included
# (Fig. 7, leave-one-out scored by success with SAC), at a fraction of the whole smoke DAG's cost.
SMALL = ["--configfile", "configs/smoke.yaml", "--config", "suites=[cartpole10,mt10]",
         "methods=[hard_sharing,varshare]", "variants=[varshare,varshare_reptile]",
         "top_variants=[varshare,varshare_reptile]", "hpo={n_trials: 2}"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of the workflow's files, as a fresh checkout has them."""
    return copy_checkout(tmp_path)


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args],
                          cwd=workdir, env=env, capture_output=True, text=True)


def shipped_preset(name: str, **changes):
    """configs/<name>.yaml, validated in-process (no Snakemake), with top-level keys replaced."""
    return load_pipeline_config({**yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text()), **changes},
                                REPO)[0]


def test_shipped_presets_validate_with_mt10_plans_and_leave_one_out_on_every_suite():
    smoke, default, paper, mt10 = (shipped_preset(name) for name in ("smoke", "default", "paper", "mt10"))
    assert smoke.suites == paper.suites == ["cartpole10", "lunarlander20", "mt10"] and mt10.suites == ["mt10"]
    assert "mt10" not in default.suites  # a GPU study: left out of the laptop-to-workstation default
    # MT10's plans: their own methods and (paper) seeds; the other suites the preset's 5 seeds
    assert training_plan(smoke)["mt10", "sac"] == ["hard_sharing", "varshare"]
    assert training_plan(paper)["mt10", "sac"] == training_plan(paper)["mt10", "ppo"] == [
        "independent", "hard_sharing", "contextual", "l2_soft", "pcgrad", "cagrad", "varshare",
        "varshare_reptile", "varshare_trust_region", "varshare_horseshoe"]
    assert plan_seeds(paper, "mt10", "sac") == list(range(10)) and plan_seeds(paper, "cartpole10", "sac") == [0, 1, 2, 3, 4]
    for preset in (paper, mt10):
        for family, gpu in (("train", 1), ("loo", int(preset is paper)), ("prune", 0)):
            assert all(job_resources(preset, family, "mt10", algo).gpu == gpu for algo in ("ppo", "sac")), family
    assert all(job_resources(paper, "train", suite, algo).gpu == 0 for suite in ("cartpole10", "lunarlander20")
               for algo in ("ppo", "sac"))
    # leave-one-out: each suite's score, threshold, algorithms, methods and seeds
    plans = {name: {suite: (plan.metric, plan.threshold, plan.algos, plan.methods, len(plan.seeds))
                    for suite, plan in loo_suites(preset).items()}
             for name, preset in (("smoke", smoke), ("default", default), ("paper", paper), ("mt10", mt10))}
    assert plans["smoke"] == {"cartpole10": ("return", 475, ["ppo"], ["varshare"], 1),
                              "lunarlander20": ("return", 200, ["ppo"], ["varshare"], 1),
                              "mt10": ("success", 0.9, ["sac"], ["hard_sharing"], 1)}
    assert plans["default"] == {"cartpole10": ("return", 475, ["ppo"], ["varshare", "hard_sharing"], 2),
                                "lunarlander20": ("return", 200, ["ppo"], ["varshare", "hard_sharing"], 2)}
    assert plans["paper"]["mt10"] == ("success", 0.9, ["sac"], ["hard_sharing", "varshare"], 3)
    assert plans["paper"]["lunarlander20"][:3] == ("return", 200, ["ppo"]) and plans["mt10"] == {}
    # a narrower `suites` leaves the other suites' leave-one-out out, as their experiments
    assert list(loo_suites(shipped_preset("smoke", suites=["cartpole10"]))) == ["cartpole10"]


@pytest.mark.parametrize("change, message", [
    ({"metric": "succes"}, "loo.suites.mt10.metric: got 'succes'; must be one of 'return', 'success'"),
    ({"threshold": 90}, "loo.suites.mt10.threshold: got 90; with metric 'success' it must be a success rate in [0, 1]"),
    ({"algos": ["ppo", "a2c"]}, "loo.suites.mt10.algos[1]: got 'a2c'; must be one of 'ppo', 'sac'"),
    ({"seeds": []}, "loo.suites.mt10.seeds: got []; must be a non-empty list"),
])
def test_a_bad_leave_one_out_suite_plan_names_its_key_and_the_allowed_values(change, message):
    data = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())
    data["loo"]["suites"]["mt10"].update(change)
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(data, REPO)
    assert message in str(info.value)


def test_a_plan_s_seeds_are_validated_and_reach_its_experiment_config():
    data = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())
    data["experiments"]["mt10"]["sac"]["seeds"] = [3, 3]
    with pytest.raises(ConfigError, match=r"experiments.mt10.sac.seeds: got \[3, 3\]; .*\(duplicates: \[3\]\)"):
        load_pipeline_config(data, REPO)
    data["experiments"]["mt10"]["sac"]["seeds"] = [3, 4]
    preset, experiments = load_pipeline_config(data, REPO)
    assert plan_seeds(preset, "mt10", "sac") == [3, 4] == experiments["mt10", "sac"].seeds
    assert experiments["mt10", "ppo"].seeds == [0] == preset.seeds


def job_counts(output: str) -> dict[str, int]:
    table = output[output.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def hpo_jobs(suites: int, studies: int, workers: int, tuned_runs: int) -> dict[str, int]:
    """Jobs of the HPO stages: per study its creation, workers and report, the tuned runs and their
    aggregates (one per tuned suite)."""
    return dict(hpo_study=studies, hpo_worker=studies * workers, hpo_report=studies,
                train_tuned=tuned_runs, aggregate_tuned=suites)


def claims_jobs(suites: int) -> dict[str, int]:
    """The claims report (one) and, per trained suite, its score range, parameter counts and rliable's two figures (every
    preset trains VarShare beside another compared method on each suite)."""
    return dict(claims=1, score_range=suites, parameters=suites, figure_profiles=suites, figure_improvement=suites)


# Jobs per rule of each shipped preset's `figures/all`, from its plans (suites × algorithms × methods
# × seeds; MT10 with its own methods and seeds).
PLANNED = {
    # CartPole-10 and LunarLander-20: PPO 16 methods, SAC 7, one seed; MT10: PPO hard_sharing, SAC
    # hard_sharing and varshare. Leave-one-out: one held-out task per suite, one method, one seed.
    "smoke": dict(train=2 * (16 + 7) + (1 + 2), envs=3, aggregate=3, experiment_config=6, figure_methods=4,
                  figure_fig4_variants=1, figure_fig5_top_variants=1, figure_fig3_strategies=2,
                  figure_sharing_map=2, figure_pruning=2, prune=2 + 3, figure_ppo_vs_sac=1, figure_mt10=1,
                  loo_pretrain=3, loo_adapt=3 * 3, loo_aggregate=3, loo_figure=3,
                  # HPO: varshare with PPO and with SAC on CartPole-10, 2 workers each, one tuned seed
                  **hpo_jobs(suites=1, studies=2, workers=2, tuned_runs=2), **claims_jobs(3)),
    # two suites, PPO 16 methods, SAC hard_sharing and varshare, 3 seeds; no MT10. Leave-one-out:
    # (CartPole 2 + LunarLander 1 held-out tasks) × 2 methods × 2 seeds
    "default": dict(train=2 * (16 + 2) * 3, envs=2, aggregate=2, experiment_config=4, figure_methods=4,
                    figure_fig4_variants=1, figure_fig5_top_variants=1, figure_fig3_strategies=2,
                    figure_sharing_map=2, figure_pruning=2, prune=2 * 2 * 3, figure_ppo_vs_sac=1,
                    loo_pretrain=(2 + 1) * 2 * 2, loo_adapt=3 * (2 + 1) * 2 * 2, loo_aggregate=2, loo_figure=2,
                    # HPO: hard_sharing and varshare × PPO and SAC × 2 suites, 2 workers, 3 tuned seeds
                    **hpo_jobs(suites=2, studies=2 * 2 * 2, workers=2, tuned_runs=2 * 2 * 2 * 3), **claims_jobs(2)),
    # 16 methods × 2 algorithms × 5 seeds on two suites; MT10: 10 methods × 2 algorithms × 10 seeds.
    # Leave-one-out: CartPole 10 and LunarLander 4 held-out tasks × 7 methods × 5 seeds (PPO), MT10
    # 5 × 2 methods × 3 seeds (SAC)
    "paper": dict(train=2 * 16 * 2 * 5 + 10 * 2 * 10, envs=3, aggregate=3, experiment_config=6, figure_methods=4,
                  figure_fig4_variants=2, figure_fig5_top_variants=2, figure_fig3_strategies=2,
                  figure_sharing_map=2, figure_pruning=2, prune=2 * 2 * 5 + 2 * 10, figure_ppo_vs_sac=1,
                  figure_mt10=1, loo_pretrain=(10 + 4) * 7 * 5 + 5 * 2 * 3,
                  loo_adapt=3 * ((10 + 4) * 7 * 5 + 5 * 2 * 3), loo_aggregate=3, loo_figure=3,
                  # HPO: the 7 compared methods × PPO and SAC × 2 suites, 4 workers, 5 tuned seeds
                  **hpo_jobs(suites=2, studies=7 * 2 * 2, workers=4, tuned_runs=7 * 2 * 2 * 5), **claims_jobs(3)),
    # MT10 alone: 3 methods × 2 algorithms × 3 seeds; varshare's portfolio figures; no leave-one-out
    "mt10": dict(train=3 * 2 * 3, envs=1, aggregate=1, experiment_config=2, figure_fig3_strategies=2,
                 figure_sharing_map=2, figure_pruning=2, prune=2 * 3, figure_mt10=1, **claims_jobs(1)),
}
LOO_FIGURES = {"smoke": ["loo_cartpole10_ppo", "loo_lunarlander20_ppo", "loo_mt10_sac"],
               "default": ["loo_cartpole10_ppo", "loo_lunarlander20_ppo"],
               "paper": ["loo_cartpole10_ppo", "loo_lunarlander20_ppo", "loo_mt10_sac"], "mt10": []}


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(PLANNED))
def test_presets_plan_jobs_per_suite_algo_method_and_seed(workdir, preset):
    result = snakemake(workdir, "-n", "-p", "figures/all", "--configfile", f"configs/{preset}.yaml")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert {rule: n for rule, n in counts.items() if rule not in ("total", "study_manifest")} == PLANNED[preset]
    assert counts["study_manifest"] == 1 and "all" not in counts  # the explicit target needs no rule all
    jobs = dry_run_jobs(result.stdout)
    (manifest,) = [job for job in jobs if job["rule"] == "study_manifest"]
    built = manifest["input"].split(", ")
    assert [p for p in built if p.startswith("figures/loo_") and p.endswith(".png")] == \
        [f"figures/{name}.png" for name in LOO_FIGURES[preset]]
    assert ("figures/fig7_mt10.png" in built) == ("figure_mt10" in PLANNED[preset])
    # leave-one-out on every suite it names: the suite's algorithm and metric
    loo = {re.search(r"suite=(\w+)", job["wildcards"]).group(1): job for job in jobs if job["rule"] == "loo_aggregate"}
    assert sorted(loo) == sorted(name.split("_")[1] for name in LOO_FIGURES[preset])
    for suite, job in loo.items():
        assert ("--metric success --threshold 0.9" if suite == "mt10" else "--metric return") in job["shell"]
    assert all("--algo sac" in job["shell"] for job in jobs if job["rule"] == "loo_pretrain"
               and "suite=mt10" in job["wildcards"])


@pytest.mark.slow
def test_command_line_overrides_are_typed_and_validated(workdir):
    result = snakemake(workdir, "-n", "-p", "figures/all", "--config", "seeds=[0,1]", "methods=[varshare]",
                       "variants=[]", "top_variants=[]", "algos=[ppo]",
                       "resources={train: {threads: 2, mem_mb: 1000, runtime: 5, gpu: 0}}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_counts(result.stdout)["train"] == 2 * 1 * 2
    assert "threads: 2" in result.stdout and "--set num_threads=2" in result.stdout


def dry_run_jobs(output: str) -> list[dict]:
    """The jobs of a `snakemake -n -p` printout: rule, wildcards, resources (as text), shell command."""
    jobs = []
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", output):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.MULTILINE)
        if rule:
            fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.MULTILINE))
            shell = re.search(r"^Shell command: (.*)$", block, re.MULTILINE)
            jobs.append({"rule": rule.group(1), **fields, "shell": shell.group(1) if shell else ""})
    return jobs


@pytest.mark.slow
def test_paper_preset_asks_a_gpu_for_mt10_training_and_leave_one_out_only(workdir):
    result = snakemake(workdir, "-n", "-p", "figures/all", "--configfile", "configs/paper.yaml")
    assert result.returncode == 0, result.stderr
    jobs = dry_run_jobs(result.stdout)
    assert len(jobs) == job_counts(result.stdout)["total"]
    gpu = [job for job in jobs if "gpu=1" in job.get("resources", "")]
    # MT10's training and leave-one-out jobs, each with one GPU and device auto; CartPole, LunarLander
    # and MT10's pruning (re-evaluations) on CPU
    assert {job["rule"] for job in gpu} == {"train", "loo_pretrain", "loo_adapt"}
    assert all("suite=mt10" in job["wildcards"] and "--set device=auto" in job["shell"] for job in gpu)
    # MT10 jobs have 2 threads: their MuJoCo copies step in worker processes; one-thread jobs in-process
    assert all("--env-mode async" in job["shell"] for job in gpu)
    assert len([job for job in gpu if job["rule"] == "train"]) == 10 * 2 * 10  # methods × algos × seeds
    assert {re.search(r"seed=(\d+)", job["wildcards"]).group(1) for job in gpu if job["rule"] == "train"} == \
        {str(seed) for seed in range(10)}  # MT10's own 10 seeds
    training = [job for job in jobs if job["rule"] in ("train", "loo_pretrain", "loo_adapt") and job not in gpu]
    assert training and all("--set device=cpu" in job["shell"] and "suite=mt10" not in job["wildcards"]
                            for job in training)
    assert all("--env-mode sync" in job["shell"] for job in training)
    assert {re.search(r"--algo (\w+)", job["shell"]).group(1) for job in jobs if job["rule"] == "train"} == {"ppo", "sac"}
    # wall time per suite, and per suite/algo for SAC and MT10's PPO
    runtimes = {(re.search(r"suite=(\w+), algo=(\w+)", job["wildcards"]).groups(),
                 re.search(r"runtime=(\d+),", job["resources"]).group(1)) for job in jobs if job["rule"] == "train"}
    assert runtimes == {(("cartpole10", "ppo"), "60"), (("lunarlander20", "ppo"), "240"),
                        (("cartpole10", "sac"), "240"), (("lunarlander20", "sac"), "720"),
                        (("mt10", "ppo"), "480"), (("mt10", "sac"), "1440")}

    # an override keyed by suite/algo: a GPU for CartPole-10's PPO training jobs too
    result = snakemake(workdir, "-n", "-p", "figures/all", "--configfile", "configs/paper.yaml",
                       "--config", "resources={train: {overrides: {cartpole10/ppo: {gpu: 1}}}}", "loo={methods: []}")
    assert result.returncode == 0, result.stderr
    jobs = dry_run_jobs(result.stdout)
    gpu = [job for job in jobs if "gpu=1" in job.get("resources", "")]
    # (the tuned runs of CartPole-10's PPO studies are training jobs of that suite and algorithm too)
    assert Counter(job["rule"] for job in gpu) == {"train": 16 * 5 + 10 * 2 * 10, "train_tuned": 7 * 5}
    assert {re.search(r"suite=(\w+), algo=(\w+)", job["wildcards"]).groups() for job in gpu} == {
        ("cartpole10", "ppo"), ("mt10", "ppo"), ("mt10", "sac")}
    assert all("--set device=auto" in job["shell"] for job in gpu)
    assert all("--set device=cpu" in job["shell"] for job in jobs if job["rule"] == "train" and job not in gpu)


def test_no_target_builds_figures_all_with_the_plans_sac_jobs(workdir):
    result = snakemake(workdir, "-n", "-p", "--configfile", "configs/smoke.yaml")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["all"] == counts["study_manifest"] == 1 and counts["train"] == 2 * (16 + 7) + 1 + 2
    assert "output: figures/all" in result.stdout
    jobs = dry_run_jobs(result.stdout)
    sac = [job for job in jobs if job["rule"] == "train" and "algo=sac" in job["wildcards"]]
    compared = ["independent", "hard_sharing", "contextual", "l2_soft", "pcgrad", "cagrad", "varshare"]
    planned = [(suite, method) for suite in ("cartpole10", "lunarlander20") for method in compared]
    planned += [("mt10", "hard_sharing"), ("mt10", "varshare")]
    assert sorted(job["wildcards"] for job in sac) == sorted(f"suite={suite}, algo=sac, method={method}, seed=0"
                                                             for suite, method in planned)
    for job in sac:
        suite = re.search(r"suite=(\w+)", job["wildcards"]).group(1)
        assert f"--config data/configs/{suite}/sac.yaml" in job["shell"] and "--algo sac" in job["shell"]
    (fig6,) = [job for job in jobs if job["rule"] == "figure_ppo_vs_sac"]
    assert ("varshare plot algos --results data/results/cartpole10 data/results/lunarlander20 --panel-titles "
            "CartPole-10 LunarLander-20 --tuned-results data/results/cartpole10/tuned none --algos ppo sac "
            f"--methods {' '.join(compared)}") in fig6["shell"]  # CartPole-10's HPO studies give tuned curves
    (manifest,) = [job for job in jobs if job["rule"] == "study_manifest"]
    built = manifest["input"].split(", ")
    assert "figures/fig6_ppo_vs_sac.png" in built and "figures/fig1_cartpole10_sac_methods.png" in built
    assert "figures/fig7_mt10.png" in built and not [path for path in built if "fig_mt10" in path or "fig1_mt10" in path]
    (fig7,) = [job for job in jobs if job["rule"] == "figure_mt10"]
    assert ("varshare plot mt10 --results data/results/mt10 --panel-titles 'Meta-World MT10' --methods hard_sharing "
            "varshare --bootstrap-seed 0") in fig7["shell"]
    assert "figures/fig3_strategies_sac.png" in built and "figures/pruning_sac.pdf" in built
    assert not [path for path in built if path.startswith(("figures/fig4_variants_sac", "figures/fig5_top_variants_sac"))]


SLOW = pytest.mark.slow


@pytest.mark.parametrize("override, message", [
    pytest.param("methods=[varshare,maml]", "methods[1]: got 'maml'", marks=SLOW),
    pytest.param("seeds=[0,0]", "(duplicates: [0])", marks=SLOW),
    pytest.param("suites=[cartpole10,pendulum5]", "suites[1]: got 'pendulum5'", marks=SLOW),
    ("resources={train: {threads: 0}}", "resources.train.threads: got 0; must be an integer >= 1"),
    pytest.param("resources={train: {overrides: {cartpol10: {gpu: 1}}}}",
                 "resources.train.overrides.cartpol10: unknown suite 'cartpol10'; a key is a suite or suite/algo",
                 marks=SLOW),
    pytest.param("algos=[ppo,sak]", "algos[1]: got 'sak'; must be one of 'ppo', 'sac'", marks=SLOW),
    pytest.param("experiments={cartpole10: {a2c: {experiment: configs/cartpole10_ppo.yaml}}}",
                 "experiments.cartpole10.a2c: unknown key 'a2c'; allowed: 'ppo' or 'sac'", marks=SLOW),
    pytest.param("experiments={cartpole10: {sac: {methods: [varshare, maml]}}}",
                 "experiments.cartpole10.sac.methods[1]: got 'maml'", marks=SLOW),
    pytest.param("resources={train: {overrides: {cartpole10/a2c: {gpu: 1}}}}",
                 "resources.train.overrides.cartpole10/a2c: unknown algorithm 'a2c'", marks=SLOW),
    pytest.param("loo={methods: [varshare, maml]}", "loo.methods[1]: got 'maml'", marks=SLOW),
    pytest.param("loo={suites: {cartpole10: {holdouts: [mooon], pretrain_steps_per_task: 1, adapt_steps: 1, "
                 "threshold: 1}}}",
                 "loo.suites.cartpole10.holdouts: ['mooon'] are not tasks of cartpole10; allowed: default", marks=SLOW),
    pytest.param("loo={suites: {mt10: {metric: successes}}}",
                 "loo.suites.mt10.metric: got 'successes'; must be one of 'return', 'success'", marks=SLOW),
])
def test_bad_preset_value_fails_before_any_job(workdir, override, message):
    result = snakemake(workdir, "figures/all", "--configfile", "configs/smoke.yaml", "--config", override)
    assert result.returncode != 0
    assert message in result.stderr and "invalid" in result.stderr
    assert not (workdir / "data").exists()


@pytest.mark.slow
def test_figure_of_an_untrained_method_fails_before_any_job(workdir):
    result = snakemake(workdir, "figures/all", "--configfile", "configs/smoke.yaml", "--config",
                       "variants=[varshare]", "top_variants=[varshare,varshare_lora]")
    assert result.returncode != 0
    assert "top_variants: ['varshare_lora'] are not trained by this preset" in result.stderr
    assert not (workdir / "data").exists()


@pytest.mark.slow
def test_bad_experiment_override_names_suite_and_key(workdir):
    preset = (workdir / "configs/smoke.yaml").read_text().replace("ppo.num_steps: 64", "ppo.num_stepz: 64", 1)
    (workdir / "configs/smoke.yaml").write_text(preset)
    result = snakemake(workdir, "-n", "figures/all", "--configfile", "configs/smoke.yaml")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "experiments.cartpole10" in output and "did you mean 'num_steps'" in output


@pytest.mark.slow
def test_figures_all_builds_from_clean_and_rebuilds_a_deleted_figure(workdir):
    result = snakemake(workdir, "figures/all", *SMALL)
    assert result.returncode == 0, result.stderr
    manifest = (workdir / "figures" / "all").read_text().split()
    assert "figures/fig1_cartpole10_ppo_methods.png" in manifest and "data/results/cartpole10/iqm.csv" in manifest
    assert "figures/fig4_variants_ppo.png" in manifest and "figures/pruning_ppo.png" in manifest
    # SAC trains the plan's methods that remain (hard_sharing, varshare): its figures of them, no variant
    # screening, and Fig. 6 with the one suite
    assert "figures/fig1_cartpole10_sac_methods.png" in manifest and "figures/pruning_sac.png" in manifest
    assert "figures/fig6_ppo_vs_sac.pdf" in manifest and "figures/fig4_variants_sac.png" not in manifest
    assert (workdir / "data/runs/cartpole10/sac/varshare/seed0/done.json").is_file()
    assert not (workdir / "data/runs/cartpole10/sac/varshare_reptile").exists()
    assert "figures/loo_cartpole10_ppo.png" in manifest and "data/results/cartpole10/loo/loo_summary.csv" in manifest
    assert all((workdir / path).stat().st_size > 0 for path in manifest)
    assert (workdir / "data/runs/cartpole10/ppo/varshare/seed0/checkpoint.pt").is_file()
    assert (workdir / "data/runs/cartpole10/loo/ppo/varshare/moon/seed0/residual/done.json").is_file()
    assert (workdir / "data/configs/cartpole10/ppo.yaml").is_file()
    # MT10: Fig. 7 from the success tables (PPO hard_sharing; SAC hard_sharing, varshare), its panels
    # of SAC's varshare figures, and leave-one-out with SAC scored by the success rate
    assert "figures/fig7_mt10.png" in manifest and "figures/fig7_mt10.pdf" in manifest
    iqm = pd.read_csv(workdir / "data/results/mt10/success_iqm.csv")
    assert [tuple(r) for r in iqm[["algo", "method"]].values] == [("ppo", "hard_sharing"), ("sac", "hard_sharing"),
                                                                 ("sac", "varshare")]
    assert iqm["iqm"].between(0, 1).all() and (iqm["num_tasks"] == 10).all()
    assert "figures/loo_mt10_sac.png" in manifest and "data/results/mt10/loo/loo_summary.csv" in manifest
    assert json.loads((workdir / "data/results/mt10/loo/loo.json").read_text())["metric"] == "success"
    assert (workdir / "data/runs/mt10/loo/sac/hard_sharing/reach-v3/seed0/residual/done.json").is_file()
    assert (workdir / "data/results/mt10/pruning/sac_varshare_seed0.csv").is_file()
    # HPO: a study per algorithm (2 trials by 2 workers), its report, tuned runs, Fig. 6's tuned curves
    for algo in ("ppo", "sac"):
        trials = pd.read_csv(workdir / f"data/hpo/cartpole10/{algo}/varshare/trials.csv")
        assert len(trials) == 2 and set(trials["state"]) <= {"COMPLETE", "PRUNED"} and trials["default"].iloc[0]
        assert f"figures/hpo/cartpole10_{algo}_varshare_history.png" in manifest
        best = yaml.safe_load((workdir / f"data/hpo/cartpole10/{algo}/varshare/best_params.yaml").read_text())
        tuned = yaml.safe_load((workdir / f"data/runs/cartpole10/tuned/{algo}/varshare/seed0/config.yaml").read_text())
        assert all(tuned[key.split(".")[0]][key.split(".")[1]] == value for key, value in best["best_params"].items())
    tuned_curves = pd.read_csv(workdir / "data/results/cartpole10/tuned/eval_curves.csv")
    assert sorted(set(zip(tuned_curves["algo"], tuned_curves["method"]))) == [("ppo", "varshare"), ("sac", "varshare")]
    assert "data/results/cartpole10/tuned/iqm.csv" in manifest
    # the claims report: a row per claim; what this preset ran is tested (one seed: no interval,
    # so nothing is decided), what it did not run says so; rliable's figures of every suite
    assert {"figures/claims.md", "figures/claims.csv", "figures/profiles_cartpole10.png",
            "figures/improvement_mt10.pdf"} <= set(manifest)
    claims = (workdir / "figures/claims.md").read_text()
    summary = [line for line in claims.splitlines() if line.startswith("| (")]
    assert [line[:5] for line in summary] == [f"| ({key})" for key in "abcdefg"]
    tests = pd.read_csv(workdir / "figures/claims.csv")
    assert set(tests["claim"]) == set("acdfg")  # no l2_soft, no varshare_lora in this run
    assert summary[1].endswith("| **not tested** |") and summary[4].endswith("| **not tested** |")
    assert set(tests["verdict"]) <= {"inconclusive", "inconclusive: ceiling"} and tests["ci_low"].isna().all()
    assert set(tests.loc[tests["claim"] == "f", "scope"]) == {"cartpole10/hard_sharing", "cartpole10/varshare"}
    # (MT10's smoke PPO evaluates after 256 steps, past SAC's 200-step budget: not comparable, and said so)
    assert "not comparable: mt10/hard_sharing" in claims
    assert set(tests.loc[tests["claim"] == "g", "scope"]) == {"cartpole10/ppo/varshare", "mt10/sac/hard_sharing"}

    (workdir / "figures/fig1_cartpole10_ppo_methods.png").unlink()
    result = snakemake(workdir, "figures/all", *SMALL)
    assert result.returncode == 0, result.stderr
    assert (workdir / "figures/fig1_cartpole10_ppo_methods.png").is_file()
    assert "train" not in job_counts(result.stdout + result.stderr)  # only the figure and manifest
    again = snakemake(workdir, "figures/all", *SMALL)
    assert "Nothing to be done" in again.stdout + again.stderr

    report = snakemake(workdir, "figures/all", *SMALL, "--report", "report.html")
    assert report.returncode == 0, report.stderr
    assert (workdir / "report.html").stat().st_size > 100_000  # the figures are embedded
