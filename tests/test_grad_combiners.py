"""PCGrad and CAGrad against hand-worked cases, naive reimplementations and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from varshare.methods.grad_combiners import (
    cagrad,
    cagrad_dual_weights,
    pcgrad,
    pcgrad_orders,
    pcgrad_projected,
)

EPS = 1e-8


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


# ------------------------------------------------------------------------------------------
# PCGrad
# ------------------------------------------------------------------------------------------
def naive_pcgrad(G: np.ndarray, orders) -> np.ndarray:
    """Sequential PCGrad straight from the definition, on the vectors themselves."""
    out = []
    for i in range(G.shape[0]):
        g = G[i].copy()
        for j in orders[i]:
            dot = g @ G[j]
            if dot < 0:
                g = g - dot / (G[j] @ G[j] + EPS) * G[j]
        out.append(g)
    return np.array(out)


def test_pcgrad_two_tasks_without_conflict_is_the_plain_sum():
    # dot > 0, then dot = 0
    for g1, g2 in [([1.0, 2.0, 0.0], [3.0, 0.0, 1.0]), ([1.0, 0.0], [0.0, 5.0])]:
        G = torch.tensor([g1, g2], dtype=torch.float32)
        assert torch.equal(pcgrad(G, gen(0)), G.sum(0))


def test_pcgrad_two_tasks_in_conflict_by_hand():
    # g1 = [1, 0], g2 = [-1, 1], g1.g2 = -1:
    #   g1' = g1 + 1/(2+eps) g2 ~ [0.5, 0.5],   g2' = g2 + 1/(1+eps) g1 ~ [0, 1],   sum ~ [0.5, 1.5]
    G = t64([[1.0, 0.0], [-1.0, 1.0]])
    a, b = 1 / (2 + EPS), 1 / (1 + EPS)
    exact = torch.tensor([1 - a - 1 + b, a + 1], dtype=torch.float64)
    out = pcgrad(G, gen(0))
    torch.testing.assert_close(out, exact, rtol=0, atol=1e-15)
    torch.testing.assert_close(out, t64([0.5, 1.5]), rtol=0, atol=1e-7)
    proj = pcgrad_projected(G, gen(0))
    torch.testing.assert_close(proj, t64([[0.5, 0.5], [0.0, 1.0]]), rtol=0, atol=1e-7)


# Three tasks g1 = [1, 0], g2 = [-1, 1], g3 = [-2, -1] (g1.g2 = -1, g1.g3 = -2, g2.g3 = +1),
# projected by hand for each visiting order (first partner -> result; eps neglected):
#   task 0: (1, 2): [1,0] -> [.5,.5] -> [.5,.5] + .3 g3 = [-.1, .2];
#           (2, 1): [1,0] -> [.2,-.4] -> [-.1,-.1]
#   task 1: (0, 2): [-1,1] -> [0,1] -> [0,1] + .2 g3 = [-.4, .8];     (2, 0): no-op -> [0, 1]
#   task 2: (0, 1): [-2,-1] -> [0,-1] -> [0,-1] + .5 g2 = [-.5,-.5];  (1, 0): no-op -> [0, -1]
THREE = [[1.0, 0.0], [-1.0, 1.0], [-2.0, -1.0]]
THREE_BY_FIRST_PARTNER = {
    0: {1: [-0.1, 0.2], 2: [-0.1, -0.1]},
    1: {0: [-0.4, 0.8], 2: [0.0, 1.0]},
    2: {0: [-0.5, -0.5], 1: [0.0, -1.0]},
}


def test_pcgrad_three_tasks_by_hand_for_the_drawn_orders():
    G = t64(THREE)
    seen = set()
    for seed in range(16):
        orders = pcgrad_orders(3, gen(seed))
        assert orders.shape == (3, 2)
        for i in range(3):
            assert sorted(orders[i].tolist()) == [j for j in range(3) if j != i]
        first = [int(orders[i, 0]) for i in range(3)]
        seen.add(tuple(first))
        rows = [THREE_BY_FIRST_PARTNER[i][first[i]] for i in range(3)]
        torch.testing.assert_close(pcgrad_projected(G, gen(seed)), t64(rows), rtol=0, atol=1e-7)
        torch.testing.assert_close(pcgrad(G, gen(seed)), t64(rows).sum(0), rtol=0, atol=1e-7)
    assert len(seen) >= 4  # several different orders were exercised


def test_pcgrad_three_tasks_result_is_one_of_the_hand_worked_order_combinations():
    # independent of how orders are drawn: the result must be one of the 2^3 combinations
    combos = [
        np.sum([THREE_BY_FIRST_PARTNER[i][f[i]] for i in range(3)], axis=0)
        for f in itertools.product([1, 2], [0, 2], [0, 1])
    ]
    G = t64(THREE)
    for seed in range(8):
        out = pcgrad(G, gen(seed)).numpy()
        assert min(np.abs(out - c).max() for c in combos) < 1e-7


def test_pcgrad_is_reproducible_per_seed_and_random_across_seeds():
    G = torch.randn(6, 40, generator=gen(3), dtype=torch.float64)
    G[1:] -= 1.2 * G[0]  # many conflicts
    assert torch.equal(pcgrad(G, gen(11)), pcgrad(G, gen(11)))
    results = {tuple(np.round(pcgrad(G, gen(s)).numpy(), 9)) for s in range(10)}
    assert len(results) > 1


def test_pcgrad_matches_naive_sequential_implementation_on_random_problems():
    rng = np.random.default_rng(0)
    for trial in range(20):
        m, d = int(rng.integers(2, 9)), int(rng.integers(2, 30))
        G = rng.normal(size=(m, d))
        if trial % 2:
            G[1:] -= rng.uniform(0.5, 2.0) * G[0]
        seed = 100 + trial
        orders = pcgrad_orders(m, gen(seed)).tolist()
        expected = naive_pcgrad(G, orders)
        projected = pcgrad_projected(t64(G), gen(seed)).numpy()
        np.testing.assert_allclose(projected, expected, atol=1e-10)
        np.testing.assert_allclose(pcgrad(t64(G), gen(seed)).numpy(), expected.sum(0), atol=1e-10)


def test_pcgrad_conflict_leaves_projected_gradients_non_negative_against_the_originals():
    rng = np.random.default_rng(1)
    for _ in range(50):  # two tasks: the property holds exactly (up to the 1e-8 in the denominator)
        G = rng.normal(size=(2, 7))
        if G[0] @ G[1] >= 0:
            G[1] = -G[1]
        assert G[0] @ G[1] < 0
        P = pcgrad_projected(t64(G), gen(0)).numpy()
        scale = np.linalg.norm(G[0]) * np.linalg.norm(G[1])
        dot = G[0] @ G[1]
        for i, j in [(0, 1), (1, 0)]:
            # exactly orthogonal but for the eps: g_i'.g_j = dot * eps / (||g_j||^2 + eps) ~ -1e-8
            residual = dot * EPS / (G[j] @ G[j] + EPS)
            assert P[i] @ G[j] >= residual - 1e-13 * scale
            assert abs(P[i] @ G[j]) <= 1e-7 * scale
    for seed in range(20):  # M tasks: holds against the last partner visited
        G = rng.normal(size=(5, 9))
        G[1:] -= 1.5 * G[0]
        orders = pcgrad_orders(5, gen(seed))
        P = pcgrad_projected(t64(G), gen(seed)).numpy()
        for i in range(5):
            j = int(orders[i, -1])
            # up to the eps residual
            assert P[i] @ G[j] >= -1e-7 * np.linalg.norm(G[j]) * np.linalg.norm(G[i])


def test_pcgrad_without_conflicts_is_order_independent():
    G = torch.rand(5, 12, generator=gen(2), dtype=torch.float32)  # non-negative: no pair conflicts
    outs = [pcgrad(G, gen(s)) for s in range(5)]
    for out in outs:
        assert torch.equal(out, G.sum(0))


def test_pcgrad_single_task_dtype_and_default_rng():
    g = torch.randn(1, 10, dtype=torch.float32)
    assert torch.equal(pcgrad(g, gen(0)), g[0])
    G = torch.randn(4, 10, dtype=torch.float32, generator=gen(4))
    G[1:] -= G[0]
    out = pcgrad(G)  # global RNG
    assert out.dtype == torch.float32 and out.shape == (10,)
    out32 = pcgrad(G, gen(5))
    out64 = pcgrad(G.double(), gen(5))
    torch.testing.assert_close(out32, out64.float(), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------
# CAGrad
# ------------------------------------------------------------------------------------------
def dual_obj(W: np.ndarray, A: np.ndarray, c: float) -> np.ndarray:
    """w^T A 1/M + c ||g0|| sqrt(w^T A w + 1e-8) for rows of W, written independently."""
    m = A.shape[0]
    g0n = np.sqrt(A.sum() / m**2)
    return W @ A.sum(1) / m + c * g0n * np.sqrt(np.einsum("ki,ij,kj->k", W, A, W) + EPS)


def update_from_w(G: np.ndarray, w: np.ndarray, c: float) -> np.ndarray:
    g0 = G.mean(0)
    gw = w @ G
    return g0 + c * np.linalg.norm(g0) / (np.linalg.norm(gw) + EPS) * gw


def two_task_closed_form_p(A: np.ndarray, c: float) -> float:
    """argmin over p in [0, 1] of the dual at w = (p, 1 - p), solved analytically.

    f(p) = alpha p + const + kappa sqrt(q p^2 + r p + a22 + eps) with q = ||g1 - g2||^2,
    r = 2 (a12 - a22), alpha = (a11 - a22) / 2, kappa = c ||g0||.  With u = p + r / (2q) and
    m = a22 + eps - r^2 / (4q) the stationarity condition is
    q u / sqrt(q u^2 + m) = t := -alpha / kappa,
    solved by u = t sqrt(m / (q (q - t^2))) when t^2 < q; otherwise f is monotone on [0, 1].
    f is convex, so clipping the unconstrained minimiser to [0, 1] gives the constrained one.
    """
    a11, a12, a22 = A[0, 0], A[0, 1], A[1, 1]
    q = a11 - 2 * a12 + a22
    r = 2 * (a12 - a22)
    alpha = (a11 - a22) / 2
    kappa = c * np.sqrt((a11 + 2 * a12 + a22) / 4)
    t = -alpha / kappa
    m = a22 + EPS - r**2 / (4 * q)
    if t**2 >= q:
        return 1.0 if t > 0 else 0.0
    u = t * np.sqrt(m / (q * (q - t**2)))
    return float(np.clip(u - r / (2 * q), 0.0, 1.0))


def test_cagrad_orthogonal_pair_by_hand():
    # g1 = [1,0], g2 = [0,1]: symmetric, w = (1/2, 1/2), g_w = g0 = [.5,.5], d = (1 + c) g0
    G = t64([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(cagrad_dual_weights((G @ G.T).numpy(), 0.5), [0.5, 0.5], atol=1e-7)
    torch.testing.assert_close(cagrad(G, c=0.5, rescale=0), t64([0.75, 0.75]), rtol=0, atol=1e-7)


def test_cagrad_two_tasks_against_the_closed_form_and_a_dense_grid():
    rng = np.random.default_rng(0)
    p_grid = np.linspace(0.0, 1.0, 200_001)
    W_grid = np.stack([p_grid, 1 - p_grid], axis=1)
    interior = boundary = 0
    for trial in range(12):
        G = rng.normal(size=(2, 6)) * rng.uniform(0.1, 10.0, size=(2, 1))
        if trial % 2:
            G[1] -= 1.3 * G[0]
        c = float(rng.uniform(0.1, 1.2))
        A = G @ G.T
        p = two_task_closed_form_p(A, c)
        interior += 0.0 < p < 1.0
        boundary += p in (0.0, 1.0)
        f_grid = dual_obj(W_grid, A, c)
        f_p = dual_obj(np.array([[p, 1 - p]]), A, c)[0]
        assert f_p <= f_grid.min() + 1e-12 * np.abs(A).max()  # the closed form is the minimum
        w = cagrad_dual_weights(A, c)
        assert abs(w[0] - p) < 1e-5
        d = cagrad(t64(G), c=c, rescale=0).numpy()
        expected = update_from_w(G, np.array([p, 1 - p]), c)
        np.testing.assert_allclose(d, expected, rtol=0, atol=1e-6 * np.linalg.norm(expected))
    assert interior and boundary  # both regimes exercised


@pytest.mark.parametrize("m", [3, 4])
def test_cagrad_dual_solver_beats_brute_force(m):
    rng = np.random.default_rng(m)
    if m == 3:
        k = 400
        a, b = np.meshgrid(np.arange(k + 1), np.arange(k + 1), indexing="ij")
        keep = a + b <= k
        grid = np.stack([a[keep], b[keep], k - a[keep] - b[keep]], axis=1) / k
    else:
        k = 50
        pts = [p for p in itertools.product(range(k + 1), repeat=3) if sum(p) <= k]
        grid = np.array([(*p, k - sum(p)) for p in pts]) / k
    for trial in range(6):
        G = rng.normal(size=(m, 8))
        if trial % 2:
            G[1:] -= rng.uniform(0.5, 2.0) * G[0]
        c = float(rng.uniform(0.1, 1.5))
        A = G @ G.T
        W = np.vstack([grid, rng.dirichlet(np.full(m, 0.5), size=100_000), np.eye(m)])
        best = dual_obj(W, A, c).min()
        w = cagrad_dual_weights(A, c)
        assert w.shape == (m,) and np.all(w >= 0) and abs(w.sum() - 1) < 1e-12
        assert dual_obj(w[None], A, c)[0] <= best + 1e-10 * np.abs(A).max()


def test_cagrad_update_is_primal_optimal_with_zero_duality_gap():
    """d solves max_d min_i g_i.d s.t. ||d - g0|| <= c||g0||.

    Weak duality: for every feasible d' and every w on the simplex,
    min_i g_i.d' <= g_w.d' <= g_w.g0 + c||g0|| ||g_w||; so d feasible with min_i g_i.d equal to
    the dual value of w certifies both optimal.  Also brute-force over random feasible d'.
    """
    rng = np.random.default_rng(7)
    for trial in range(30):
        m, dim = int(rng.integers(2, 9)), int(rng.integers(2, 20))
        G = rng.normal(size=(m, dim))
        if trial % 3 == 0:
            G[1:] -= rng.uniform(0.3, 2.0) * G[0]
        c = float(rng.uniform(0.05, 1.5))
        d = cagrad(t64(G), c=c, rescale=0).numpy()
        g0 = G.mean(0)
        radius = c * np.linalg.norm(g0)
        scale = np.abs(G @ G.T).max()
        assert np.linalg.norm(d - g0) <= radius * (1 + 1e-9)
        w = cagrad_dual_weights(G @ G.T, c)
        gw = w @ G
        dual_value = gw @ g0 + radius * np.linalg.norm(gw)
        primal_value = (G @ d).min()
        assert abs(dual_value - primal_value) <= 1e-6 * scale
        dirs = rng.normal(size=(2000, dim))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        radii = radius * rng.uniform(0, 1, size=(2000, 1)) ** (1 / dim)
        others = np.vstack([g0 + radii * dirs, g0 + radius * dirs, g0])
        assert (others @ G.T).min(axis=1).max() <= primal_value + 1e-9 * scale
        assert primal_value >= (G @ g0).min() - 1e-9 * scale  # no worse than the mean gradient


def test_cagrad_c_zero_is_the_mean_gradient_exactly():
    G = torch.randn(5, 33, generator=gen(8), dtype=torch.float32)
    G[1:] -= G[0]
    for rescale in (0, 1, 2):
        assert torch.equal(cagrad(G, c=0.0, rescale=rescale), G.mean(0))


def test_cagrad_rescale_variants():
    G = torch.randn(4, 16, generator=gen(9), dtype=torch.float64)
    G[1:] -= 1.5 * G[0]
    c = 0.7
    d = cagrad(G, c=c, rescale=0)
    torch.testing.assert_close(cagrad(G, c=c, rescale=1), d / (1 + c**2), rtol=1e-12, atol=0)
    torch.testing.assert_close(cagrad(G, c=c, rescale=2), d / (1 + c), rtol=1e-12, atol=0)
    torch.testing.assert_close(cagrad(G, c=c), d / (1 + c**2), rtol=1e-12, atol=0)  # default 1
    with pytest.raises(ValueError):
        cagrad(G, c=c, rescale=3)


@pytest.mark.parametrize("m", [1, 2, 5])
def test_cagrad_identical_gradients_return_that_gradient_scaled(m):
    g = torch.randn(20, generator=gen(m), dtype=torch.float64)
    G = g.expand(m, 20).clone()
    c = 0.5
    n = float(g.norm())
    d0 = g * (1 + c * n / (n + EPS))  # g0 = g_w = g
    torch.testing.assert_close(cagrad(G, c=c, rescale=0), d0, rtol=1e-9, atol=0)
    torch.testing.assert_close(cagrad(G, c=c, rescale=1), d0 / (1 + c**2), rtol=1e-9, atol=0)
    torch.testing.assert_close(cagrad(G, c=c, rescale=2), d0 / (1 + c), rtol=1e-9, atol=0)


def test_cagrad_dtype_scale_and_zero_gradients():
    G = torch.randn(6, 50, generator=gen(10), dtype=torch.float32)
    G[1:] -= 1.2 * G[0]
    out32 = cagrad(G, c=0.5)
    assert out32.dtype == torch.float32 and out32.shape == (50,)
    torch.testing.assert_close(out32, cagrad(G.double(), c=0.5).float(), rtol=1e-4, atol=1e-5)
    # large gradients: the eps terms are negligible and the map is homogeneous of degree 1
    Gd = G.double()
    torch.testing.assert_close(cagrad(1e3 * Gd, c=0.5), 1e3 * cagrad(Gd, c=0.5), rtol=1e-6, atol=0)
    assert torch.equal(cagrad(torch.zeros(3, 7), c=0.5), torch.zeros(7))
