"""The flat posterior (:class:`varshare.nn.flat_posterior.FlatPosterior`) against unflattened layers:
every model is compared with standalone copies of its layers (own Parameters, same values) run
through a hand-written actor-critic forward — outputs, gradients, Adam steps, layout, aliasing of
the layers' views, deepcopy / state_dict, parameter counts."""

from __future__ import annotations

import copy

import pytest
import torch

from helpers import gen, randomise_
from varshare.config import load_config
from varshare.methods import make_method
from varshare.nn.activations import ACTIVATIONS
from varshare.nn.flat_posterior import FlatPosterior
from varshare.nn.layers import MultiTaskLinear, flat_posterior

OBS_DIM, N_ACTIONS, M, B, N_DATA = 4, 3, 3, 5, 7
CASES = [("varshare", {"varshare.estimator": e}) for e in ("flipout", "local_reparam", "shared_noise")]
CASES.append(("varshare_lora", {"lora.rank": 2}))
IDS = ["flipout", "local_reparam", "shared_noise", "lora"]


def build_pair(name: str, overrides: dict, seed: int = 0):
    """``(method, float64 model, {layer name: standalone copy})``: the copies hold random values
    (own Parameters) and the model is loaded with them — θ copied, μ and ρ written straight into
    ``posterior.mu`` / ``posterior.rho`` in the documented layout (layer order, then
    ``posterior_names`` order, each tensor flattened per task)."""
    torch.manual_seed(seed)
    cfg = load_config({"suite": "cartpole10", "methods": [name], "seeds": [0], "total_steps_per_task": 1000},
                      {"network.hidden_sizes": [6, 5], **overrides})
    method = make_method(name, cfg, M, seed)
    model = method.build_model(OBS_DIM, N_ACTIONS, True).double()
    ref = {}
    for i, (lname, layer) in enumerate((n, x) for n, x in model.named_modules() if isinstance(x, MultiTaskLinear)):
        ref[lname] = method.make_layer(layer.in_features, layer.out_features, False, 1.0).double()
        randomise_(ref[lname], seed * 100 + i)
    load_(model, ref)
    return method, model, ref


def posterior_entries(ref):
    """``[(layer name, μ name, ρ name), ...]`` in the flat layout's order."""
    return [(lname, mu, rho) for lname, s in ref.items() for mu, rho in s.posterior_names]


def load_(model, ref) -> None:
    layers = dict(model.named_modules())
    with torch.no_grad():
        for lname, s in ref.items():
            layer = layers[lname]
            assert {n for n, _ in layer.named_parameters()} == set(s.shared_parameter_names)
            for pname in s.shared_parameter_names:
                getattr(layer, pname).copy_(getattr(s, pname))
        for kind, flat in ((1, model.posterior.mu), (2, model.posterior.rho)):
            flat.copy_(torch.cat([getattr(ref[e[0]], e[kind]).reshape(M, -1) for e in posterior_entries(ref)], 1))


def ref_forward(method, ref, obs, noise):
    """Logits and value of the standalone layers: the actor-critic written out by hand."""
    act = ACTIVATIONS[method.config.network.activation]
    outs = []
    for net in ("actor", "critic"):
        names = [n for n in ref if n.startswith(net + ".")]
        x = obs
        for i, lname in enumerate(names):
            sub = None if noise is None else {k.split(".", 2)[2]: v for k, v in noise.items()
                                              if k.startswith(f"{net}.{i}.")}
            x = ref[lname](x, sub)
            x = act(x) if i < len(names) - 1 else x
        outs.append(x)
    return outs[0], outs[1].squeeze(-1)


def ref_extra_loss(method, ref):
    options = method.config.varshare
    kl = sum(s.kl_per_task(options.sigma_prior).sum() for s in ref.values())
    return options.beta * kl / N_DATA


def loss_of(logits, value, extra):
    w_logits = torch.randn(logits.shape, generator=gen(50), dtype=torch.float64)
    w_value = torch.randn(value.shape, generator=gen(51), dtype=torch.float64)
    return (logits * w_logits).sum() + (value * w_value).sum() + extra


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def inputs(model, seed):
    obs = torch.randn(M, B, OBS_DIM, generator=gen(seed), dtype=torch.float64)
    return obs, model.rollout_noise(gen(seed + 1)), model.example_noise(B, gen(seed + 2))


