"""Multi-task linear layers: inputs ``x`` of shape ``[M, B, in]`` → outputs ``[M, B, out]``.

Every layout stores its per-task tensors stacked on a leading task axis and computes all tasks in
one batched matmul; there is no loop over tasks. A layer's weight for task ``m`` is:

=============================  ===============================================================
:class:`SharedLinear`          ``W`` (one tensor for all tasks, broadcast)
:class:`PerTaskLinear`         ``W_m`` (``[M, out, in]``)
:class:`ResidualLinear`        ``θ + φ_m`` (deterministic residual, ``φ`` initialised to 0)
:class:`VariationalResidualLinear`  ``θ + μ_m + σ_m ⊙ ε`` with ``σ = softplus(ρ)``
=============================  ===============================================================

Biases follow the same rule as weights. Stochastic layers take their randomness as explicit
tensors (``noise``) so that a PPO update can replay exactly the weight sample that produced each
action. Noise comes in two parts, both dictionaries of tensors:

* *rollout noise* (:meth:`MultiTaskLinear.rollout_noise`): drawn once per rollout and shared by
  every forward pass over that rollout's data — the ``ε`` of Flipout and of shared noise;
* *example noise* (:meth:`MultiTaskLinear.example_noise`): one draw per example, shape
  ``[M, B, k]``, stored with the transition — Flipout's sign vectors, the local
  reparameterisation's ``ξ``.

``noise=None`` evaluates the mean weights (``θ + μ``). For evaluation, stochastic layers also take
*weight-sample noise* (:meth:`MultiTaskLinear.weight_sample_noise`): an independent draw of the full
weights for every example (``[M, B, out, in]``), whatever estimator the layer trains with.

Shared parameters (no task axis) may be replaced, e.g. through ``torch.func.functional_call``, by
a task-replicated tensor ``[M, *shape]``; the layers then compute with per-task copies, which is
how per-task gradients of shared parameters are obtained with a single backward pass.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from varshare.nn.flipout import flipout_affine, flipout_linear
from varshare.nn.kl import gaussian_kls_per_task, softplus_gaussian_kl_per_task
from varshare.nn.local_reparam import VARIANCE_FLOOR, local_reparam_affine, local_reparam_linear
from varshare.nn.softplus_scale import softplus_scale

Noise = dict[str, Tensor]
Estimator = Literal["flipout", "shared_noise", "local_reparam"]
ESTIMATORS: tuple[str, ...] = ("flipout", "shared_noise", "local_reparam")


def affine(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``x @ weightᵀ + bias`` for ``x`` ``[M, B, in]``.

    ``weight`` is ``[out, in]`` (shared: one GEMM over all ``M·B`` rows) or ``[M, out, in]``
    (per task: one batched matmul); ``bias`` is ``[out]`` or ``[M, out]`` accordingly.
    """
    if weight.dim() == 2 and bias.dim() == 1:
        return F.linear(x, weight, bias)
    return torch.baddbmm(bias.unsqueeze(-2), x, weight.transpose(-1, -2))


def orthogonal_(tensor: Tensor, gain: float) -> Tensor:
    """Orthogonal init of ``[out, in]`` or, per task independently, of ``[M, out, in]``."""
    with torch.no_grad():
        for matrix in tensor.view(-1, *tensor.shape[-2:]):
            nn.init.orthogonal_(matrix, gain)
    return tensor


_BIT_POSITIONS: dict[torch.device, Tensor] = {}


