"""A network's Gaussian posteriors stored as two flat parameters, ``mu`` and ``rho`` ``[M, P]``.

Layers are built owning their posterior tensors (``VariationalResidualLinear``'s ``mu_weight``,
``rho_weight``, ...; each layer's ``posterior_names``). :class:`FlatPosterior` then moves every
stochastic layer's posterior into two parameters of shape ``[M, P]`` (``P`` = posterior elements per
task), layer by layer and, within a layer, in its ``posterior_names`` order — the layout of
:func:`varshare.nn.layers.flat_posterior`, which the KL terms read. The layers are left with views:

* ``layer.mu_weight`` (any name in ``posterior_names``) is a view ``[M, *shape]`` of the flat
  parameter: reads see its current values, in-place writes under ``torch.no_grad()`` change it,
  and gradients through it reach it;
* the layers' forward passes use :meth:`FlatPosterior.split` instead: ``μ`` and ``σ = softplus(ρ)``
  split into the layers' views, made once per parameter version and shared by all layers and by the
  KL terms (:meth:`FlatPosterior.sigma`). Each split's backward is a single concatenation (each
  attribute view would have its own backward, allocating a zero-filled ``[M, P]`` gradient), and
  ``softplus`` and its derivative run once per step over ``[M, P]`` instead of once per layer and
  again in the KL.

Why: besides the network itself, a VarShare step's cost grows with the number of posterior tensors
— the KL and its gradient, gradient clipping, Adam, ``zero_grad``. With 24 per-layer tensors the KL
had to concatenate them on every step and scatter the gradient back, ~0.7 ms of a ~7 ms minibatch
step on CartPole-10; flat, it reads the two parameters as they are.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from varshare.nn.softplus_scale import softplus_scale


_optimizer_steps = [0]  # steps taken by any optimizer in this process


def _count_optimizer_step(optimizer, args, kwargs) -> None:
    _optimizer_steps[0] += 1


# Fused optimizers (PPO's ``Adam(fused=True)``) update parameters in place without bumping their
# version counters, so the cache key below also counts optimizer steps.
register_optimizer_step_post_hook(_count_optimizer_step)


class FlatPosterior(nn.Module):
    """The posteriors of ``layers`` (task axis first, all with the same ``M``) as flat ``mu``, ``rho``.

    Takes the layers' posterior parameters over: they are removed from the layers, which then read
    views of :attr:`mu` / :attr:`rho` (see the module docstring). The layers must not be this
    module's children (the network owns them); they are kept in :attr:`layers` as a plain tuple.
    """

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        if not layers:
            raise ValueError("FlatPosterior needs at least one layer with a posterior")
        self.num_tasks = layers[0].num_tasks
        entries = [(layer, mu_name, rho_name) for layer in layers for mu_name, rho_name in layer.posterior_names]
        mus = [getattr(layer, mu_name).detach() for layer, mu_name, _ in entries]
        rhos = [getattr(layer, rho_name).detach() for layer, _, rho_name in entries]
        if any(t.shape[0] != self.num_tasks for t in mus + rhos):
            raise ValueError("every posterior tensor must have the same task axis (dim 0)")
        #: each entry's shape without the task axis, and its elements per task
        self.shapes = [tuple(mu.shape[1:]) for mu in mus]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.mu = nn.Parameter(torch.cat([mu.reshape(self.num_tasks, -1) for mu in mus], dim=1))
        self.rho = nn.Parameter(torch.cat([rho.reshape(self.num_tasks, -1) for rho in rhos], dim=1))
        self.layers = tuple(layers)
        self._split_key = None
        self._sigma: Tensor | None = None
        self._split_views: tuple[list[Tensor], list[Tensor]] | None = None
        for index, (layer, mu_name, rho_name) in enumerate(entries):
            del layer._parameters[mu_name], layer._parameters[rho_name]
            layer.attach_flat_posterior(self, {mu_name: ("mu", index), rho_name: ("rho", index)})

    def view(self, kind: str, index: int) -> Tensor:
        """Entry ``index`` of ``kind`` (``"mu"`` or ``"rho"``) as a view ``[M, *shape]``."""
        return self._entry(self.mu if kind == "mu" else self.rho, index)

    def grad_view(self, kind: str, index: int) -> Tensor | None:
        """The part of ``mu.grad`` / ``rho.grad`` that belongs to entry ``index`` (None if no grad)."""
        grad = (self.mu if kind == "mu" else self.rho).grad
        return None if grad is None else self._entry(grad, index)

    def _entry(self, flat: Tensor, index: int) -> Tensor:
        """Columns of entry ``index`` of an ``[M, P]`` tensor, viewed as ``[M, *shape]``."""
        return flat.narrow(1, self.offsets[index], self.sizes[index]).view(self.num_tasks, *self.shapes[index])

    def split(self) -> tuple[list[Tensor], list[Tensor]]:
        """Every entry's ``μ`` and ``σ = softplus(ρ)`` as views ``[M, *shape]``, from one split of
        :attr:`mu` and one of :meth:`sigma`: the forward passes' inputs. Made once per version of the
        parameters (an optimiser step or an in-place write makes new ones), always with gradient
        tracking, so the same views serve training, ``no_grad`` replays and ``inference_mode``
        rollouts. "Version" means: no in-place write (autograd's version counters) and no optimizer
        step (fused optimizers write without bumping those counters) since they were made."""
        self._refresh()
        return self._split_views

    def sigma(self) -> Tensor:
        """``softplus(ρ)`` ``[M, P]`` for the current parameters: one tensor (and one gradient node)
        shared by the layers' forward passes and the KL terms until the parameters change."""
        self._refresh()
        return self._sigma

    def _refresh(self) -> None:
        key = (_optimizer_steps[0], id(self.mu), self.mu._version, self.mu.data_ptr(), id(self.rho), self.rho._version,
               self.rho.data_ptr())
        if key != self._split_key:
            with torch.inference_mode(False), torch.enable_grad():
                self._sigma = softplus_scale(self.rho)
                self._split_views = tuple(
                    [part.view(self.num_tasks, *shape)
                     for part, shape in zip(flat.split(self.sizes, dim=1), self.shapes)]
                    for flat in (self.mu, self._sigma)
                )
            self._split_key = key

    def __getstate__(self):
        # the cached σ and views are not leaves (they cannot be deep-copied or pickled); they are remade
        state = self.__dict__.copy()
        state["_split_key"], state["_sigma"], state["_split_views"] = None, None, None
        return state

    def extra_repr(self) -> str:
        return f"tasks={self.num_tasks}, elements_per_task={sum(self.sizes)}, tensors={len(self.sizes)}"
