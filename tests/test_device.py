"""Device handling: `device: auto`, one host→device copy per env step, and (with CUDA) training on
the GPU like on the CPU."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import varshare.algos.ppo as ppo_module
import varshare.algos.sac as sac_module
from varshare.algos.device_step import upload
from varshare.config import load_config
from varshare.envs import build_suite, make_vec_env
from varshare.envs.base import VecStep
from varshare.methods import make_method
from varshare.train import resolve_device, train

CUDA = torch.cuda.is_available()
TINY_SAC = {"total_steps_per_task": 64, "envs_per_task": 2, "sac.learning_starts": 16, "sac.steps_per_iteration": 16,
            "sac.batch_per_task": 8, "sac.buffer_size": 64, "sac.train_freq": 1, "eval.every_steps": 64,
            "eval.episodes": 2, "checkpoint.every_steps": 64, "network.hidden_sizes": [16]}
TINY_PPO = {"total_steps_per_task": 64, "envs_per_task": 2, "ppo.num_steps": 16, "ppo.num_minibatches": 2,
            "eval.every_steps": 64, "eval.episodes": 2, "checkpoint.every_steps": 64, "network.hidden_sizes": [16],
            "ppo.normalize_obs": True}


def test_upload_packs_a_step_into_one_copy(monkeypatch):
    rng = np.random.default_rng(0)
    step = VecStep(obs=rng.normal(size=(2, 3, 5)).astype(np.float32), reward=rng.normal(size=(2, 3)).astype(np.float32),
                   terminated=rng.random((2, 3)) < 0.5, truncated=rng.random((2, 3)) < 0.5,
                   final_obs=rng.normal(size=(2, 3, 5)).astype(np.float32), success=np.zeros((2, 3), bool),
                   episode_return=np.zeros((2, 3)), episode_length=np.zeros((2, 3), np.int64),
                   episode_success=np.zeros((2, 3), bool))
    copies = []
    original = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: copies.append(a) or original(self, *a, **k))
    on_device = upload(step, torch.device("cpu"))
    assert len(copies) == 1
    for name in ("obs", "final_obs", "reward", "terminated", "truncated"):
        value = getattr(on_device, name)
        assert value.dtype == torch.float32
        np.testing.assert_array_equal(value.numpy(), getattr(step, name).astype(np.float32), err_msg=name)


@pytest.mark.parametrize("algo, config, overrides", [("sac", "configs/cartpole10_sac.yaml", TINY_SAC),
                                                     ("ppo", "configs/cartpole10_ppo.yaml", TINY_PPO)])
def test_an_env_step_makes_one_upload_and_no_other_host_copy(monkeypatch, algo, config, overrides):
    """After construction every env step goes through `upload` once; the agents' per-array
    conversion (`_tensor`) is never called on the hot path."""
    module = {"sac": sac_module, "ppo": ppo_module}[algo]
    config = load_config(config, overrides)
    env = make_vec_env(build_suite("cartpole10")[:2], 2, seed=0)
    agent = module.AGENT(config, make_method("varshare", config, 2, 0), env, seed=0)
    uploads = []
    monkeypatch.setattr(module, "upload", lambda step, device: uploads.append(1) or upload(step, device))
    monkeypatch.setattr(agent, "_tensor", lambda array: pytest.fail("a per-array host→device copy on the hot path"))
    env_steps = []
    env_step = env.step
    monkeypatch.setattr(env, "step", lambda actions: env_steps.append(1) or env_step(actions))
    for _ in range(2):
        agent.iterate()
    assert len(uploads) == len(env_steps) > 0


def test_device_auto_trains_on_what_is_there_and_the_manifest_says_which(tmp_path):
    assert resolve_device("auto") == torch.device("cuda" if CUDA else "cpu")
    config = load_config("configs/cartpole10_sac.yaml", {**TINY_SAC, "device": "auto"})
    train(config, build_suite("cartpole10")[:2], "hard_sharing", 0, tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["device"] == ("cuda" if CUDA else "cpu")


@pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine")
@pytest.mark.parametrize("algo, config, overrides", [("sac", "configs/cartpole10_sac.yaml", TINY_SAC),
                                                     ("ppo", "configs/cartpole10_ppo.yaml", TINY_PPO)])
def test_agents_train_on_cuda_with_everything_on_the_gpu(algo, config, overrides):
    module = {"sac": sac_module, "ppo": ppo_module}[algo]
    config = load_config(config, overrides)
    env = make_vec_env(build_suite("cartpole10")[:2], 2, seed=0)
    agent = module.AGENT(config, make_method("varshare", config, 2, 0), env, seed=0, device=torch.device("cuda"))
    stats = [agent.iterate() for _ in range(3)][-1]
    assert all(p.is_cuda for p in agent.model.parameters())
    assert all(b.is_cuda for b in agent.model.buffers())
    if algo == "sac":
        assert agent.buffer.obs.is_cuda
    assert all(math.isfinite(v) for k, v in stats.items() if k.endswith("loss"))
