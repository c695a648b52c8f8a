"""``varshare_reptile``: VarShare plus a Reptile-style move of the residual means into θ after each
update phase (config section ``reptile``).

``recenter: per_task`` (default; the seed's pseudocode): for each task ``m`` in order,
``s = α·μ_m; θ ← θ + s; μ_m ← μ_m − s`` on the weights and biases of every variational layer.
Right after its own shift, task ``m``'s weights ``θ + μ_m`` are unchanged (up to float rounding)
while every other task's move by ``s``. Since ``s`` depends only on ``μ_m``, which no other task's
shift touches, the order does not matter: after the loop ``θ ← θ + α Σ_m μ_m`` and
``μ_m ← (1 − α) μ_m``. ``σ`` (``ρ``) is never touched.

``recenter: mean``: ``δ = α · mean_m μ_m``; ``θ ← θ + δ``; every ``μ_m ← μ_m − δ``. Every task's
weights ``θ + μ_m`` (and so its function, for any noise) are preserved; only the split between
shared and residual parts moves, which lowers the KL paid for what the tasks have in common.

Adam state: **carried**. The shift is done in place (``torch.no_grad``) on the parameter tensors
the optimizer holds, so the optimizer's per-parameter state (``exp_avg``, ``exp_avg_sq``, ``step``)
stays attached to the same tensors and is left exactly as it was (the method never sees the
optimizer). Rationale: the gradients of the RL loss w.r.t. θ and μ_m depend only on the tasks'
weights ``θ + μ_m``, which ``mean`` preserves exactly and ``per_task`` changes by at most
``α Σ_k μ_k``; resetting would discard the second-moment estimates and restart Adam's bias
correction after every iteration. Tested: the optimizer state is bitwise unchanged by
:meth:`VarShareReptile.end_update` and still keyed by the model's parameters.
"""

from __future__ import annotations

import math

import torch

from varshare.methods.base import register
from varshare.methods.varshare import VarShare, variational_layers
from varshare.nn import VariationalResidualLinear


def _pairs(layer: VariationalResidualLinear):
    return ((layer.theta_weight, layer.mu_weight), (layer.theta_bias, layer.mu_bias))


def reptile_shift_(layer: VariationalResidualLinear, task: int, alpha: float) -> float:
    """In place: ``s = α·μ_task``; ``θ += s``; ``μ_task −= s`` (weight and bias). Returns ``‖s‖²``."""
    sq = 0.0
    with torch.no_grad():
        for theta, mu in _pairs(layer):
            shift = alpha * mu[task]
            theta.add_(shift)
            mu[task].sub_(shift)
            sq += float(shift.square().sum())
    return sq


def reptile_recenter_(layer: VariationalResidualLinear, alpha: float) -> float:
    """In place: ``δ = α·mean_m μ_m``; ``θ += δ``; every ``μ_m −= δ`` (weight and bias).
    Returns ``‖δ‖²``."""
    sq = 0.0
    with torch.no_grad():
        for theta, mu in _pairs(layer):
            delta = alpha * mu.mean(dim=0)
            theta.add_(delta)
            mu.sub_(delta)
            sq += float(delta.square().sum())
    return sq


@register
class VarShareReptile(VarShare):
    name = "varshare_reptile"
    writes_shared_parameters = True  # end_update moves α·μ into θ

    def __init__(self, config, num_tasks, seed):
        super().__init__(config, num_tasks, seed)
        self.last_shift_norm = 0.0

    def end_update(self, networks):
        options = self.config.reptile
        sq = 0.0
        for layer in variational_layers(networks).values():
            if options.recenter == "mean":
                sq += reptile_recenter_(layer, options.alpha)
            else:
                for task in range(self.num_tasks):
                    sq += reptile_shift_(layer, task, options.alpha)
        self.last_shift_norm = math.sqrt(sq)

    def state_dict(self):
        return {"last_shift_norm": self.last_shift_norm}

    def load_state_dict(self, state):
        self.last_shift_norm = state["last_shift_norm"]

    def diagnostics(self, networks):
        """VarShare's, plus the L2 norm of all shifts applied to θ after the previous update phase."""
        return {**super().diagnostics(networks), "reptile_shift_norm": self.last_shift_norm}
