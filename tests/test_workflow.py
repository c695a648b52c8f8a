"""The Snakemake workflow as users run it: presets, load-time validation, `figures/all` end to end.

Every test here starts Snakemake (2-3 s per parse of the Snakefile, far more for the paper preset's
1,586-job DAG): all but one representative of each kind are marked `slow`; the schema checks they
exercise run in-process in tests/test_config.py (preset section) for the fast tier."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import copy_checkout

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--configfile", "configs/smoke.yaml", "--config", "suites=[cartpole10]", "methods=[hard_sharing,varshare]",
         "variants=[varshare,varshare_reptile]", "top_variants=[varshare,varshare_reptile]"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of the workflow's files, as a fresh checkout has them."""
    return copy_checkout(tmp_path)


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args],
                          cwd=workdir, env=env, capture_output=True, text=True)


def job_counts(output: str) -> dict[str, int]:
    table = output[output.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


@pytest.mark.slow
@pytest.mark.parametrize("preset, seeds, sac_methods, loo_pretrain", [
    ("smoke", 1, 7, 1 * 1 * 1),  # SAC: the seven compared methods; leave-one-out: methods × held-out tasks × seeds
    ("default", 3, 2, 2 * 2 * 2),  # SAC: hard_sharing, varshare
    ("paper", 5, 16, 7 * 10 * 5),  # SAC: every method and variant
])
def test_presets_plan_training_jobs_per_suite_algo_method_and_seed(workdir, preset, seeds, sac_methods, loo_pretrain):
    result = snakemake(workdir, "-n", "figures/all", "--configfile", f"configs/{preset}.yaml")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["train"] == 2 * (7 + 9 + sac_methods) * seeds  # suites × (PPO: 7 methods + 9 more variants; SAC)
    assert counts["envs"] == counts["aggregate"] == 2
    assert counts["experiment_config"] == counts["figure_methods"] == 2 * 2  # one per suite and algo
    # SAC's Fig. 4 / Fig. 5 only where it trains the variants; Fig. 3, sharing map, pruning: varshare
    variants = 2 if sac_methods == 16 else 1
    assert counts["figure_fig4_variants"] == counts["figure_fig5_top_variants"] == variants
    assert counts["figure_fig3_strategies"] == counts["figure_sharing_map"] == counts["figure_pruning"] == 2
    assert counts["prune"] == 2 * 2 * seeds and counts["figure_ppo_vs_sac"] == 1
    assert counts["loo_pretrain"] == loo_pretrain and counts["loo_adapt"] == 3 * loo_pretrain  # 3 regimes
    assert counts["loo_aggregate"] == counts["loo_figure"] == 1  # CartPole-10 only
    assert counts["study_manifest"] == 1 and "all" not in counts  # the explicit target needs no rule all


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
def test_paper_preset_asks_gpus_only_where_an_override_says(workdir):
    result = snakemake(workdir, "-n", "-p", "figures/all", "--configfile", "configs/paper.yaml")
    assert result.returncode == 0, result.stderr
    jobs = dry_run_jobs(result.stdout)
    assert len(jobs) == job_counts(result.stdout)["total"]
    assert not [job for job in jobs if "gpu=1" in job.get("resources", "")]  # CartPole, LunarLander: CPU
    training = [job for job in jobs if job["rule"] in ("train", "loo_pretrain", "loo_adapt")]
    assert training and all("--set device=cpu" in job["shell"] for job in training)
    assert all("--algo ppo" in job["shell"] for job in jobs if job["rule"] == "loo_pretrain")
    assert {re.search(r"--algo (\w+)", job["shell"]).group(1) for job in jobs if job["rule"] == "train"} == {"ppo", "sac"}
    # wall time per suite, and per suite/algo for SAC
    runtimes = {(re.search(r"suite=(\w+), algo=(\w+)", job["wildcards"]).groups(),
                 re.search(r"runtime=(\d+),", job["resources"]).group(1)) for job in jobs if job["rule"] == "train"}
    assert runtimes == {(("cartpole10", "ppo"), "60"), (("lunarlander20", "ppo"), "240"),
                        (("cartpole10", "sac"), "240"), (("lunarlander20", "sac"), "720")}

    # an override keyed by suite/algo: a GPU for CartPole-10's PPO training jobs only
    result = snakemake(workdir, "-n", "-p", "figures/all", "--configfile", "configs/paper.yaml",
                       "--config", "resources={train: {overrides: {cartpole10/ppo: {gpu: 1}}}}", "loo={methods: []}")
    assert result.returncode == 0, result.stderr
    jobs = dry_run_jobs(result.stdout)
    gpu = [job for job in jobs if "gpu=1" in job.get("resources", "")]
    assert {job["rule"] for job in gpu} == {"train"} and len(gpu) == 16 * 5
    assert all("suite=cartpole10" in job["wildcards"] and "--set device=auto" in job["shell"] for job in gpu)
    assert all("--set device=cpu" in job["shell"] for job in jobs if job["rule"] == "train" and job not in gpu)


def test_no_target_builds_figures_all_with_the_plans_sac_jobs(workdir):
    result = snakemake(workdir, "-n", "-p", "--configfile", "configs/smoke.yaml")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["all"] == counts["study_manifest"] == 1 and counts["train"] == 2 * (16 + 7)
    assert "output: figures/all" in result.stdout
    jobs = dry_run_jobs(result.stdout)
    sac = [job for job in jobs if job["rule"] == "train" and "algo=sac" in job["wildcards"]]
    compared = ["independent", "hard_sharing", "contextual", "l2_soft", "pcgrad", "cagrad", "varshare"]
    assert sorted(job["wildcards"] for job in sac) == sorted(
        f"suite={suite}, algo=sac, method={method}, seed=0" for suite in ("cartpole10", "lunarlander20")
        for method in compared)
    for job in sac:
        suite = re.search(r"suite=(\w+)", job["wildcards"]).group(1)
        assert f"--config data/configs/{suite}/sac.yaml" in job["shell"] and "--algo sac" in job["shell"]
    (fig6,) = [job for job in jobs if job["rule"] == "figure_ppo_vs_sac"]
    assert ("varshare plot algos --results data/results/cartpole10 data/results/lunarlander20 --panel-titles "
            f"CartPole-10 LunarLander-20 --algos ppo sac --methods {' '.join(compared)}") in fig6["shell"]
    (manifest,) = [job for job in jobs if job["rule"] == "study_manifest"]
    built = manifest["input"].split(", ")
    assert "figures/fig6_ppo_vs_sac.png" in built and "figures/fig1_cartpole10_sac_methods.png" in built
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