def rademacher(shape: tuple[int, ...], generator: torch.Generator | None, device) -> Tensor:
    """Independent ±1 signs, as ``int8`` (exact in any float dtype; cast or multiply as needed).

    Each row's signs are the bits of random 64-bit words (``torch.randint`` over the full int64
    range), read byte by byte with a shift and a mask, lowest bit first: ~3× faster than one random
    integer per sign, and signs are the bulk of a Flipout rollout's random numbers. One byte per sign
    also makes the stored per-example noise 4× smaller than float32, which matters because every
    update epoch gathers all of it in a new order. The draws consumed from ``generator`` depend only
    on ``shape``."""
    device = torch.device(device or "cpu")
    *leading, width = shape
    words_per_row = -(-width // 64)
    words = torch.randint(-(2**63), 2**63 - 1, (*leading, words_per_row), generator=generator,
                          device=device, dtype=torch.int64)
    if device not in _BIT_POSITIONS:
        _BIT_POSITIONS[device] = torch.arange(8, device=device, dtype=torch.uint8)
    bits = words.view(torch.uint8).unsqueeze(-1).bitwise_right_shift(_BIT_POSITIONS[device]).bitwise_and_(1)
    return bits.flatten(-2)[..., :width].to(torch.int8).mul_(2).sub_(1)


class MultiTaskLinear(nn.Module):
    """Base of the task-batched linear layers.

    Args:
        in_features, out_features: sizes of one example's input and output.
        num_tasks: ``M``.
        gain: orthogonal-init gain of the weights (biases start at 0).
    """

    #: names of parameters without a task axis (shared by all tasks)
    shared_parameter_names: tuple[str, ...] = ()
    #: ``((μ name, ρ name), ...)``: the layer's diagonal Gaussian posteriors ``N(μ, softplus(ρ)²)``,
    #: task axis first (deterministic layers: none). Inside a network they are stored flat
    #: (:class:`~varshare.nn.flat_posterior.FlatPosterior`) and the names read views of it.
    posterior_names: tuple[tuple[str, str], ...] = ()

    def __init__(self, in_features: int, out_features: int, num_tasks: int):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.num_tasks = num_tasks

    def forward(self, x: Tensor, noise: Noise | None = None) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def attach_flat_posterior(self, store, slots: dict[str, tuple[str, int]]) -> None:
        """Read the posterior tensors named in ``slots`` (``name -> ("mu" | "rho", entry index)``)
        from ``store``, a :class:`~varshare.nn.flat_posterior.FlatPosterior` that now owns them (it
        has removed them from this layer's parameters). ``store`` is kept out of the module tree:
        the network owns it."""
        slots = {**self.__dict__.get("_posterior_slots", {}), **slots}
        object.__setattr__(self, "_flat_posterior", store)
        object.__setattr__(self, "_posterior_slots", slots)

    def __getattr__(self, name: str):
        slots = self.__dict__.get("_posterior_slots")
        if slots is not None and name in slots:
            return self.__dict__["_flat_posterior"].view(*slots[name])
        return super().__getattr__(name)

    def posterior_parameters(self) -> list[tuple[Tensor, Tensor]]:
        """``[(μ, ρ), ...]`` of the layer's Gaussian posteriors (``posterior_names`` order, task axis
        first): its parameters, or views of the flat posterior that holds them."""
        return [(getattr(self, mu), getattr(self, rho)) for mu, rho in self.posterior_names]

    def posterior_sizes(self) -> list[int]:
        """Elements per task of each ``(μ, ρ)`` pair (``posterior_names`` order), without reading them."""
        slots = self.__dict__.get("_posterior_slots")
        if slots is None:
            return [getattr(self, mu)[0].numel() for mu, _ in self.posterior_names]
        return [self.__dict__["_flat_posterior"].sizes[slots[mu][1]] for mu, _ in self.posterior_names]

    def posterior_grad(self, name: str) -> Tensor | None:
        """The gradient accumulated for posterior tensor ``name`` (e.g. ``"mu_weight"``), shaped like
        it: its parameter's ``.grad``, or the matching view of the flat parameter's; None if none."""
        slots = self.__dict__.get("_posterior_slots")
        if slots is None:
            return getattr(self, name).grad
        return self.__dict__["_flat_posterior"].grad_view(*slots[name])

    def posterior_mean_std(self) -> list[Tensor]:
        """``[μ₁, σ₁, μ₂, σ₂, ...]`` (``posterior_names`` order, ``σ = softplus(ρ)``) as the forward pass
        should use them: views of the flat posterior's shared split when there is one (one gradient
        node per step for the whole network, ``σ`` shared with the KL), else computed from the
        layer's own parameters."""
        slots = self.__dict__.get("_posterior_slots")
        if slots is None:
            return [tensor for mu, rho in self.posterior_names
                    for tensor in (getattr(self, mu), softplus_scale(getattr(self, rho)))]
        split = self.__dict__["_flat_posterior"].split()
        return [split[0 if kind == "mu" else 1][index] for pair in self.posterior_names
                for kind, index in (slots[name] for name in pair)]

    def rollout_noise(self, generator: torch.Generator | None) -> Noise:
        """Noise drawn once per rollout (deterministic layers: none)."""
        return {}

    def example_noise(self, batch_size: int, generator: torch.Generator | None) -> Noise:
        """Per-example noise ``[M, batch_size, k]`` tensors (deterministic layers: none)."""
        return {}

    def rollout_cache(self, rollout_noise: Noise) -> Noise:
        """What a forward pass would derive from the parameters and ``rollout_noise``, computed once
        (without gradient) so the many forward passes of a rollout can reuse it: pass it as
        ``noise``, *instead of* ``rollout_noise``, merged with the per-example noise. Only valid
        while parameters are unchanged. Default: ``rollout_noise`` itself (nothing to precompute)."""
        return rollout_noise

    @property
    def stochastic_weights(self) -> bool:
        """Whether this layer's weights are random (it draws rollout or per-example noise).

        Detected from :meth:`rollout_noise` / :meth:`example_noise` with a throwaway generator (the
        run's generators and the global RNG are left alone), so a new stochastic layer is
        recognised without declaring anything; layers may override it with a constant."""
        parameter = next(self.parameters(), None)
        device = parameter.device if parameter is not None else None
        probe = torch.Generator(device=device or "cpu").manual_seed(0)
        return bool(self.rollout_noise(probe) or self.example_noise(1, probe))

    def weight_sample_noise(self, batch_size: int, generator: torch.Generator | None) -> Noise:
        """Noise for one independent draw of the *full* weights per example (evaluation strategies
        ``sample-k``): passed as ``noise``, example ``b`` of task ``m`` is computed with its own
        weight sample, for every position in the batch alike. Deterministic layers: none (``{}``);
        stochastic layers must override this."""
        if self.stochastic_weights:
            raise NotImplementedError(
                f"{type(self).__name__} has random weights but does not implement weight_sample_noise "
                "(per-example full-weight draws, needed by the sample-k evaluation strategies)")
        return {}

    def weight_sample_cache(self, noise: Noise) -> Noise:
        """What a forward pass would derive from :meth:`weight_sample_noise`'s ``noise`` (e.g. the
        per-example weights), computed once without gradient; passed as ``noise`` instead of it, it
        gives the same outputs. Only valid while parameters are unchanged. Default: ``noise``."""
        return noise

    def parameter_count_per_task(self) -> tuple[int, int]:
        """``(shared, per_task)``: parameters shared by all tasks and those each task owns (a
        posterior stored flat by the network counts as the layer's own)."""
        shared = sum(p.numel() for n, p in self.named_parameters() if n in self.shared_parameter_names)
        total = sum(p.numel() for p in self.parameters())
        if "_posterior_slots" in self.__dict__:
            total += sum(mu.numel() + rho.numel() for mu, rho in self.posterior_parameters())
        return shared, (total - shared) // self.num_tasks

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, tasks={self.num_tasks}"


class SharedLinear(MultiTaskLinear):
    """One weight for every task: ``y_m = x_m Wᵀ + b``."""

    shared_parameter_names = ("weight", "bias")

    def __init__(self, in_features: int, out_features: int, num_tasks: int, gain: float = math.sqrt(2)):
        super().__init__(in_features, out_features, num_tasks)
        self.weight = nn.Parameter(orthogonal_(torch.empty(out_features, in_features), gain))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: Tensor, noise: Noise | None = None) -> Tensor:
        return affine(x, self.weight, self.bias)


