"""The network-level seam every algorithm builds on, for every method: SAC-shaped networks (an actor,
twin Q networks and their Polyak targets) built from the same method object as PPO's actor-critic;
Polyak copies of a network equal a fresh network with the same parameters; ``torch.func``
transforms over a method's network; the scale of the combined shared gradients; CUDA."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch.func import functional_call, grad, stack_module_state, vmap

from varshare.algos.per_task_gradients import apply_combined_gradients, task_replicas
from varshare.config import METHODS, load_config
from varshare.methods import make_method
from varshare.methods.grad_combiners import cagrad, pcgrad
from varshare.nn import MultiTaskMLP, NetworkNoise, shared_parameters
from helpers import PPO_OVERRIDES, gen, make_ppo, randomise_

M, OBS_DIM, ACT_DIM, N_ACTIONS, B = 3, 5, 2, 4, 6


def method_for(name: str, num_tasks: int = M, **overrides):
    base = {"suite": "cartpole10", "methods": [name], "seeds": [0], "total_steps_per_task": 1000}
    return make_method(name, load_config(base, overrides), num_tasks, 0)


class SACNetworks(torch.nn.Module):
    """What multi-task SAC builds from a method: an actor, twin critics and their Polyak targets."""

    def __init__(self, method, discrete: bool):
        super().__init__()
        hidden, out = [16, 16], N_ACTIONS if discrete else 2 * ACT_DIM  # continuous: mean and log-std
        q_in, q_out = (OBS_DIM, N_ACTIONS) if discrete else (OBS_DIM + ACT_DIM, 1)
        self.actor = method.build_network(OBS_DIM, out, hidden, "relu", head_gain=0.01)
        self.q1 = method.build_network(q_in, q_out, hidden, "relu", head_gain=1.0)
        self.q2 = method.build_network(q_in, q_out, hidden, "relu", head_gain=1.0)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)

    def critics(self):
        return {"q1": self.q1, "q2": self.q2}


def _sub(params: dict, prefix: str) -> dict:
    """The entries of ``params`` under ``prefix.``, with the prefix removed."""
    return {name[len(prefix) + 1:]: value for name, value in params.items() if name.startswith(prefix + ".")}


def polyak_(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """CleanRL's soft update: ``target ← τ·source + (1 − τ)·target`` on ``.data``."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.data.copy_(tau * s.data + (1 - tau) * t.data)


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("name", METHODS)
def test_sac_networks_are_built_from_every_method_and_train(name, discrete):
    method = method_for(name)
    torch.manual_seed(0)
    nets = SACNetworks(method, discrete)
    assert all(isinstance(n, MultiTaskMLP) for n in nets.children())
    obs = torch.randn(M, B, OBS_DIM, generator=gen(1))
    critic_in = obs if discrete else torch.cat([obs, torch.randn(M, B, ACT_DIM, generator=gen(2))], dim=-1)
    g = gen(3)
    out = nets.actor(obs, nets.actor.draw_noise(B, g))
    q = [net(critic_in, net.draw_noise(B, g)) for net in (nets.q1, nets.q2)]
    targets = [net(critic_in, None) for net in (nets.q1_target, nets.q2_target)]  # targets: mean weights
    assert out.shape == (M, B, N_ACTIONS if discrete else 2 * ACT_DIM)
    assert all(t.shape == (M, B, N_ACTIONS if discrete else 1) for t in q + targets)
    torch.testing.assert_close(targets[0], nets.q1(critic_in, None))  # a fresh target equals its source
    assert nets.q1.stochastic == nets.actor.stochastic == name.startswith("varshare")

    critic_extra, _ = method.extra_loss(nets.critics(), 1000)
    actor_extra, _ = method.extra_loss({"actor": nets.actor}, 1000)
    loss = sum(t.square().mean() for t in q) + out.square().mean() + critic_extra + actor_extra
    assert torch.isfinite(loss)
    loss.backward()
    for net in (nets.actor, nets.q1, nets.q2):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    assert all(p.grad is None for p in nets.q1_target.parameters())
    assert torch.isfinite(torch.as_tensor(critic_extra)) and torch.isfinite(torch.as_tensor(actor_extra))


