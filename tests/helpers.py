"""Helpers shared by the layer, method and variant tests (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from varshare.algos.ppo import PPO
from varshare.config import load_config
from varshare.envs import build_suite, make_vec_env
from varshare.methods import make_method

REPO = Path(__file__).resolve().parents[1]
#: what the workflow needs of a checkout
WORKFLOW_FILES = ("Snakefile", "workflow", "configs", "src")


def copy_checkout(dest: Path, names=WORKFLOW_FILES) -> Path:
    """Copy ``names`` (files or directories, relative to the repository) to ``dest``, as a fresh
    checkout has them (no ``__pycache__``); returns ``dest``."""
    for name in names:
        source, target = REPO / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return dest


#: a small but real PPO setting: 3 CartPole tasks × 2 envs, 8-step rollouts, 2 minibatches
PPO_OVERRIDES = {
    "envs_per_task": 2,
    "ppo.num_steps": 8,
    "ppo.num_minibatches": 2,
    "network.hidden_sizes": [32, 32],
    "total_steps_per_task": 160,
}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randomise_(model: torch.nn.Module, seed: int, scale: float = 0.5) -> None:
    """Random, non-trivial values for every parameter: ρ in [-1, 0.5] (σ ∈ [0.3, 1]), the rest
    N(0, scale²)."""
    g = gen(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "rho" in name:
                p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) * 1.5 - 1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def network_config(hidden_sizes=(16, 16), activation="tanh"):
    from varshare.config import NetworkConfig

    return NetworkConfig(hidden_sizes=list(hidden_sizes), activation=activation)


def make_ppo(method_name: str, seed: int = 0, method=None, **overrides) -> PPO:
    """PPO of ``method_name`` (or the given ``method`` object) with :data:`PPO_OVERRIDES`."""
    base = {"suite": "cartpole10", "methods": [method_name], "seeds": [0], "total_steps_per_task": 1000}
    cfg = load_config(base, {**PPO_OVERRIDES, **overrides})
    env = make_vec_env(build_suite("cartpole10")[:3], envs_per_task=2, seed=seed)
    method = method or make_method(method_name, cfg, env.num_tasks, seed)
    return PPO(cfg, method, env, seed=seed)