class PerTaskLinear(MultiTaskLinear):
    """A free weight per task: ``y_m = x_m W_mᵀ + b_m`` (``W`` is ``[M, out, in]``)."""

    def __init__(self, in_features: int, out_features: int, num_tasks: int, gain: float = math.sqrt(2)):
        super().__init__(in_features, out_features, num_tasks)
        self.weight = nn.Parameter(orthogonal_(torch.empty(num_tasks, out_features, in_features), gain))
        self.bias = nn.Parameter(torch.zeros(num_tasks, out_features))

    def forward(self, x: Tensor, noise: Noise | None = None) -> Tensor:
        return affine(x, self.weight, self.bias)


class ResidualLinear(MultiTaskLinear):
    """Shared base plus a deterministic per-task residual: ``W_m = θ + φ_m`` (``φ`` starts at 0)."""

    shared_parameter_names = ("theta_weight", "theta_bias")

    def __init__(self, in_features: int, out_features: int, num_tasks: int, gain: float = math.sqrt(2)):
        super().__init__(in_features, out_features, num_tasks)
        self.theta_weight = nn.Parameter(orthogonal_(torch.empty(out_features, in_features), gain))
        self.theta_bias = nn.Parameter(torch.zeros(out_features))
        self.phi_weight = nn.Parameter(torch.zeros(num_tasks, out_features, in_features))
        self.phi_bias = nn.Parameter(torch.zeros(num_tasks, out_features))

    def forward(self, x: Tensor, noise: Noise | None = None) -> Tensor:
        if noise and "weight" in noise:
            return affine(x, noise["weight"], noise["bias"])
        return affine(x, self.theta_weight + self.phi_weight, self.theta_bias + self.phi_bias)

    def rollout_cache(self, rollout_noise: Noise) -> Noise:
        with torch.no_grad():
            return {"weight": self.theta_weight + self.phi_weight, "bias": self.theta_bias + self.phi_bias}

    def residual_sq_norm(self) -> Tensor:
        """``Σ_m ‖φ_m‖²`` over weights and biases (scalar)."""
        return self.phi_weight.square().sum() + self.phi_bias.square().sum()