def assert_grads_match(model, ref):
    layers = dict(model.named_modules())
    for lname, s in ref.items():
        for pname in s.shared_parameter_names:
            close(getattr(layers[lname], pname).grad, getattr(s, pname).grad)
        for pname in (n for pair in s.posterior_names for n in pair):
            close(layers[lname].posterior_grad(pname), getattr(s, pname).grad)


def train_step(method, model, ref, obs, noise):
    """Forward + backward of model and reference; checks outputs and loss; returns the logits."""
    out = model(obs, noise)
    logits, value = ref_forward(method, ref, obs, noise)
    extra, ref_extra = method.extra_loss(model, N_DATA)[0], ref_extra_loss(method, ref)
    for got, expected in zip((out.logits, out.value, extra), (logits, value, ref_extra)):
        close(got, expected)
    loss_of(out.logits, out.value, extra).backward()
    loss_of(logits, value, ref_extra).backward()
    return out.logits.detach()


@pytest.mark.parametrize("name, overrides", CASES, ids=IDS)
def test_outputs_and_gradients_match_unflattened_layers(name, overrides):
    method, model, ref = build_pair(name, overrides)
    obs, rollout, example = inputs(model, 1)
    noise = {**rollout, **example}
    with torch.no_grad():
        for nz in (None, noise):
            close(model(obs, nz).logits, ref_forward(method, ref, obs, nz)[0])
    # a rollout pass in inference mode (through the rollout cache) first fills the split cache
    with torch.inference_mode():
        out = model(obs, {**model.rollout_cache(rollout), **example})
    with torch.no_grad():
        for got, expected in zip((out.logits, out.value), ref_forward(method, ref, obs, noise)):
            close(got, expected)
    train_step(method, model, ref, obs, noise)
    assert_grads_match(model, ref)
    assert model.posterior.mu.grad.abs().min() > 0 and model.posterior.rho.grad.abs().min() > 0


@pytest.mark.parametrize("fused", [False, True], ids=["adam", "fused_adam"])  # fused: PPO's; no version bumps
@pytest.mark.parametrize("name, overrides", CASES, ids=IDS)
def test_two_adam_steps_match_unflattened_layers(name, overrides, fused):
    method, model, ref = build_pair(name, overrides)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, fused=fused)
    ref_opt = torch.optim.Adam([p for s in ref.values() for p in s.parameters()], lr=0.01)
    obs, rollout, example = inputs(model, 2)
    noise = {**rollout, **example}
    previous = None
    for step in range(2):
        opt.zero_grad()
        ref_opt.zero_grad()
        logits = train_step(method, model, ref, obs, noise)  # same inputs: a change is the step's
        assert previous is None or not torch.allclose(logits, previous)
        assert_grads_match(model, ref)
        opt.step()
        ref_opt.step()
        previous = logits
    tensors = model.named_layer_tensors()
    for lname, s in ref.items():
        for pname, p in s.named_parameters():
            close(tensors[f"{lname}.{pname}"], p)


def test_layout_of_the_flat_parameters_and_flat_posterior_identity():
    _, model, ref = build_pair("varshare_lora", {"lora.rank": 2}, seed=3)
    layers = [copy.deepcopy(s) for s in ref.values()]  # standalone, then taken over
    store = FlatPosterior(layers)
    model_layers = dict(model.named_modules())
    assert store.layers == tuple(layers) and model.posterior.layers == tuple(model.multitask_layers())
    assert list(ref) == [n for n, x in model.named_modules() if isinstance(x, MultiTaskLinear)]
    for flat_owner, owned in ((store, dict(zip(ref, layers))), (model.posterior, model_layers)):
        offset = 0
        for lname, mu_name, rho_name in posterior_entries(ref):
            expected_mu, expected_rho = getattr(ref[lname], mu_name), getattr(ref[lname], rho_name)
            size = expected_mu[0].numel()
            assert torch.equal(flat_owner.mu[:, offset:offset + size].reshape(expected_mu.shape), expected_mu)
            assert torch.equal(flat_owner.rho[:, offset:offset + size].reshape(expected_rho.shape), expected_rho)
            assert torch.equal(getattr(owned[lname], mu_name), expected_mu)
            assert torch.equal(getattr(owned[lname], rho_name), expected_rho)
            offset += size
        assert offset == flat_owner.mu.shape[1] == flat_owner.rho.shape[1]
    assert all(set(layer._parameters) == set(layer.shared_parameter_names) for layer in layers)
    mu, rho = flat_posterior(model.multitask_layers())
    assert mu is model.posterior.mu and rho is model.posterior.rho
    assert flat_posterior(layers)[0] is store.mu
    sub_ref = list(ref.values())[1:4]
    for kind, got in enumerate(flat_posterior(model.multitask_layers()[1:4])):
        assert not isinstance(got, torch.nn.Parameter)
        expected = torch.cat([getattr(s, pair[kind]).reshape(M, -1) for s in sub_ref for pair in s.posterior_names], 1)
        assert torch.equal(got, expected)


