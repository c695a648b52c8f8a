"""Kill-and-resume gives the uninterrupted run's metrics; a NaN loss stops with the last good checkpoint."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from varshare.algos.agent import NonFiniteLossError
from varshare.config import load_config
from varshare.envs import build_suite, specs_to_json
from varshare.methods import REGISTRY
from varshare.methods.hard_sharing import HardSharing
from varshare.train import train

RUNS = {
    # (suite, algo): (config, tasks kept, overrides)
    ("cartpole10", "ppo"): ("configs/cartpole10_ppo.yaml", 3, ["total_steps_per_task=1024", "envs_per_task=4",
                                                               "ppo.num_steps=16", "eval.every_steps=256"]),
    ("lunarlander20", "ppo"): ("configs/lunarlander20_ppo.yaml", 2, ["total_steps_per_task=512", "envs_per_task=2",
                                                                     "ppo.num_steps=32", "ppo.num_minibatches=4",
                                                                     "eval.every_steps=256", "eval.episodes=1"]),
    # SAC: the replay buffer wraps (capacity 96), a method phase (7 gradient steps) spans each checkpoint
    ("cartpole10", "sac"): ("configs/cartpole10_sac.yaml", 3, [
        "total_steps_per_task=640", "envs_per_task=2", "sac.steps_per_iteration=32", "sac.learning_starts=64",
        "sac.train_freq=2", "sac.batch_per_task=16", "sac.buffer_size=96", "sac.method_phase_steps=7",
        "eval.every_steps=128", "eval.episodes=2"]),
}


def command(tmp_path: Path, suite: str, algo: str, out: Path, method: str) -> list[str]:
    config, keep, overrides = RUNS[suite, algo]
    tasks = tmp_path / f"{suite}.json"
    tasks.write_text(specs_to_json(build_suite(suite)[:keep]))
    sets = [item for o in overrides + ["checkpoint.every_steps=64", "network.hidden_sizes=[32,32]"]
            for item in ("--set", o)]
    return [sys.executable, "-m", "varshare.cli", "train", "--config", config, "--suite", suite, "--algo", algo,
            "--method", method, "--seed", "5", "--out", str(out), "--tasks", str(tasks), *sets]


@pytest.mark.slow
@pytest.mark.parametrize("suite, algo, method", [
    ("cartpole10", "ppo", "varshare"), ("cartpole10", "ppo", "pcgrad"), ("lunarlander20", "ppo", "varshare"),
    ("cartpole10", "sac", "varshare_trust_region"),  # PCGrad's generator state: the PPO case
])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, suite, algo, method):
    reference = tmp_path / "reference"
    subprocess.run(command(tmp_path, suite, algo, reference, method), check=True, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen(command(tmp_path, suite, algo, killed, method), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "resume.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (killed / "resume.pt").exists() and not (killed / "done.json").exists()

    resumed = subprocess.run(command(tmp_path, suite, algo, killed, method), check=True, capture_output=True, text=True)
    assert "resumed from" in resumed.stdout
    assert (killed / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()
    assert not (killed / "resume.pt").exists() and (killed / "done.json").exists()
    final, ref_final = (torch.load(d / "checkpoint.pt", weights_only=False)["model"] for d in (killed, reference))
    assert all(torch.equal(final[k], ref_final[k]) for k in ref_final)

    again = subprocess.run(command(tmp_path, suite, algo, killed, method), check=True, capture_output=True, text=True)
    assert "already finished" in again.stdout


class ExplodingMethod(HardSharing):
    """hard_sharing whose extra loss turns NaN on its 40th call: 16 minibatch steps per iteration,
    so in the third iteration, after the checkpoint saved at the end of the second."""

    name = "exploding"

    def __init__(self, *args):
        super().__init__(*args)
        self.calls = 0

    def extra_loss(self, networks, examples_per_task):
        self.calls += 1
        return torch.tensor(math.nan if self.calls >= 40 else 0.0), {}


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "exploding", ExplodingMethod)
    config = load_config("configs/cartpole10_ppo.yaml", {
        "methods": ["hard_sharing"], "seeds": [0], "total_steps_per_task": 4096, "envs_per_task": 2,
        "ppo.num_steps": 16, "checkpoint.every_steps": 64, "network.hidden_sizes": [8]})
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at iteration 2 \(rl_loss=[0-9.]+, extra_loss=nan\)"):
        train(config, build_suite("cartpole10")[:2], "exploding", 0, out)
    state = torch.load(out / "resume.pt", weights_only=False)
    assert state["iteration"] == 2  # checkpoints every 64 steps per task = every 2 iterations
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (out / "done.json").exists() and not (out / "checkpoint.pt").exists()
    assert json.loads(json.dumps(state["evaluations"])) == [0]
