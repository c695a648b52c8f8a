"""The SLURM profile end to end, through fake SLURM commands (tests/slurm_shims/).

A dry run never builds an sbatch line, so these tests run for real: snakemake-executor-plugin-slurm
calls the fake `sbatch`, which records the command line and runs the job locally (the plugin's job
step inside it goes through the fake `srun`); `sacct`/`squeue` report the jobs' states. The
assertions read the recorded submissions: which rules were submitted, with which options.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from helpers import copy_checkout

REPO = Path(__file__).resolve().parents[1]
SHIMS = REPO / "tests" / "slurm_shims"
PROFILE = ["--workflow-profile", "workflow/profiles/slurm"]
# PPO only, without the leave-one-out stage (loo.methods empty), and a 2-trial HPO study of varshare
# whose two workers are SLURM jobs on one journal: test_workflow.py runs SAC, leave-one-out and
# Fig. 6 end to end.
SMALL = ["--configfile", "configs/smoke.yaml", "--config", "suites=[cartpole10]", "methods=[hard_sharing,varshare]",
         "variants=[varshare,varshare_reptile]", "top_variants=[varshare,varshare_reptile]", "loo={methods: []}",
         "algos=[ppo]", "hpo={n_trials: 2}"]
# The plugin waits 40 s before its first status check and after each finished job, and Snakemake
# 10 s between rounds of checks; a real queue needs that, the fake cluster does not.
FAST_POLLING = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]
TRAIN_VARSHARE = "rule_train_wildcards_cartpole10_ppo_varshare_0"  # the plugin's --comment


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of the workflow's files (profiles included), as a fresh checkout has them."""
    return copy_checkout(tmp_path / "work")


@pytest.fixture
def cluster(tmp_path: Path):
    """Environment of a login node of the fake cluster: shims first on PATH, account and
    partition exported as the profile asks. Cancels whatever is still running at the end."""
    state = tmp_path / "fake_slurm"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env.update(
        PATH=os.pathsep.join([str(SHIMS), str(Path(sys.executable).parent), os.environ["PATH"]]),
        FAKE_SLURM_DIR=str(state),
        FAKE_SLURM_PYTHON=sys.executable,
        FAKE_SLURM_ACCOUNTS="test",
        FAKE_SLURM_PARTITIONS="cpu,gpu",
        VARSHARE_SLURM_ACCOUNT="test",
        VARSHARE_SLURM_PARTITION="cpu",
    )
    env.pop("FAKE_SLURM_FAIL_FIRST", None)
    yield env
    subprocess.run([str(SHIMS / "scancel"), "--me"], env=env, capture_output=True)


def snakemake(workdir: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)


def submissions(env: dict) -> list[dict]:
    """The recorded sbatch calls, each with the rule it ran (from the plugin's --comment)."""
    path = Path(env["FAKE_SLURM_DIR"]) / "submissions.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        record["rule"] = re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", record["request"]["comment"]).group(1)
        state = Path(env["FAKE_SLURM_DIR"]) / "jobs" / record["jobid"] / "state.json"
        record["state"] = json.loads(state.read_text())["state"]
    return records


def srun_steps(env: dict) -> dict[str, list]:
    path = Path(env["FAKE_SLURM_DIR"]) / "srun.jsonl"
    steps = [json.loads(line) for line in path.read_text().splitlines()]
    return {step["jobid"]: step["argv"] for step in steps}


def status_queries(env: dict) -> Counter:
    """Which command the plugin polled job states with (`sacct` or `squeue`), and how often."""
    path = Path(env["FAKE_SLURM_DIR"]) / "calls.jsonl"
    calls = [json.loads(line)["argv"] for line in path.read_text().splitlines()]
    return Counter(argv[0] for argv in calls if argv[0] in ("sacct", "squeue") and "--name" in argv)


