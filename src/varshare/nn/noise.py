"""Weight noise as typed objects: what a stochastic layer's forward pass needs besides its parameters.

A network draws its own noise (:meth:`varshare.nn.MultiTaskMLP.draw_noise`) for a batch of ``B``
examples per task and passes it back to its forward pass; nothing is global and nothing is routed
by name. Each layer's noise is one of the frozen dataclasses below. Their tensors are of two kinds:

* *per task* (no example axis, ``[M, ...]``): one weight draw ``ε`` per task, shared by every
  example of the batch — Flipout's and shared noise's ``ε``, LoRA's factor draws;
* *per example* (example axis 1, ``[M, B, ...]``, listed in :attr:`LayerNoise.example_fields`):
  Flipout's sign vectors, the local reparameterisation's ``ξ``, and the full per-example draws of
  the evaluation strategies.

:meth:`LayerNoise.map_examples` applies a function to the per-example tensors only, so an algorithm
can slice, gather or reorder a batch's noise together with its data (PPO stores a rollout's noise
and replays it in the update: ``noise.map_examples(lambda t: t.index_select(1, order))``). A
network's noise is a :class:`NetworkNoise` (one entry per layer, ``None`` for deterministic layers);
``noise=None`` anywhere means the mean weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import Tensor

ExampleFunction = Callable[[Tensor], Tensor]


def rademacher(shape: tuple[int, ...], generator: torch.Generator | None, device) -> Tensor:
    """Independent ±1 signs (float32) of ``shape``."""
    return torch.randint(0, 2, shape, generator=generator, device=device, dtype=torch.float32).mul_(2).sub_(1)


def affine(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``x @ weightᵀ + bias`` for ``x`` ``[M, B, in]``.

    ``weight`` is ``[out, in]`` (shared: one GEMM over all ``M·B`` rows) or ``[M, out, in]``
    (per task: one batched matmul); ``bias`` is ``[out]`` or ``[M, out]`` accordingly (a shared
    bias with a per-task weight, or the reverse, broadcasts).
    """
    if weight.dim() == 2 and bias.dim() == 1:
        return torch.nn.functional.linear(x, weight, bias)
    return torch.baddbmm(bias.unsqueeze(-2), x, weight.transpose(-1, -2).expand(x.shape[0], -1, -1))


class LayerNoise:
    """Base of one layer's noise for one forward pass (subclasses are frozen dataclasses)."""

    #: names of the fields with an example axis (dim 1); the others hold one draw per task
    example_fields: ClassVar[tuple[str, ...]] = ()

    def map_examples(self, fn: ExampleFunction) -> LayerNoise:
        """A copy with ``fn`` applied to every per-example tensor (e.g. a slice or gather on dim 1)."""
        return dataclasses.replace(self, **{name: fn(getattr(self, name)) for name in self.example_fields})


# -- variational residual layers: W = θ + μ + σ ∘ ε ------------------------------------------------

@dataclass(frozen=True)
class FlipoutNoise(LayerNoise):
    """Flipout (Wen et al. 2018): one ``ε`` per task, per-example signs.

    ``y = x W̄ᵀ + b̄ + ((x ∘ s_in)(σ ∘ ε)ᵀ + σ_b ∘ ε_b) ∘ s_out``: example ``b`` sees the weight
    ``W̄ + (σ ∘ ε) ∘ (s_out s_inᵀ)`` (bias alike with ``s_out``), marginally ``N(W̄, σ²)``, and the
    examples of a task are decorrelated by their signs at the cost of two matmuls per layer.

    Attributes:
        eps_weight: ``[M, out, in]`` standard normal; eps_bias: ``[M, out]``.
        sign_in: ``[M, B, in]`` ±1; sign_out: ``[M, B, out]`` ±1.
    """

    eps_weight: Tensor
    eps_bias: Tensor
    sign_in: Tensor
    sign_out: Tensor
    example_fields = ("sign_in", "sign_out")

    @classmethod
    def draw(cls, num_tasks: int, in_features: int, out_features: int, batch_size: int,
             generator: torch.Generator | None, device) -> FlipoutNoise:
        return cls(
            torch.randn((num_tasks, out_features, in_features), generator=generator, device=device),
            torch.randn((num_tasks, out_features), generator=generator, device=device),
            rademacher((num_tasks, batch_size, in_features), generator, device),
            rademacher((num_tasks, batch_size, out_features), generator, device),
        )

    def affine(self, x: Tensor, mean_weight: Tensor, mean_bias: Tensor, sigma_weight: Tensor,
               sigma_bias: Tensor) -> Tensor:
        perturbation = affine(x * self.sign_in, sigma_weight * self.eps_weight, sigma_bias * self.eps_bias)
        return torch.addcmul(affine(x, mean_weight, mean_bias), perturbation, self.sign_out)


@dataclass(frozen=True)
class SharedWeightNoise(LayerNoise):
    """One weight draw ``θ + μ + σ ∘ ε`` per task, the same for every example of the batch.

    Attributes:
        eps_weight: ``[M, out, in]`` standard normal; eps_bias: ``[M, out]``.
    """

    eps_weight: Tensor
    eps_bias: Tensor

    @classmethod
    def draw(cls, num_tasks: int, in_features: int, out_features: int, batch_size: int,
             generator: torch.Generator | None, device) -> SharedWeightNoise:
        return cls(torch.randn((num_tasks, out_features, in_features), generator=generator, device=device),
                   torch.randn((num_tasks, out_features), generator=generator, device=device))

    def affine(self, x, mean_weight, mean_bias, sigma_weight, sigma_bias):
        return affine(x, mean_weight + sigma_weight * self.eps_weight, mean_bias + sigma_bias * self.eps_bias)


