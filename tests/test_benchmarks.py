"""The benchmark scripts run (tiny settings) and print what the README says they print.

They measure speed and learning, so they are not part of the assertions; this only guards against
a script that no longer starts."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


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