@pytest.mark.parametrize("name", ["pcgrad", "cagrad"])
def test_per_task_gradients_of_twin_critics_combine_like_the_actor_critic(name):
    """PCGrad/CAGrad on the shared parameters of an SAC critic loss: one backward through replicas
    of q1 and q2 gives each task's gradient, as M separate backward passes would."""
    method = method_for(name)
    nets = SACNetworks(method, discrete=True).double()
    critics = torch.nn.ModuleDict(nets.critics())
    obs = torch.randn(M, B, OBS_DIM, generator=gen(4), dtype=torch.float64)
    shared = shared_parameters(critics)
    replicas = task_replicas(shared, M)

    def per_task_loss(q1, q2):
        return sum(q.square().mean(dim=(1, 2)) for q in (q1, q2))

    def critic_outputs(module):
        return module["q1"](obs), module["q2"](obs)

    with_replicas = (functional_call(critics.q1, _sub(replicas, "q1"), (obs,)),
                     functional_call(critics.q2, _sub(replicas, "q2"), (obs,)))
    per_task_loss(*with_replicas).sum().backward()
    losses = per_task_loss(*critic_outputs(critics))
    for m in range(M):
        grads = torch.autograd.grad(losses[m], list(shared.values()), retain_graph=True)
        for (n, _), g_m in zip(shared.items(), grads):
            torch.testing.assert_close(replicas[n].grad[m], g_m, rtol=1e-10, atol=1e-12)
    apply_combined_gradients(shared, replicas, method.combine_gradients)
    assert all(p.grad is not None for p in shared.values())


@pytest.mark.parametrize("mode", ["copy", "lerp"])
@pytest.mark.parametrize("name", METHODS)
def test_polyak_copy_then_forward_equals_a_fresh_network_with_the_same_parameters(name, mode):
    method = method_for(name)
    torch.manual_seed(0)
    source = method.build_network(OBS_DIM, 1, [8, 8], "tanh", 1.0)
    target = method.build_network(OBS_DIM, 1, [8, 8], "tanh", 1.0)  # a different init
    randomise_(source, 5)
    x = torch.randn(M, B, OBS_DIM, generator=gen(6))
    target(x, target.draw_noise(B, gen(7)))  # a forward pass before the update must leave no trace
    if mode == "copy":
        polyak_(target, source, tau=1.0)
    else:
        with torch.no_grad():
            for t, s in zip(target.parameters(), source.parameters()):
                t.lerp_(s, 0.3)
    fresh = method.build_network(OBS_DIM, 1, [8, 8], "tanh", 1.0)
    fresh.load_state_dict(target.state_dict())
    for noise in (None, target.draw_noise(B, gen(8))):
        assert torch.equal(target(x, noise), fresh(x, noise))
    if mode == "copy":
        assert torch.equal(target(x, None), source(x, None))


@pytest.mark.parametrize("name", METHODS)
def test_torch_func_vmap_over_stacked_networks_and_grad_work_for_every_method(name):
    method = method_for(name)
    torch.manual_seed(0)
    nets = [method.build_network(OBS_DIM, 2, [8], "tanh", 1.0) for _ in range(2)]
    for i, net in enumerate(nets):
        randomise_(net, 10 + i)
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")
    x = torch.randn(M, B, OBS_DIM, generator=gen(9))
    noise = nets[0].draw_noise(B, gen(10))

    def forward(p, b, inputs):
        return functional_call(base, (p, b), (inputs, noise))

    stacked = vmap(forward, in_dims=(0, 0, None))(params, buffers, x)
    for i, net in enumerate(nets):
        torch.testing.assert_close(stacked[i], net(x, noise), rtol=1e-6, atol=1e-6)

    own = {k: v.detach() for k, v in nets[0].named_parameters()}
    grads = grad(lambda p: functional_call(nets[0], p, (x, noise)).square().sum())(own)
    reference = torch.autograd.grad(nets[0](x, noise).square().sum(), list(nets[0].parameters()), allow_unused=True)
    for (k, p), r in zip(nets[0].named_parameters(), reference):  # unused (e.g. prior scales): zero
        torch.testing.assert_close(grads[k], torch.zeros_like(p) if r is None else r, rtol=1e-5, atol=1e-6)