def planned_jobs(workdir: Path, env: dict, *args: str) -> Counter:
    result = snakemake(workdir, env, "-n", "--cores", "2", *args)
    assert result.returncode == 0, result.stderr
    table = result.stdout[result.stdout.index("Job stats:"):]
    return Counter({m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)
                    if m.group(1) != "total"})


@pytest.mark.slow
def test_profile_runs_the_dag_through_slurm_and_resubmits_a_failed_job(workdir, cluster):
    planned = planned_jobs(workdir, cluster, "figures/all", *SMALL)
    cluster["FAKE_SLURM_FAIL_FIRST"] = TRAIN_VARSHARE
    result = snakemake(workdir, cluster, *PROFILE, *FAST_POLLING, "--jobs", "2", "figures/all", *SMALL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    manifest = (workdir / "figures/all").read_text().split()
    assert "figures/fig1_cartpole10_ppo_methods.png" in manifest
    assert all((workdir / path).stat().st_size > 0 for path in manifest)

    jobs = submissions(cluster)
    # every job of the DAG went through sbatch; the injected failure was submitted once more
    assert Counter(job["rule"] for job in jobs) == planned + Counter(train=1)
    failed = [job for job in jobs if job["state"] != "COMPLETED"]
    assert [(job["request"]["comment"], job["state"], job["injected_failure"]) for job in failed] == \
        [(TRAIN_VARSHARE, "FAILED", True)]
    retried = [job for job in jobs if job["request"]["comment"] == TRAIN_VARSHARE]
    assert [job["state"] for job in retried] == ["FAILED", "COMPLETED"]
    # runtime grows with the attempt: the resubmission asks for twice the preset's 10 minutes
    assert [job["request"]["time_minutes"] for job in retried] == [10, 20]
    assert " -t 20 " in retried[1]["cmdline"], retried[1]["cmdline"]
    assert (workdir / "data/runs/cartpole10/ppo/varshare/seed0/done.json").is_file()
    # the plugin keeps the SLURM log of the failed job and deletes those of successful ones
    slurm_logs = workdir / ".snakemake/slurm_logs"
    assert [p.name for p in slurm_logs.rglob("*.log")] == [f"{retried[0]['jobid']}.log"]
    assert (workdir / "logs/train/cartpole10/ppo/varshare/seed0.log").is_file()  # the rule's own log

    # the HPO study's two workers were jobs of their own that shared its journal and finished it
    workers = [job for job in jobs if job["rule"] == "hpo_worker"]
    assert len(workers) == 2 and len({job["jobid"] for job in workers}) == 2
    trials = (workdir / "data/hpo/cartpole10/ppo/varshare/trials.csv").read_text().splitlines()[1:]
    assert len(trials) == 2 and all(",COMPLETE," in row or ",PRUNED," in row for row in trials)
    assert (workdir / "data/runs/cartpole10/tuned/ppo/varshare/seed0/done.json").is_file()

    # the declared resources of the train (and tuned training), prune and hpo_worker rules (smoke
    # preset: 1 thread, 1000 MB, 10 min, no GPU)
    resourced = ("train", "prune", "hpo_worker", "train_tuned")
    for job in (j for j in jobs if j["rule"] in resourced and j is not retried[1]):
        request, line = job["request"], job["cmdline"]
        assert (request["account"], request["partition"]) == ("test", "cpu")
        assert (request["cpus_per_task"], request["mem_mb"], request["time_minutes"]) == (1, 1000, 10)
        assert request["gpus"] is None and request["gres"] is None and "--gpus" not in line
        for piece in (" -A test ", " -p cpu ", " -t 10 ", " --mem 1000 ", " --cpus-per-task=1 ", " --ntasks=1 "):
            assert piece in line, (piece, line)
    # rules without resources of their own get the profile's defaults
    for job in (j for j in jobs if j["rule"] not in resourced):
        assert (job["request"]["mem_mb"], job["request"]["time_minutes"]) == (2000, 30)
        assert (job["request"]["account"], job["request"]["partition"]) == ("test", "cpu")
        assert job["request"]["cpus_per_task"] == 1 and job["request"]["gpus"] is None

    # inside each allocation the job step ran the rule through srun with the same CPU count
    steps = srun_steps(cluster)
    assert set(steps) == {job["jobid"] for job in jobs if job["state"] == "COMPLETED"}
    assert all("--cpus-per-task=1" in argv for argv in steps.values())
    assert set(status_queries(cluster)) == {"sacct"}  # the plugin's default where sacct exists


@pytest.mark.slow
def test_gpus_only_where_a_resource_override_asks(workdir, cluster):
    cartpole = "data/runs/cartpole10/ppo/hard_sharing/seed0/done.json"
    lunarlander = "data/runs/lunarlander20/ppo/hard_sharing/seed0/done.json"
    # One GPU for CartPole-10's PPO training jobs (a suite/algo override on the command line: typed
    # and validated like the preset); LunarLander-20 keeps the CPU-only default.
    overrides = ["--config", "suites=[cartpole10,lunarlander20]", *SMALL[4:],
                 "resources={train: {overrides: {cartpole10/ppo: {gpu: 1, threads: 2}}}}"]
    # GPU training routed to a GPU partition, as the profile's comment describes; status via squeue
    result = snakemake(workdir, cluster, *PROFILE, *FAST_POLLING, "--jobs", "2", "--slurm-status-command", "squeue",
                       cartpole, lunarlander, "--set-resources", "train:slurm_partition='gpu'",
                       "--configfile", "configs/smoke.yaml", *overrides)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert (workdir / cartpole).is_file() and (workdir / lunarlander).is_file()

    jobs = submissions(cluster)
    assert sorted(job["rule"] for job in jobs) == ["envs", "envs", "experiment_config", "experiment_config",
                                                   "train", "train"]
    assert all(job["state"] == "COMPLETED" for job in jobs)
    train = {job["request"]["comment"]: job for job in jobs if job["rule"] == "train"}
    gpu = train["rule_train_wildcards_cartpole10_ppo_hard_sharing_0"]
    assert gpu["request"]["gpus"] == "1" and " --gpus=1" in gpu["cmdline"], gpu["cmdline"]
    assert gpu["request"]["partition"] == "gpu" and gpu["request"]["cpus_per_task"] == 2
    assert (gpu["request"]["mem_mb"], gpu["request"]["time_minutes"]) == (1000, 10)  # the rest: the defaults
    assert srun_steps(cluster)[gpu["jobid"]].count("--gpus=1") == 1  # the job step asks for it too
    assert "device: auto" in (workdir / "data/runs/cartpole10/ppo/hard_sharing/seed0/config.yaml").read_text()
    cpu = train["rule_train_wildcards_lunarlander20_ppo_hard_sharing_0"]
    assert cpu["request"]["gpus"] is None and "--gpus" not in cpu["cmdline"], cpu["cmdline"]
    assert cpu["request"]["cpus_per_task"] == 1
    assert "device: cpu" in (workdir / "data/runs/lunarlander20/ppo/hard_sharing/seed0/config.yaml").read_text()
    assert set(status_queries(cluster)) == {"squeue"}
    for job in (j for j in jobs if j["rule"] != "train"):
        assert job["request"]["gpus"] is None and "--gpus" not in job["cmdline"]
        assert job["request"]["partition"] == "cpu"


@pytest.mark.slow
def test_unset_account_fails_with_a_message_naming_the_variable(workdir, cluster):
    del cluster["VARSHARE_SLURM_ACCOUNT"]
    result = snakemake(workdir, cluster, *PROFILE, *FAST_POLLING, "--jobs", "1", "data/tasks/cartpole10.json",
                       *SMALL)
    assert result.returncode != 0
    assert "$VARSHARE_SLURM_ACCOUNT" in result.stdout + result.stderr
    assert not (Path(cluster["FAKE_SLURM_DIR"]) / "submissions.jsonl").exists()
