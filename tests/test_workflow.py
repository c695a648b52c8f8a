"""The Snakemake workflow as users run it: presets, load-time validation, `figures/all` end to end."""

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


@pytest.mark.parametrize("preset, seeds, loo_pretrain", [
    ("smoke", 1, 1 * 1 * 1),  # leave-one-out: methods × held-out tasks × seeds
    ("default", 3, 2 * 2 * 2),
    ("paper", 5, 7 * 10 * 5),
])
def test_presets_plan_suites_times_methods_times_seeds_training_jobs(workdir, preset, seeds, loo_pretrain):
    result = snakemake(workdir, "-n", "figures/all", "--configfile", f"configs/{preset}.yaml")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["train"] == 2 * (7 + 9) * seeds  # 7 compared methods + 9 more VarShare variants
    assert counts["envs"] == counts["aggregate"] == counts["figure_methods"] == 2
    assert all(counts[f"figure_{name}"] == 1 for name in ("fig3_strategies", "fig4_variants", "fig5_top_variants", "sharing_map"))
    assert counts["loo_pretrain"] == loo_pretrain and counts["loo_adapt"] == 3 * loo_pretrain  # 3 regimes
    assert counts["loo_aggregate"] == counts["loo_figure"] == 1  # CartPole-10 only
    assert counts["all"] == 1


def test_command_line_overrides_are_typed_and_validated(workdir):
    result = snakemake(workdir, "-n", "figures/all", "--config", "seeds=[0,1]", "methods=[varshare]",
                       "variants=[]", "top_variants=[]",
                       "train_resources={threads: 2, mem_mb: 1000, runtime: 5, gpu: 0}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_counts(result.stdout)["train"] == 2 * 1 * 2
    assert "threads: 2" in result.stdout or "--set num_threads=2" in result.stdout


@pytest.mark.parametrize("override, message", [
    ("methods=[varshare,maml]", "methods[1]: got 'maml'"),
    ("seeds=[0,0]", "(duplicates: [0])"),
    ("suites=[cartpole10,pendulum5]", "suites[1]: got 'pendulum5'"),
    ("train_resources={threads: 0}", "train_resources.threads: got 0; must be an integer >= 1"),
    ("loo={methods: [varshare, maml]}", "loo.methods[1]: got 'maml'"),
    ("loo={suites: {cartpole10: {holdouts: [mooon], pretrain_steps_per_task: 1, adapt_steps: 1, threshold: 1}}}",
     "loo.suites.cartpole10.holdouts: ['mooon'] are not tasks of cartpole10; allowed: default"),
])
def test_bad_preset_value_fails_before_any_job(workdir, override, message):
    result = snakemake(workdir, "figures/all", "--configfile", "configs/smoke.yaml", "--config", override)
    assert result.returncode != 0
    assert message in result.stderr and "invalid" in result.stderr
    assert not (workdir / "data").exists()


def test_figure_of_an_untrained_method_fails_before_any_job(workdir):
    result = snakemake(workdir, "figures/all", "--configfile", "configs/smoke.yaml", "--config",
                       "variants=[varshare]", "top_variants=[varshare,varshare_lora]")
    assert result.returncode != 0
    assert "top_variants: ['varshare_lora'] are not trained by this preset" in result.stderr
    assert not (workdir / "data").exists()


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
    assert "figures/fig1_cartpole10_methods.png" in manifest and "data/results/cartpole10/iqm.csv" in manifest
    assert "figures/loo_cartpole10.png" in manifest and "data/results/cartpole10/loo/loo_summary.csv" in manifest
    assert all((workdir / path).stat().st_size > 0 for path in manifest)
    assert (workdir / "data/runs/cartpole10/ppo/varshare/seed0/checkpoint.pt").is_file()

    (workdir / "figures/fig1_cartpole10_methods.png").unlink()
    result = snakemake(workdir, "figures/all", *SMALL)
    assert result.returncode == 0, result.stderr
    assert (workdir / "figures/fig1_cartpole10_methods.png").is_file()
    assert "train" not in job_counts(result.stdout + result.stderr)  # only the figure and manifest
    again = snakemake(workdir, "figures/all", *SMALL)
    assert "Nothing to be done" in again.stdout + again.stderr

    report = snakemake(workdir, "figures/all", *SMALL, "--report", "report.html")
    assert report.returncode == 0, report.stderr
    assert (workdir / "report.html").stat().st_size > 100_000  # the figures are embedded