def test_combined_shared_gradients_are_on_the_scale_of_the_summed_losses():
    """Every method's shared-parameter update is on the sum-of-task-losses scale: PCGrad sums,
    CAGrad's mean-scale d is multiplied by M; without conflicts both equal the plain sum."""
    g = torch.randn(7, generator=gen(11), dtype=torch.float64)
    agreeing = torch.stack([g, 2 * g, 0.5 * g])  # no conflict: nothing to project or avert
    for name in ("pcgrad", "cagrad", "hard_sharing"):
        method = method_for(name, **{"cagrad.c": 0.0})
        torch.testing.assert_close(method.combine_gradients(agreeing), agreeing.sum(0), rtol=1e-12, atol=1e-12)
    conflicting = torch.randn(3, 7, generator=gen(12), dtype=torch.float64)
    conflicting[1] = -conflicting[0] + 0.1 * conflicting[1]
    c = 0.4
    method = method_for("cagrad", **{"cagrad.c": c})
    torch.testing.assert_close(method.combine_gradients(conflicting), 3 * cagrad(conflicting, c=c), rtol=1e-12,
                               atol=1e-12)
    method = method_for("pcgrad")
    expected = pcgrad(conflicting, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(method.combine_gradients(conflicting), expected, rtol=1e-12, atol=1e-12)
    # identical tasks: CAGrad moves by (1 + c)/(1 + c²) of the sum (rescale 1), not of the mean
    same = g.expand(3, 7)
    torch.testing.assert_close(method_for("cagrad", **{"cagrad.c": c}).combine_gradients(same),
                               3 * g * (1 + c) / (1 + c**2), rtol=1e-7, atol=1e-9)  # CAGrad's 1e-8 smoothing


def test_cagrad_with_c_zero_inside_ppo_reproduces_hard_sharing():
    plain = make_ppo("hard_sharing", seed=5)
    averse = make_ppo("cagrad", seed=5, **{"cagrad.c": 0.0})
    for a, b in zip(plain.model.parameters(), averse.model.parameters()):
        assert torch.equal(a, b)
    plain.iterate(), averse.iterate()
    for (name, a), b in zip(plain.model.named_parameters(), averse.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert PPO_OVERRIDES["ppo.num_minibatches"] >= 2  # several steps: a scale error would compound


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("name", METHODS)
def test_every_method_trains_on_cuda_like_on_the_cpu(name):
    method = method_for(name)
    torch.manual_seed(0)
    cpu_net = method.build_network(OBS_DIM, 2, [8, 8], "tanh", 1.0).double()
    cuda_net = copy.deepcopy(cpu_net).cuda()
    x = torch.randn(M, B, OBS_DIM, generator=gen(13), dtype=torch.float64)
    noise = cuda_net.draw_noise(B, torch.Generator(device="cuda").manual_seed(0))
    cpu_noise = None if noise is None else NetworkNoise(tuple(
        None if n is None else dataclasses.replace(n, **{f.name: getattr(n, f.name).cpu() for f in dataclasses.fields(n)})
        for n in noise.layers))
    out_cuda = cuda_net(x.cuda(), noise)
    torch.testing.assert_close(out_cuda.cpu(), cpu_net(x, cpu_noise), rtol=1e-9, atol=1e-9)
    loss = out_cuda.square().sum() + method.extra_loss({"net": cuda_net}, 10)[0].to("cuda")
    loss.backward()
    polyak_(copy.deepcopy(cuda_net), cuda_net, 0.005)
    assert all(p.grad is None or p.grad.is_cuda for p in cuda_net.parameters())
