"""The benchmark scripts run (tiny settings) and print what the README says they print.

They measure speed and learning, so they are not part of the assertions; this only guards against
a script that no longer starts."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str, env: dict | None = None) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def table(lines: list[str]) -> list[list[str]]:
    """Rows of a printed table whose columns are separated by two or more spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


@pytest.mark.slow
def test_throughput_benchmark_prints_a_ratio_per_method():
    out = run_script("benchmarks/throughput.py", "--iterations", "1", "--rounds", "1", "--methods", "hard_sharing", "varshare_lora")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert out.splitlines()[0].split()[0] == "method"
    assert set(rows) == {"hard_sharing", "varshare_lora"}
    assert rows["hard_sharing"][-1] == "1.00x" and rows["varshare_lora"][-1].endswith("x")


@pytest.mark.slow
def test_single_task_sanity_script_runs():
    out = run_script("benchmarks/sanity_single_task.py", "--steps", "1024", "--seeds", "0")
    assert "seed 0" in out


#: MT10 at test size: two tasks, tiny networks (the goal sets alone take ~7 s per process)
MT10_TINY = ("--num-tasks", "2", "--set", "network.hidden_sizes=[32,32]")


@pytest.mark.slow
def test_env_benchmark_prints_sync_and_async_rows_with_ratios():
    out = run_script("benchmarks/envs.py", "--suites", "cartpole10", "mt10", "--num-tasks", "2",
                     "--envs-per-task", "1", "2", "--workers", "1", "2", "--steps", "3")
    cartpole, mt10 = (block.splitlines() for block in out.strip().split("\n\n"))
    assert cartpole[0].startswith("cartpole10 (M = 2;") and mt10[0].startswith("mt10 (M = 2;")
    assert "ratio against sync N=1" in mt10[0]
    assert cartpole[1].split() == mt10[1].split() == ["N", "mode", "workers", "env-steps/s", "ratio"]
    assert [row[:3] for row in table(cartpole[2:])] == [["1", "sync", "-"], ["2", "sync", "-"]]
    rows = table(mt10[2:])
    assert [row[:3] for row in rows] == [["1", "sync", "-"], ["1", "async", "1"], ["1", "async", "2"],
                                         ["2", "sync", "-"], ["2", "async", "1"], ["2", "async", "2"]]
    assert rows[0][-1] == "1.00x" and all(re.fullmatch(r"\d+\.\d\dx", row[-1]) for row in rows)


@pytest.mark.slow
def test_throughput_mt10_mode_prints_training_over_raw_env_ratios():
    out = run_script("benchmarks/throughput.py", "--mt10", "--envs-per-task", "2", "--steps-per-task", "4",
                     "--learning-starts", "2", "--rounds", "1", *MT10_TINY)
    lines = out.strip().splitlines()
    assert lines[0].startswith("MT10 training vs raw env (env-steps/s of all tasks; device cpu")
    header, *rows = table(lines[1:])
    assert header == ["algo", "method", "MxN", "mode", "steps/task", "train env-steps/s", "raw env-steps/s",
                      "train/raw (IQR)", "learner", "grad-steps/s"]
    assert [row[:4] for row in rows] == [["sac", "hard_sharing", "2x2", "sync"], ["sac", "varshare", "2x2", "sync"],
                                         ["ppo", "hard_sharing", "2x2", "sync"], ["ppo", "varshare", "2x2", "sync"]]
    for row in rows:
        assert re.fullmatch(r"\d\.\d{3} \(\d\.\d{3}-\d\.\d{3}\)", row[7]) and row[8].endswith("%")
        assert float(row[9].replace(",", "")) > 0  # gradient steps ran in the timed iteration


def test_gpu_check_without_cuda_says_so_and_exits_0():
    out = run_script("benchmarks/gpu_check.py", env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert out.startswith("CUDA is not available")


@pytest.mark.slow
def test_gpu_check_cpu_path_passes_its_checks():
    """Training runs through varshare.train, their directories and models checked, speeds printed;
    varshare (stochastic weights, sampled evaluation strategies) for both algorithms."""
    out = run_script("benchmarks/gpu_check.py", "--devices", "cpu", "--methods", "varshare", "--steps-per-task", "8",
                     "--learning-starts", "2", "--episode-steps", "10", "--set", "envs_per_task=2", *MT10_TINY)
    def block(title: str) -> list[list[str]]:
        """The table printed under ``title``: header and rows."""
        return table(out[out.index(f"\n{title}"):].strip().split("\n\n")[0].splitlines()[1:])

    header, *speeds = block("Speed of one training iteration")
    assert header == ["algo", "method", "cpu env-steps/s", "cpu grad-steps/s"]
    assert [row[:2] for row in speeds] == [["sac", "varshare"], ["ppo", "varshare"]]
    checks = [line.split("  ") for line in out.splitlines() if line.startswith("check  ")]
    assert {row[1] for row in checks} == {"cpu/sac/varshare", "cpu/ppo/varshare"}
    assert {row[2] for row in checks} == {"run finished (done.json)", "manifest records the device",
                                          "losses in metrics.csv, all finite", "model parameters and buffers on cpu"}
    assert all(row[3] == "ok" for row in checks)
    assert out.strip().endswith("8 of 8 checks passed")
