"""DVC round trip as docs/data_versioning.md describes it: `dvc repro` runs the Snakemake DAG for the
preset chosen in dvc.yaml, `dvc push` stores the outputs in the default local remote, and a fresh
`git clone` + `dvc pull` gets byte-identical files, which `snakemake --touch` makes up to date for
Snakemake (nothing to rerun). No network: the remote is a directory, analytics are off."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import copy_checkout

REPO = Path(__file__).resolve().parents[1]
# What a fresh checkout of the workflow holds (git-tracked sources; no data/, no figures/).
CHECKOUT = ["Snakefile", "workflow", "configs", "src/varshare", "dvc.yaml", ".dvc/config", ".dvc/.gitignore",
            ".dvcignore", ".gitignore"]
# The reduced smoke study, chosen the documented way: the vars of dvc.yaml. PPO only and without the
# leave-one-out stage (loo.methods empty): test_workflow.py runs SAC and leave-one-out end to end.
PRESET = "smoke"
SNAKEMAKE_ARGS = ("--config suites=[cartpole10] methods=[hard_sharing,varshare] "
                  "variants=[varshare,varshare_reptile] top_variants=[varshare,varshare_reptile] 'loo={methods: []}' "
                  "algos=[ppo] 'hpo={n_trials: 2}'")
SNAKEMAKE_CLI = ["figures/all", "--configfile", f"configs/{PRESET}.yaml",
                 "--config", "suites=[cartpole10]", "methods=[hard_sharing,varshare]",
                 "variants=[varshare,varshare_reptile]", "top_variants=[varshare,varshare_reptile]", "loo={methods: []}",
                 "algos=[ppo]", "hpo={n_trials: 2}"]
GIT_COMMIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "commit", "-q"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The venv's tools first on PATH (the stage command calls `snakemake`, rules call `varshare`);
    DVC without analytics and without the user's global/system config or site cache."""
    for name in ("dvc-global", "dvc-system", "dvc-site-cache"):
        (tmp_path / name).mkdir()
    return dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        DVC_NO_ANALYTICS="1",
        DVC_GLOBAL_CONFIG_DIR=str(tmp_path / "dvc-global"),
        DVC_SYSTEM_CONFIG_DIR=str(tmp_path / "dvc-system"),
        DVC_SITE_CACHE_DIR=str(tmp_path / "dvc-site-cache"),
    )


def run(cwd: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def dvc(cwd: Path, env: dict[str, str], *args: str) -> str:
    return run(cwd, env, sys.executable, "-m", "dvc", *args)


def snakemake(cwd: Path, env: dict[str, str], *args: str) -> str:
    return run(cwd, env, sys.executable, "-m", "snakemake", "--cores", "2", *args, *SNAKEMAKE_CLI)


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under data/ and figures/, by path relative to root."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for top in ("data", "figures") for p in sorted((root / top).rglob("*")) if p.is_file()}


def test_shipped_dvc_yaml_persists_every_output_and_defaults_to_the_default_preset():
    dvc_yaml = yaml.safe_load((REPO / "dvc.yaml").read_text())
    (stage,) = dvc_yaml["stages"].values()
    outs = {path: opts for out in stage["outs"] for path, opts in out.items()}
    assert set(outs) == {"data/tasks", "data/configs", "data/runs", "data/hpo", "data/results", "figures"}
    assert all(opts.get("persist") is True for opts in outs.values())
    assert dvc_yaml["vars"][0]["preset"] == "default"
    assert "--configfile configs/${preset}.yaml" in stage["cmd"] and "figures/all" in stage["cmd"]


@pytest.mark.slow
def test_repro_push_clone_pull_gives_identical_files_and_snakemake_has_nothing_to_do(tmp_path, env):
    origin = tmp_path / "varshare"
    storage = tmp_path / "varshare-dvc-storage"  # where the shipped .dvc/config points: next to the repo
    copy_checkout(origin, CHECKOUT)
    run(origin, env, "git", "init", "-q")
    run(origin, env, "git", "add", "-A")
    run(origin, env, *GIT_COMMIT, "-m", "workflow")

    # Pick the preset as the docs say: edit the vars of dvc.yaml (committed with dvc.lock below).
    dvc_yaml = yaml.safe_load((origin / "dvc.yaml").read_text())
    assert set(dvc_yaml["vars"][0]) == {"preset", "cores", "snakemake_args"}
    dvc_yaml["vars"][0].update(preset=PRESET, cores=2, snakemake_args=SNAKEMAKE_ARGS)
    (origin / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))

    out = dvc(origin, env, "repro")
    assert "Running stage 'study'" in out
    lock = yaml.safe_load((origin / "dvc.lock").read_text())
    assert "--configfile configs/smoke.yaml" in lock["stages"]["study"]["cmd"]
    assert (origin / "data/runs/cartpole10/ppo/varshare/seed0/checkpoint.pt").is_file()
    assert "Nothing to be done" in snakemake(origin, env, "-n")  # DVC's commit left file times alone

    # persist: a deleted figure makes DVC rerun the stage, and Snakemake rebuilds only that figure.
    checkpoint = origin / "data/runs/cartpole10/ppo/varshare/seed0/checkpoint.pt"
    trained_at = checkpoint.stat().st_mtime_ns
    (origin / "figures/fig1_cartpole10_ppo_methods.png").unlink()
    out = dvc(origin, env, "repro")
    assert "Running stage 'study'" in out and "rule train" not in out
    assert (origin / "figures/fig1_cartpole10_ppo_methods.png").is_file()
    assert checkpoint.stat().st_mtime_ns == trained_at
    assert "didn't change" in dvc(origin, env, "repro")

    dvc(origin, env, "push")
    assert any(p.is_file() for p in storage.rglob("*")), "push did not reach the default remote"
    run(origin, env, "git", "add", "-A")
    run(origin, env, *GIT_COMMIT, "-m", "study outputs (dvc.lock)")
    assert run(origin, env, "git", "status", "--porcelain") == ""  # outputs are ignored by git
    original = file_hashes(origin)
    assert any(p.startswith("figures/") for p in original) and any(p.startswith("data/runs/") for p in original)

    clone = tmp_path / "clone"
    run(tmp_path, env, "git", "clone", "-q", str(origin), str(clone))
    assert not (clone / "data").exists() and not (clone / "figures").exists()
    dvc(clone, env, "remote", "modify", "--local", "local", "url", str(storage))  # documented re-pointing
    assert "local" in (clone / ".dvc/config.local").read_text()
    dvc(clone, env, "pull")
    assert file_hashes(clone) == original
    assert run(clone, env, "git", "status", "--porcelain") == ""

    # File times after a pull are arbitrary. Make them adversarial (inputs newer than outputs, and
    # everything older than the sources git just wrote): Snakemake would now rebuild.
    pulled = sorted(p for top in ("data", "figures") for p in (clone / top).rglob("*") if p.is_file())
    past = time.time() - 3600
    for i, path in enumerate(reversed(pulled)):
        os.utime(path, (past + i, past + i))
    assert re.search(r"^train\s+3$", snakemake(clone, env, "-n"), re.MULTILINE)

    snakemake(clone, env, "--touch")
    assert "Nothing to be done" in snakemake(clone, env, "-n")
    assert file_hashes(clone) == original  # --touch changes times, never contents
    assert "up to date" in dvc(clone, env, "status")
