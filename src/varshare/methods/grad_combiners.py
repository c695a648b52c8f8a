r"""Gradient-combination baselines for the shared parameters: PCGrad and CAGrad.

Both functions take the per-task gradients of the *shared* parameters, flattened and stacked as
``grads`` of shape ``[M, D]`` (M tasks, D shared parameters), and return one combined gradient of
shape ``[D]`` in the input's dtype and on the input's device.  Task-specific parameters (heads)
keep their own gradients and never pass through here.

PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning")
-------------------------------------------------------------------
For each task i, visit the other tasks j != i in a fresh uniformly random order; whenever the
running projected gradient conflicts with the *original* gradient of j, remove the conflicting
component::

    if g_i . g_j < 0:   g_i <- g_i - (g_i . g_j / (||g_j||^2 + 1e-8)) g_j

The combined shared gradient is the **sum** sum_i g_i (as in the official code).

Implementation.  Every projected g_i stays in the span of the original gradients, so we track
coefficients ``C`` (``[M, M]``, starting at the identity) with ``g_i = sum_j C[i, j] g_j`` and
evaluate every dot product through the Gram matrix ``A = G G^T`` (float64):
``g_i . g_j = (C[i] @ A)[j]``.  The projections of all M tasks advance together (step k
projects every task i against its k-th drawn partner), so the M-1 steps cost O(M^2) each on an
``M x M`` array, and the only O(M^2 D) / O(M D) work is forming ``A`` and the final
``(sum_i C[i]) @ G``.  This is exactly the sequential algorithm above (same arithmetic up to the
order of floating-point summation).  The visiting orders are drawn by :func:`pcgrad_orders`:
for i = 0..M-1 in turn, one ``torch.randperm(M - 1, generator=generator)`` mapped onto the
tasks other than i.

CAGrad (Liu et al. 2021, "Conflict-Averse Gradient Descent for Multi-task Learning")
----------------------------------------------------------------------------------
Primal: ``max_d min_i g_i . d  s.t.  ||d - g0|| <= c ||g0||`` with ``g0 = mean_i g_i``.
With ``A = G G^T`` and ``||g0|| = sqrt(mean(A))`` the dual over the probability simplex is::

    w* = argmin_{w in simplex}  w^T A 1/M  +  c ||g0|| sqrt(w^T A w + 1e-8)

(``w^T A 1/M = g_w . g0`` and ``sqrt(w^T A w) = ||g_w||`` with ``g_w = sum_i w_i g_i``), and the
update is::

    d = g0 + (c ||g0|| / (||g_w|| + 1e-8)) g_w,
    rescale 0: d,   rescale 1: d / (1 + c^2),   rescale 2: d / (1 + c).

The dual is convex (linear term plus a smoothed Euclidean norm of ``G w``).  It is solved in
float64 by SLSQP (scipy) with the simplex equality constraint, bounds [0, 1] and the uniform
start, as in the official code, but with an analytic gradient, tight tolerances (ftol 1e-15) and
on a *scale-normalised* problem: with ``s = mean(diag A)``, ``A = s Â`` and the objective equals
``s * [w^T Â 1/M + ĉ sqrt(w^T Â w + 1e-8/s)]`` with ``ĉ = c ||g0|| / sqrt(s)`` — the same
minimiser, but O(1) numbers whatever the gradient scale (the official code's absolute ftol of
1e-6 stops early on small gradients).  The SLSQP point is projected back onto the simplex and
compared (by objective) with the uniform start and the vertices; the best is kept.

What the update satisfies (and what the tests check): ``||d - g0|| = c ||g0||`` whenever
``g_w != 0``, and ``min_i g_i . d`` equals the dual value ``g_w . g0 + c ||g0|| ||g_w||`` (zero
duality gap, which certifies that d maximises the worst-task inner product over the ball).  The
inequality ``min_i g_i . d >= g0 . d - c ||g0|| ||d||`` is *not* a property of CAGrad's d: for
``G = [[1, 0], [0, 3]]`` and ``c = 0.1`` the left side is 0.658 and the right side 2.320 (as
c -> 0 it would require all ``g_i . g0`` to be equal).

Deviations from the official code, both deliberate: ``||g0|| = sqrt(max(mean(A), 0))`` without
the official ``+ 1e-8`` under the root (it only perturbs tiny gradients), and ``c`` is not
increased by 1e-8; so ``c = 0`` returns exactly ``grads.mean(0)`` (all rescale factors are 1).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "pcgrad",
    "pcgrad_projected",
    "pcgrad_orders",
    "cagrad",
    "cagrad_dual_weights",
    "cagrad_dual_objective",
]

_PROJ_EPS = 1e-8  # PCGrad: ||g_j||^2 + eps
_SQRT_EPS = 1e-8  # CAGrad dual: sqrt(w^T A w + eps)
_NORM_EPS = 1e-8  # CAGrad update: ||g_w|| + eps


def _check_grads(grads: torch.Tensor) -> None:
    if not isinstance(grads, torch.Tensor) or grads.dim() != 2:
        got = getattr(grads, "shape", type(grads))
        raise ValueError(f"grads must be a 2-D tensor [M, D], got {got}")
    if grads.shape[0] < 1:
        raise ValueError("grads must hold at least one task (M >= 1)")


# --------------------------------------------------------------------------------------------
# PCGrad
# --------------------------------------------------------------------------------------------
def pcgrad_orders(num_tasks: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Visiting orders used by :func:`pcgrad`.

    Row i (for i = 0..M-1, drawn in that order) is a uniformly random permutation of the tasks
    other than i: ``perm = torch.randperm(M - 1, generator=generator)`` mapped by
    ``j = perm + (perm >= i)``.

    Returns a CPU ``int64`` tensor of shape ``[M, M - 1]``.
    """
    m = int(num_tasks)
    if m < 1:
        raise ValueError("num_tasks must be >= 1")
    device = generator.device if generator is not None else torch.device("cpu")
    rows = []
    for i in range(m):
        perm = torch.randperm(m - 1, generator=generator, device=device).cpu()
        rows.append(perm + (perm >= i).to(perm.dtype))
    if m == 1:
        return torch.empty((1, 0), dtype=torch.int64)
    return torch.stack(rows).to(torch.int64)


