"""The locked environment: the lock's pins and markers, how an environment differs from them, the
staleness digest, the CUDA-only packages left out of a compiled lock, manifests carrying the lock's
hash, and aggregates warning about runs from different environments."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_analysis import make_run

from varshare import environment as E
from varshare.analysis.results import write_aggregate

REPO = Path(__file__).resolve().parents[1]
LOCK_TEXT = """# a hand-made lock
# inputs sha256: abc
numpy==2.4.6 ; python_full_version >= '3.11' \\
    --hash=sha256:00
    # via varshare (pyproject.toml)
numpy==1.26.4 ; python_full_version < '3.11' \\
    --hash=sha256:11
Scikit_Learn==1.5.0 \\
    --hash=sha256:22
"""


def test_pins_apply_markers_and_canonical_names(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK_TEXT)
    assert E.read_pins(lock) == {"numpy": "2.4.6", "scikit-learn": "1.5.0"}  # this is Python ≥ 3.11
    assert E.recorded_digest(lock) == "abc"


def test_differences_between_an_environment_and_the_lock():
    pins = {"numpy": "2.4.6", "scipy": "1.14.0", "pyyaml": "6.0.2"}
    present = {"numpy": "2.4.6", "scipy": "1.13.0", "rich": "13.0", "torch": "2.13.0+cpu", "pip": "23.2",
               "varshare": "0.1.0", "nvidia-cublas": "13.1", "triton": "3.7.1"}
    assert E.differences(pins, present) == ["pyyaml: missing (locked 6.0.2)", "rich: 13.0 (not in the lock)",
                                            "scipy: 1.13.0 (locked 1.14.0)"]
    assert E.differences(pins | {"rich": "13.0", "scipy": "1.13.0"}, present | {"pyyaml": "6.0.2"}) == []
    assert E.differences({}, {"torch": "2.13.0+cu128"}) == []  # any build of the pinned version
    assert E.differences({}, {"torch": "2.14.1"}) == ["torch: 2.14.1 (pinned 2.13.0)"]
    assert E.differences({}, {}) == ["torch: missing (pinned 2.13.0)"]


def test_input_digest_tracks_dependencies_not_layout(tmp_path):
    original = (REPO / "pyproject.toml").read_text()
    copy = tmp_path / "pyproject.toml"
    copy.write_text(original.replace('"numpy>=1.26",', '"numpy>=1.26",  # a new comment'))
    assert E.input_digest(copy) == E.input_digest(REPO / "pyproject.toml")
    copy.write_text(original.replace('"numpy>=1.26",', '"numpy>=2.0",'))
    assert E.input_digest(copy) != E.input_digest(REPO / "pyproject.toml")
    assert E.input_digest(REPO / "pyproject.toml", "torch==2.14.1") != E.input_digest(REPO / "pyproject.toml")
    assert not E.lock_is_current(REPO / "requirements.lock", copy)


def test_the_committed_lock_is_current():
    """What CI checks: requirements.lock was compiled from the dependencies pyproject.toml declares
    (after editing them: `make lock`)."""
    assert E.lock_is_current(REPO / "requirements.lock", REPO / "pyproject.toml")
    pins = E.read_pins(REPO / "requirements.lock")
    assert "torch" not in pins and not any(name.startswith("nvidia-") for name in pins)
    assert {"numpy", "snakemake", "sympy", "pytest", "uv"} <= set(pins)  # sympy: torch's, kept


def test_a_compiled_lock_leaves_out_what_only_torch_needs_on_cuda():
    blocks = ["sympy==1.14.0 \\\n    --hash=sha256:0\n    # via torch",
              "nvidia-cublas==13.1 ; sys_platform == 'linux' \\\n    --hash=sha256:1\n    # via torch",
              "cuda-bindings==13.5 \\\n    --hash=sha256:2\n    # via\n    #   cuda-toolkit\n    #   nvidia-cublas",
              "cuda-toolkit==13.0 \\\n    --hash=sha256:3\n    # via torch",
              "nvidia-ml-py==12.0 \\\n    --hash=sha256:4\n    # via\n    #   torch\n    #   dvc",
              "triton==3.7.1 \\\n    --hash=sha256:5\n    # via torch"]
    kept = [block.split("==")[0] for block in E._without_torch_only(blocks)]
    assert kept == ["sympy", "nvidia-ml-py"]  # nvidia-ml-py: dvc needs it too


def test_manifest_records_the_lock_and_whether_the_environment_matches(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK_TEXT)
    record = E.environment_record(lock)
    assert record.lock_sha256 == hashlib.sha256(lock.read_bytes()).hexdigest()
    assert record.matches_lock is False and "scikit-learn: missing (locked 1.5.0)" in record.differences
    assert E.environment_record(tmp_path / "nothing.lock").to_dict()["matches_lock"] is None

    from test_train import train  # a real (tiny) training run writes its manifest

    result = train(tmp_path, "run", "hard_sharing")
    assert result.returncode == 0, result.stderr
    environment = json.loads((tmp_path / "run/manifest.json").read_text())["environment"]
    assert environment["lock_sha256"] == hashlib.sha256((REPO / "requirements.lock").read_bytes()).hexdigest()
    now = E.environment_record()
    assert environment["matches_lock"] == now.matches_lock and environment["num_differences"] == len(now.differences)


def manifest(run_dir: Path, sha: str | None, matches: bool = True, differences=()) -> Path:
    record = None if sha is None else {"lock_sha256": sha, "matches_lock": matches,
                                       "differences": list(differences), "num_differences": len(differences)}
    run = json.loads((run_dir / "done.json").read_text())["run"]
    (run_dir / "manifest.json").write_text(json.dumps({"run": run, "environment": record}))
    return run_dir


def test_aggregating_runs_from_different_environments_warns(tmp_path):
    evals = {0: [1, 2, 3], 100: [10, 20, 30]}
    same = [manifest(make_run(tmp_path / "a", "varshare", seed, evals), "1" * 64) for seed in (0, 1)]
    assert write_aggregate(same, "cartpole10", tmp_path / "r1", reps=20)["environment_warnings"] == []

    other = manifest(make_run(tmp_path / "b", "hard_sharing", 0, evals), "2" * 64)
    drifted = manifest(make_run(tmp_path / "b", "hard_sharing", 1, evals), "1" * 64, False, ["numpy: 2.0 (locked 2.4.6)"])
    summary = write_aggregate([*same, other, drifted], "cartpole10", tmp_path / "r2", reps=20)
    mixed, unmatched = summary["environment_warnings"]
    assert mixed.startswith("warning: these runs come from 2 different environments (lock sha256 111111111111 (3 runs")
    assert "222222222222 (1 runs, e.g. cartpole10/ppo/hard_sharing/seed0)" in mixed
    assert unmatched == ("warning: 1 runs ran in an environment that did not match its lock, e.g. "
                         "cartpole10/ppo/hard_sharing/seed1: numpy: 2.0 (locked 2.4.6)")
    assert summary["environments"]["cartpole10/ppo/hard_sharing/seed0"] == "2" * 64

    old = manifest(make_run(tmp_path / "c", "hard_sharing", 0, evals), None)  # before manifests had one
    cli = subprocess.run([sys.executable, "-m", "varshare.cli", "aggregate", "--suite", "cartpole10", "--out",
                          str(tmp_path / "r3"), "--reps", "20", str(same[0]), str(old)], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert "2 different environments" in cli.stderr and "no lock recorded" in cli.stderr


@pytest.mark.slow
def test_env_check_cli_on_the_repository(tmp_path):
    done = subprocess.run([sys.executable, "-m", "varshare.cli", "env-check", "--lock", str(REPO / "requirements.lock"),
                           "--pyproject", str(REPO / "pyproject.toml")], capture_output=True, text=True)
    assert "current" in done.stdout and "pip freeze diff" in done.stdout
    assert done.returncode == (0 if E.environment_record(REPO / "requirements.lock").matches_lock else 1)
    stale = tmp_path / "pyproject.toml"
    stale.write_text((REPO / "pyproject.toml").read_text().replace('"numpy>=1.26",', '"numpy>=2.0",'))
    refused = subprocess.run([sys.executable, "-m", "varshare.cli", "env-check", "--lock", str(REPO / "requirements.lock"),
                              "--pyproject", str(stale)], capture_output=True, text=True)
    assert refused.returncode == 1 and "STALE" in refused.stdout