class VariationalResidualLinear(MultiTaskLinear):
    """VarShare layer: ``W_m = θ + μ_m + σ_m ⊙ ε``, ``σ = softplus(ρ)``, with ``q_m = N(μ_m, σ_m²)``.

    Args:
        estimator: how weight noise reaches the output —
            ``"flipout"``: ``y = x(θ+μ)ᵀ + ((x ∘ s_in)(σ ∘ ε)ᵀ + σ_b ∘ ε_b) ∘ s_out`` with one ``ε``
            per task per rollout and per-example signs ``s_in ∈ {±1}^in``, ``s_out ∈ {±1}^out``;
            each example sees the weight ``θ + μ + (σ ∘ ε) ∘ (s_out [s_in, 1]ᵀ)`` (bias as the last
            column), marginally ``N(θ + μ, σ²)``.
            ``"shared_noise"``: every example of a task uses ``θ + μ + σ ∘ ε``.
            ``"local_reparam"``: ``y = x(θ+μ)ᵀ + b + sqrt(x²(σ²)ᵀ + σ_b² + 1e-8) ∘ ξ``, ``ξ`` per
            example and output.
        rho_init: initial ``ρ`` of every residual element (σ = softplus(ρ_init)).
    """

    shared_parameter_names = ("theta_weight", "theta_bias")
    posterior_names = (("mu_weight", "rho_weight"), ("mu_bias", "rho_bias"))
    stochastic_weights = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_tasks: int,
        gain: float = math.sqrt(2),
        estimator: Estimator = "flipout",
        rho_init: float = -5.0,
    ):
        super().__init__(in_features, out_features, num_tasks)
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.estimator = estimator
        self.theta_weight = nn.Parameter(orthogonal_(torch.empty(out_features, in_features), gain))
        self.theta_bias = nn.Parameter(torch.zeros(out_features))
        self.mu_weight = nn.Parameter(torch.zeros(num_tasks, out_features, in_features))
        self.mu_bias = nn.Parameter(torch.zeros(num_tasks, out_features))
        self.rho_weight = nn.Parameter(torch.full((num_tasks, out_features, in_features), float(rho_init)))
        self.rho_bias = nn.Parameter(torch.full((num_tasks, out_features), float(rho_init)))

    @property
    def sigma_weight(self) -> Tensor:
        return F.softplus(self.rho_weight)

    @property
    def sigma_bias(self) -> Tensor:
        return F.softplus(self.rho_bias)

    def rollout_noise(self, generator: torch.Generator | None) -> Noise:
        if self.estimator == "local_reparam":
            return {}
        device = self.mu_weight.device
        return {
            "eps_weight": torch.randn(self.mu_weight.shape, generator=generator, device=device),
            "eps_bias": torch.randn(self.mu_bias.shape, generator=generator, device=device),
        }

    def example_noise(self, batch_size: int, generator: torch.Generator | None) -> Noise:
        device = self.mu_weight.device
        M = self.num_tasks
        if self.estimator == "flipout":
            return {
                "sign_in": rademacher((M, batch_size, self.in_features), generator, device),
                "sign_out": rademacher((M, batch_size, self.out_features), generator, device),
            }
        if self.estimator == "local_reparam":
            return {"xi": torch.randn((M, batch_size, self.out_features), generator=generator, device=device)}
        return {}

    def weight_sample_noise(self, batch_size: int, generator: torch.Generator | None) -> Noise:
        """``ε`` of one full weight draw per example: ``sample_eps_weight`` ``[M, B, out, in]`` and
        ``sample_eps_bias`` ``[M, B, out]`` (standard normal). With it the layer computes example
        ``b`` of task ``m`` with ``θ + μ_m + σ_m ⊙ ε_{m,b}`` — whatever the training estimator — so
        the weights of different examples are independent and each is exactly ``N(θ + μ_m, σ_m²)``.
        Used in evaluation only: it materialises a weight per example (clarity over speed)."""
        device = self.mu_weight.device
        M, out, inp = self.mu_weight.shape
        return {
            "sample_eps_weight": torch.randn((M, batch_size, out, inp), generator=generator, device=device),
            "sample_eps_bias": torch.randn((M, batch_size, out), generator=generator, device=device),
        }

    def sampled_weights(self, noise: Noise) -> tuple[Tensor, Tensor]:
        """The per-example weights ``[M, B, out, in]`` and biases ``[M, B, out]`` that
        :meth:`weight_sample_noise`'s ``noise`` selects."""
        mean_weight = (self.theta_weight + self.mu_weight).unsqueeze(1)
        mean_bias = (self.theta_bias + self.mu_bias).unsqueeze(1)
        weight = mean_weight + self.sigma_weight.unsqueeze(1) * noise["sample_eps_weight"]
        bias = mean_bias + self.sigma_bias.unsqueeze(1) * noise["sample_eps_bias"]
        return weight, bias

    def weight_sample_cache(self, noise: Noise) -> Noise:
        with torch.no_grad():
            weight, bias = self.sampled_weights(noise)
        return {"sample_weight": weight, "sample_bias": bias}

    def derived(self, noise: Noise | None) -> Noise:
        """The tensors the forward pass uses besides the per-example noise: mean weights ``θ + μ``
        and, given rollout noise, the weight perturbations ``σ ∘ ε`` (Flipout, shared noise) or
        variances ``σ²`` and ``σ_b² + VARIANCE_FLOOR`` (local reparameterisation). A ``noise`` that
        already holds them (a rollout cache merged with per-example noise) is returned as is."""
        if noise and "mean_weight" in noise:
            return noise
        mu_weight, sigma_weight, mu_bias, sigma_bias = self.posterior_mean_std()
        derived = {"mean_weight": self.theta_weight + mu_weight, "mean_bias": self.theta_bias + mu_bias}
        if noise is None:
            return derived
        if self.estimator == "local_reparam":
            derived["var_weight"] = sigma_weight.square()
            derived["floored_var_bias"] = sigma_bias.square().add_(VARIANCE_FLOOR)
        else:
            derived["delta_weight"] = sigma_weight * noise["eps_weight"]
            derived["delta_bias"] = sigma_bias * noise["eps_bias"]
        return derived

    def rollout_cache(self, rollout_noise: Noise) -> Noise:
        """:meth:`derived`'s tensors; for Flipout and the local reparameterisation laid out as the
        rollout's batched matmuls read them — weights ``[M, in, out]`` contiguous (key suffix ``_t``)
        and biases ``[M, 1, out]`` (``_row``) — so that the ~130 forward passes of a rollout skip four
        view operations per layer (a third of a small layer's cost)."""
        with torch.no_grad():
            derived = self.derived(rollout_noise)
            if self.estimator == "shared_noise":
                return derived
            return {f"{name}_t" if name.endswith("weight") else f"{name}_row":
                    value.transpose(-1, -2).contiguous() if name.endswith("weight") else value.unsqueeze(-2)
                    for name, value in derived.items()}

    def forward(self, x: Tensor, noise: Noise | None = None) -> Tensor:
        if noise is not None and ("sample_eps_weight" in noise or "sample_weight" in noise):
            # one full weight draw per example (evaluation), or its cache
            weight, bias = (noise["sample_weight"], noise["sample_bias"]) if "sample_weight" in noise \
                else self.sampled_weights(noise)
            return torch.einsum("mbi,mboi->mbo", x, weight) + bias
        if noise is not None and "mean_weight_t" in noise:  # a rollout cache (Flipout, local reparam.)
            if self.estimator == "flipout":
                return flipout_affine(x, noise["mean_weight_t"], noise["mean_bias_row"], noise["delta_weight_t"],
                                      noise["delta_bias_row"], noise["sign_in"], noise["sign_out"])
            return local_reparam_affine(x, noise["mean_weight_t"], noise["mean_bias_row"], noise["var_weight_t"],
                                        noise["floored_var_bias_row"], noise["xi"])
        if noise is not None and "mean_weight" not in noise:  # training: fused nodes with their own backward
            mu_weight, sigma_weight, mu_bias, sigma_bias = self.posterior_mean_std()
            if self.estimator == "flipout":
                return flipout_linear(x, self.theta_weight, self.theta_bias, mu_weight, mu_bias, sigma_weight,
                                      sigma_bias, noise["eps_weight"], noise["eps_bias"], noise["sign_in"],
                                      noise["sign_out"])
            if self.estimator == "local_reparam":
                return local_reparam_linear(x, self.theta_weight, self.theta_bias, mu_weight, mu_bias,
                                            sigma_weight, sigma_bias, noise["xi"])
        d = self.derived(noise)
        if noise is None:
            return affine(x, d["mean_weight"], d["mean_bias"])
        return affine(x, d["mean_weight"] + d["delta_weight"], d["mean_bias"] + d["delta_bias"])  # shared noise

    def kl_per_task(self, sigma_prior: float | Tensor) -> Tensor:
        """``KL(q_m ‖ N(0, σ_prior² I))`` of this layer's residual, weights and biases: ``[M]``.

        ``sigma_prior`` may be a tensor (e.g. a learned one), which then receives its gradient."""
        return sum(softplus_gaussian_kl_per_task(mu, rho, sigma_prior) for mu, rho in self.posterior_parameters())