def _pcgrad_coefficients(gram: np.ndarray, orders: np.ndarray) -> tuple[np.ndarray, bool]:
    """Coefficients C [M, M] with projected g_i = sum_j C[i, j] g_j; plus "any projection fired"."""
    m = gram.shape[0]
    coef = np.eye(m, dtype=np.float64)
    rows = np.arange(m)
    sq_norms = np.diag(gram)
    projected = False
    for k in range(orders.shape[1]):
        j = orders[:, k]  # partner of every task i at step k
        dots = np.einsum("ik,ik->i", coef, gram[j])  # running g_i . original g_j  (A symmetric)
        conflict = dots < 0.0
        if conflict.any():
            projected = True
            scale = np.where(conflict, dots / (sq_norms[j] + _PROJ_EPS), 0.0)
            coef[rows, j] -= scale
    return coef, projected


def _pcgrad_setup(grads: torch.Tensor, generator: torch.Generator | None):
    m = grads.shape[0]
    orders = pcgrad_orders(m, generator).numpy()
    g64 = grads.detach().to(torch.float64)
    gram = (g64 @ g64.T).cpu().numpy()
    gram = 0.5 * (gram + gram.T)
    coef, projected = _pcgrad_coefficients(gram, orders)
    return g64, coef, projected


def pcgrad(grads: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """PCGrad combination of per-task gradients.

    Args:
        grads: ``[M, D]`` per-task gradients of the shared parameters (any float dtype/device).
        generator: torch generator for the random visiting orders (see :func:`pcgrad_orders`);
            ``None`` uses torch's global RNG.

    Returns:
        ``[D]`` tensor, ``sum_i g_i`` of the projected gradients, in ``grads``' dtype and device.
        For M = 1 this is ``grads[0]``; when no projection fires it is exactly ``grads.sum(0)``.
    """
    _check_grads(grads)
    if grads.shape[0] == 1:
        return grads[0].clone()
    g64, coef, projected = _pcgrad_setup(grads, generator)
    if not projected:
        return grads.sum(dim=0)
    weights = torch.from_numpy(coef.sum(axis=0)).to(device=g64.device)
    return (weights @ g64).to(grads.dtype)


def pcgrad_projected(grads: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The per-task projected gradients of PCGrad, ``[M, D]`` (row i is the final g_i).

    Same orders and arithmetic as :func:`pcgrad` for the same generator state, so
    ``pcgrad(G, gen) == pcgrad_projected(G, gen).sum(0)`` up to float rounding.
    """
    _check_grads(grads)
    if grads.shape[0] == 1:
        return grads.clone()
    g64, coef, _ = _pcgrad_setup(grads, generator)
    return (torch.from_numpy(coef).to(device=g64.device) @ g64).to(grads.dtype)


# --------------------------------------------------------------------------------------------
# CAGrad
# --------------------------------------------------------------------------------------------
def _as_numpy_gram(A) -> np.ndarray:
    if isinstance(A, torch.Tensor):
        A = A.detach().to(torch.float64).cpu().numpy()
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise ValueError(f"A must be a square [M, M] Gram matrix, got shape {A.shape}")
    return 0.5 * (A + A.T)


def _g0_norm(A: np.ndarray) -> float:
    return float(np.sqrt(max(A.mean(), 0.0)))


def cagrad_dual_objective(w, A, c: float) -> float:
    """CAGrad dual objective ``w^T A 1/M + c ||g0|| sqrt(w^T A w + 1e-8)``, ||g0|| = sqrt(mean A).

    ``w``: ``[M]`` (or ``[K, M]`` for K points, returning ``[K]``); ``A``: ``[M, M]`` Gram matrix.
    """
    A = _as_numpy_gram(A)
    w = np.asarray(w, dtype=np.float64)
    m = A.shape[0]
    b = A @ np.full(m, 1.0 / m)
    quad = np.einsum("...i,ij,...j->...", w, A, w)
    return w @ b + c * _g0_norm(A) * np.sqrt(np.maximum(quad, 0.0) + _SQRT_EPS)


def cagrad_dual_weights(A, c: float) -> np.ndarray:
    """Solve the CAGrad dual ``min_{w in simplex} w^T A 1/M + c ||g0|| sqrt(w^T A w + 1e-8)``.

    Args:
        A: ``[M, M]`` Gram matrix ``G G^T`` (numpy array or tensor); symmetrised internally.
        c: CAGrad's c >= 0.

    Returns:
        ``[M]`` float64 numpy array on the probability simplex (w >= 0, sum w = 1).
        SLSQP in float64 on the scale-normalised problem (see the module docstring).
    """
    if c < 0:
        raise ValueError("c must be >= 0")
    A = _as_numpy_gram(A)
    m = A.shape[0]
    uniform = np.full(m, 1.0 / m)
    if m == 1:
        return np.ones(1)
    scale = float(np.mean(np.diag(A)))
    if not np.isfinite(scale):
        raise ValueError("non-finite Gram matrix")
    if scale <= 0.0:  # all gradients are zero: every w is optimal
        return uniform
    a_hat = A / scale
    eps_hat = _SQRT_EPS / scale
    c_hat = c * _g0_norm(A) / np.sqrt(scale)
    b_hat = a_hat @ uniform
    if c_hat == 0.0:  # linear objective: the best vertex
        w = np.zeros(m)
        w[int(np.argmin(b_hat))] = 1.0
        return w

    def fun(w):
        aw = a_hat @ w
        root = np.sqrt(max(float(w @ aw), 0.0) + eps_hat)
        return float(w @ b_hat + c_hat * root), b_hat + (c_hat / root) * aw

    def objective(w):
        return fun(w)[0]

    from scipy.optimize import minimize  # local: scipy is only needed by CAGrad

    ones = np.ones(m)
    res = minimize(
        fun,
        uniform,
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: 1.0 - w.sum(), "jac": lambda w: -ones}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    candidates = [uniform] + [np.eye(m)[i] for i in range(m)]
    w = np.clip(np.asarray(res.x, dtype=np.float64), 0.0, None)
    if np.all(np.isfinite(w)) and w.sum() > 0:
        candidates.insert(0, w / w.sum())
    return min(candidates, key=objective)


def cagrad(grads: torch.Tensor, c: float = 0.5, rescale: int = 1) -> torch.Tensor:
    """CAGrad combination of per-task gradients.

    Args:
        grads: ``[M, D]`` per-task gradients of the shared parameters (any float dtype/device).
        c: conflict-aversion radius, ``||d - g0|| <= c ||g0||`` (0 gives the mean gradient).
        rescale: 0 -> d, 1 -> d / (1 + c^2), 2 -> d / (1 + c).

    Returns:
        ``[D]`` tensor in ``grads``' dtype and device.  Internally float64.
    """
    _check_grads(grads)
    if rescale not in (0, 1, 2):
        raise ValueError("rescale must be 0, 1 or 2")
    if c < 0:
        raise ValueError("c must be >= 0")
    if c == 0:
        return grads.mean(dim=0)
    g64 = grads.detach().to(torch.float64)
    gram = (g64 @ g64.T).cpu().numpy()
    gram = 0.5 * (gram + gram.T)
    w = cagrad_dual_weights(gram, c)
    g0 = g64.mean(dim=0)
    gw = torch.from_numpy(w).to(g64.device) @ g64
    lam = c * _g0_norm(gram) / (float(torch.linalg.vector_norm(gw)) + _NORM_EPS)
    d = g0 + lam * gw
    if rescale == 1:
        d = d / (1.0 + c**2)
    elif rescale == 2:
        d = d / (1.0 + c)
    return d.to(grads.dtype)
