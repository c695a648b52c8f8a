"""Diagnostics: VarShare's per-task |μ|, σ and KL per layer; the task-gradient cosine of PCGrad/CAGrad."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from varshare.algos.per_task_gradients import apply_combined_gradients
from varshare.algos.ppo import PPO, ActorCritic
from varshare.config import load_config
from varshare.envs import build_suite, make_vec_env
from varshare.methods import make_method
from varshare.nn import gaussian_kl, shared_parameters


def config(method: str):
    return load_config({"suite": "cartpole10", "methods": [method], "seeds": [0], "total_steps_per_task": 64,
                        "envs_per_task": 2, "ppo": {"num_steps": 8, "num_minibatches": 2},
                        "network": {"hidden_sizes": [8]}})


def test_varshare_task_diagnostics_are_per_layer_and_task():
    method = make_method("varshare", config("varshare"), 3, 0)
    model = ActorCritic(method, 4, 2, True, method.config.network)
    layer = model.actor.layers[0]
    with torch.no_grad():
        layer.mu_weight[1].fill_(0.25)
        layer.rho_weight[2].fill_(0.0)
    stats = method.task_diagnostics(model.networks())
    assert set(stats) == {f"{kind}/{name}" for kind in ("mu_abs_mean", "sigma_mean", "kl")
                          for name in ("actor.layers.0", "actor.layers.1", "critic.layers.0", "critic.layers.1")}
    mu = stats["mu_abs_mean/actor.layers.0"]
    assert mu.shape == (3,) and mu[0] == 0 and math.isclose(mu[1].item(), 0.25)
    assert math.isclose(stats["sigma_mean/actor.layers.0"][2].item(), F.softplus(torch.tensor(0.0)).item(), rel_tol=1e-6)
    expected_kl = gaussian_kl(layer.mu_weight[1], layer.sigma_weight[1], 0.1) + gaussian_kl(layer.mu_bias[1], layer.sigma_bias[1], 0.1)
    assert math.isclose(stats["kl/actor.layers.0"][1].item(), expected_kl.item(), rel_tol=1e-5)


def test_gradient_cosine_of_gradient_surgery_methods():
    env = make_vec_env(build_suite("cartpole10")[:2], 2, seed=0)
    agent = PPO(config("pcgrad"), make_method("pcgrad", config("pcgrad"), 2, 0), env, seed=0)
    replicas = agent._replicas()
    directions = {0: 1.0, 1: -0.5}  # task 1's gradient is task 0's scaled by -0.5: cosine -1
    base = {name: torch.randn_like(r[0]) for name, r in replicas.items()}
    for name, replica in replicas.items():
        replica.grad = torch.stack([base[name] * directions[m] for m in range(2)])
    shared = shared_parameters(agent.model.networks())
    assert set(replicas) == set(shared)
    cosine = apply_combined_gradients(shared, replicas, agent.method.combine_gradients)
    assert math.isclose(cosine, -1.0, rel_tol=1e-6)
    stats = agent.iterate()
    assert -1.0 <= stats["grad_cosine_mean"] <= 1.0