def flat_posterior(layers: list[MultiTaskLinear]) -> tuple[Tensor, Tensor]:
    """``(μ, ρ)`` of all ``layers``' Gaussian posteriors (each layer's ``posterior_parameters()``, in
    order), concatenated per task: two ``[M, P]`` tensors (differentiable), ``P`` = posterior
    elements per task. One fused KL over them costs a few passes instead of a dozen small ones.
    When ``layers`` are exactly those of a network's :class:`~varshare.nn.flat_posterior.FlatPosterior`
    (in order), these are its two parameters themselves (copy them to keep a snapshot); otherwise a
    concatenation."""
    store = _store_of(layers)
    if store is not None:
        return store.mu, store.rho
    pairs = [pair for layer in layers for pair in layer.posterior_parameters()]
    num_tasks = layers[0].num_tasks
    mu = torch.cat([mu.reshape(num_tasks, -1) for mu, _ in pairs], dim=1)
    rho = torch.cat([rho.reshape(num_tasks, -1) for _, rho in pairs], dim=1)
    return mu, rho


def flat_posterior_mean_std(layers: list[MultiTaskLinear]) -> tuple[Tensor, Tensor]:
    """``(μ, σ)`` ``[M, P]`` in :func:`flat_posterior`'s layout, ``σ = softplus(ρ)``: what the KL terms
    read. For a network's own layers ``σ`` is the flat posterior's shared tensor of this step
    (:meth:`~varshare.nn.flat_posterior.FlatPosterior.sigma`), the one the forward pass uses."""
    store = _store_of(layers)
    if store is not None:
        return store.mu, store.sigma()
    mu, rho = flat_posterior(layers)
    return mu, softplus_scale(rho)


def _store_of(layers: list[MultiTaskLinear]):
    """The :class:`~varshare.nn.flat_posterior.FlatPosterior` holding exactly ``layers`` (in order), or None."""
    store = layers[0].__dict__.get("_flat_posterior") if layers else None
    return store if store is not None and store.layers == tuple(layers) else None


def residual_kl_per_task(layers: list[MultiTaskLinear], sigma_prior: float | Tensor) -> Tensor:
    """``[M]``: ``Σ_layers KL(q_m ‖ N(0, σ_prior² I))`` over every posterior tensor of ``layers``
    (one fused op). ``sigma_prior``: a float, or a tensor broadcastable to ``[M, P]``
    (see :func:`flat_posterior`)."""
    mu, sigma = flat_posterior_mean_std(layers)
    return gaussian_kls_per_task(mu, sigma, [(None, sigma_prior)])[0]
