"""The Snakemake workflow as users run it: `figures/all` from a clean copy, rebuilds, bad config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of the workflow's files, as a fresh checkout has them."""
    for name in ("Snakefile", "workflow", "configs", "src"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tmp_path / name)
    return tmp_path


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", *args],
        cwd=workdir, env=env, capture_output=True, text=True,
    )


def test_figures_all_builds_from_clean_and_rebuilds_a_deleted_output(workdir):
    result = snakemake(workdir, "figures/all")
    assert result.returncode == 0, result.stderr
    manifest = (workdir / "figures" / "all").read_text().split()
    assert manifest == [f"data/tasks/{s}.json" for s in ("cartpole10", "lunarlander20", "mt10")]
    assert all((workdir / path).is_file() for path in manifest)

    (workdir / "data/tasks/lunarlander20.json").unlink()
    result = snakemake(workdir, "figures/all")
    assert result.returncode == 0, result.stderr
    assert (workdir / "data/tasks/lunarlander20.json").is_file()
    assert "Nothing to be done" in snakemake(workdir, "figures/all").stderr


def test_unknown_suite_in_config_fails_before_any_job(workdir):
    result = snakemake(workdir, "figures/all", "--config", "suites=[cartpole10,pendulum5]")
    assert result.returncode != 0
    assert "unknown suite 'pendulum5'" in result.stderr and "cartpole10" in result.stderr
    assert not (workdir / "data").exists()