def test_in_place_writes_through_views_reach_the_flat_parameters_and_the_next_forward():
    method, model, ref = build_pair("varshare", {}, seed=4)
    obs, rollout, example = inputs(model, 5)
    noise = {**rollout, **example}
    before = model(obs, noise).logits.detach()  # fills the split cache
    entries, lname = posterior_entries(ref), "actor.layers.1"
    layer, s = dict(model.named_modules())[lname], ref[lname]
    offsets = {e: sum(getattr(ref[o[0]], o[1])[0].numel() for o in entries[:i]) for i, e in enumerate(entries)}
    with torch.no_grad():
        for target in (layer, s):
            target.mu_weight[2, 3, 4] = 0.7
            target.rho_bias[1, 2] = -0.3
    assert model.posterior.mu[2, offsets[(lname, "mu_weight", "rho_weight")] + 3 * s.in_features + 4] == 0.7
    assert model.posterior.rho[1, offsets[(lname, "mu_bias", "rho_bias")] + 2] == -0.3
    after = model(obs, noise)
    for got, expected in zip((after.logits, after.value), ref_forward(method, ref, obs, noise)):
        close(got, expected)
    assert not torch.allclose(after.logits, before)


def test_deepcopy_after_backward_and_state_dict_round_trip():
    method, model, ref = build_pair("varshare", {"varshare.estimator": "local_reparam"}, seed=6)
    obs, rollout, example = inputs(model, 7)
    noise = {**rollout, **example}
    train_step(method, model, ref, obs, noise)  # leaves a cached split with a graph
    twin = copy.deepcopy(model)
    assert twin.posterior.mu is not model.posterior.mu
    assert flat_posterior(twin.multitask_layers())[0] is twin.posterior.mu
    with torch.no_grad():
        close(twin(obs, noise).logits, ref_forward(method, ref, obs, noise)[0])
        twin.posterior.mu.add_(0.25)
        close(twin.actor.layers[0].mu_weight, ref["actor.layers.0"].mu_weight + 0.25)
        close(model.actor.layers[0].mu_weight, ref["actor.layers.0"].mu_weight)
        close(model(obs, noise).logits, ref_forward(method, ref, obs, noise)[0])
        shifted = copy.deepcopy(ref)
        for s in shifted.values():
            s.mu_weight.add_(0.25)
            s.mu_bias.add_(0.25)
        close(twin(obs, noise).logits, ref_forward(method, shifted, obs, noise)[0])

    state = model.state_dict()
    assert {"posterior.mu", "posterior.rho"} <= set(state) and "actor.layers.0.mu_weight" not in state
    _, fresh, _ = build_pair("varshare", {"varshare.estimator": "local_reparam"}, seed=8)
    fresh(obs, noise)  # a cached split of the old values
    fresh.load_state_dict(state)
    with torch.no_grad():
        for nz in (None, noise):
            expected, got = model(obs, nz), fresh(obs, nz)
            assert torch.equal(got.logits, expected.logits) and torch.equal(got.value, expected.value)


@pytest.mark.parametrize("name, overrides", [CASES[0], CASES[3]], ids=["varshare", "lora"])
def test_parameter_counts_match_standalone_layers(name, overrides):
    _, model, ref = build_pair(name, overrides)
    layers = dict(model.named_modules())
    for lname, s in ref.items():
        assert layers[lname].parameter_count_per_task() == s.parameter_count_per_task()
        assert s.parameter_count_per_task()[1] > 0
    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == sum(p.numel() for s in ref.values() for p in s.parameters())
    assert {n for n in params if "mu" in n or "rho" in n} == {"posterior.mu", "posterior.rho"}


def test_named_layer_tensors_show_the_layers_own_tensors():
    _, model, ref = build_pair("varshare", {})
    tensors = model.named_layer_tensors()
    expected = {f"{lname}.{pname}": p for lname, s in ref.items() for pname, p in s.named_parameters()}
    assert set(tensors) == set(expected)
    assert "actor.layers.0.mu_weight" in tensors and "critic.layers.2.rho_bias" in tensors
    assert not any(n.startswith("posterior.") for n in tensors)
    for n, p in expected.items():
        assert torch.equal(tensors[n], p)