#: added to the local reparameterisation's output variance before the square root (finite gradient)
VARIANCE_FLOOR = 1e-8


@dataclass(frozen=True)
class LocalReparamNoise(LayerNoise):
    """Local reparameterisation (Kingma et al. 2015): the pre-activations are sampled directly,
    ``y = x W̄ᵀ + b̄ + sqrt(x² (σ²)ᵀ + σ_b² + 1e-8) ∘ ξ``.

    Attributes:
        xi: ``[M, B, out]`` standard normal, per example and output.
    """

    xi: Tensor
    example_fields = ("xi",)

    @classmethod
    def draw(cls, num_tasks: int, in_features: int, out_features: int, batch_size: int,
             generator: torch.Generator | None, device) -> LocalReparamNoise:
        return cls(torch.randn((num_tasks, batch_size, out_features), generator=generator, device=device))

    def affine(self, x, mean_weight, mean_bias, sigma_weight, sigma_bias):
        variance = affine(x.square(), sigma_weight.square(), sigma_bias.square() + VARIANCE_FLOOR)
        return affine(x, mean_weight, mean_bias) + variance.sqrt() * self.xi


@dataclass(frozen=True)
class PerExampleWeightNoise(LayerNoise):
    """One independent full weight draw per example, ``θ + μ + σ ∘ ε_b`` — whatever the estimator
    the layer trains with (the evaluation strategies ``sample-k``; materialises a weight per example).

    Attributes:
        eps_weight: ``[M, B, out, in]`` standard normal; eps_bias: ``[M, B, out]``.
    """

    eps_weight: Tensor
    eps_bias: Tensor
    example_fields = ("eps_weight", "eps_bias")

    @classmethod
    def draw(cls, num_tasks: int, in_features: int, out_features: int, batch_size: int,
             generator: torch.Generator | None, device) -> PerExampleWeightNoise:
        return cls(
            torch.randn((num_tasks, batch_size, out_features, in_features), generator=generator, device=device),
            torch.randn((num_tasks, batch_size, out_features), generator=generator, device=device),
        )

    def affine(self, x, mean_weight, mean_bias, sigma_weight, sigma_bias):
        weight = mean_weight.unsqueeze(-3) + sigma_weight.unsqueeze(1) * self.eps_weight
        bias = mean_bias.unsqueeze(-2) + sigma_bias.unsqueeze(1) * self.eps_bias
        return torch.einsum("mbi,mboi->mbo", x, weight) + bias


#: training estimators of a variational residual layer, by config name
ESTIMATORS: dict[str, type[LayerNoise]] = {
    "flipout": FlipoutNoise,
    "shared_noise": SharedWeightNoise,
    "local_reparam": LocalReparamNoise,
}


# -- variational low-rank residual layers: W = θ + B A -----------------------------------------------

@dataclass(frozen=True)
class FactorNoise(LayerNoise):
    """One draw of both LoRA factors per task, shared by every example of the batch.

    Attributes:
        eps_A: ``[M, r, in]``; eps_B: ``[M, out, r]`` (standard normal).
    """

    eps_A: Tensor
    eps_B: Tensor


@dataclass(frozen=True)
class PerExampleFactorNoise(LayerNoise):
    """Independent LoRA factor draws per example (evaluation strategies).

    Attributes:
        eps_A: ``[M, B, r, in]``; eps_B: ``[M, B, out, r]`` (standard normal).
    """

    eps_A: Tensor
    eps_B: Tensor
    example_fields = ("eps_A", "eps_B")


# -- a network's noise ----------------------------------------------------------------------------

@dataclass(frozen=True)
class NetworkNoise:
    """The noise of every layer of one network, in layer order (``None``: a deterministic layer)."""

    layers: tuple[LayerNoise | None, ...]

    def map_examples(self, fn: ExampleFunction) -> NetworkNoise:
        """A copy with ``fn`` applied to every layer's per-example tensors."""
        return NetworkNoise(tuple(map_examples(noise, fn) for noise in self.layers))


def map_examples(noise, fn: ExampleFunction):
    """``noise`` (anything with a ``map_examples`` method) with ``fn`` applied to its per-example
    tensors; None (mean weights, or a deterministic part) stays None."""
    return None if noise is None else noise.map_examples(fn)


def where_examples(mask: Tensor, new, old):
    """Per example, ``new``'s noise where ``mask`` (``[M, B]`` bool) is set, else ``old``'s.

    Both must have the same structure and only per-example fields (the full per-example draws of
    :meth:`~varshare.nn.MultiTaskMLP.draw_weight_samples`): a per-task draw cannot be mixed per
    example."""
    if new is None or old is None:
        return None
    if isinstance(old, NetworkNoise):
        return NetworkNoise(tuple(where_examples(mask, a, b) for a, b in zip(new.layers, old.layers, strict=True)))
    per_task = [f.name for f in dataclasses.fields(old) if f.name not in old.example_fields]
    if per_task:
        raise ValueError(f"{type(old).__name__} has per-task fields {per_task}; cannot mix it per example")

    def pick(name: str) -> Tensor:
        a, b = getattr(new, name), getattr(old, name)
        return torch.where(mask.view(*mask.shape, *(1,) * (a.dim() - 2)), a, b)

    return dataclasses.replace(old, **{name: pick(name) for name in old.example_fields})


def select_examples(noise, index: Tensor):
    """``noise`` (as :func:`map_examples` takes it) with examples ``index`` (``[b]``) only."""
    return map_examples(noise, lambda t: t.index_select(1, index))


def slice_examples(noise, start: int, stop: int):
    """``noise`` (as :func:`map_examples` takes it) with examples ``start:stop`` only (views)."""
    return map_examples(noise, lambda t: t[:, start:stop])
