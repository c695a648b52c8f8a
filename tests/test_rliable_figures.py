"""`varshare.analysis.rliable_figures`: score distributions against brute force and by hand, the
seeded stratified-bootstrap band of a performance profile, and rliable's two figures written as PNG
and PDF (several panels, a single-seed method, bad input refused)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from varshare.analysis.rliable_figures import (default_taus, plot_improvement, plot_performance_profiles,
                                               profile_with_ci, score_distribution)
from varshare.analysis.stats import comparison_interval, probability_of_improvement

TAUS = np.linspace(0.0, 1.0, 21)
REPS = 300  # small: the properties tested hold for any number of replications


def brute_force_distribution(scores: np.ndarray, taus: np.ndarray) -> list[float]:
    entries = [float(v) for row in scores for v in row]
    return [sum(1 for v in entries if v > tau) / len(entries) for tau in taus]


def scores_of(seed: int, runs: int = 5, tasks: int = 4, shift: float = 0.0) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).uniform(-0.1, 1.1, size=(runs, tasks)) + shift, -0.2, 1.0)


def test_score_distribution_by_hand():
    scores = np.array([[0.0, 0.5], [1.0, 1.0]])
    # > 0.25: 0.5, 1, 1 → 3/4; > 0: 3/4; > 0.5: 2/4 (strict); > 1: none; > -1: all
    np.testing.assert_array_equal(score_distribution(scores, np.array([0.25, 0.0, 0.5, 1.0, -1.0])),
                                  [0.75, 0.75, 0.5, 0.0, 1.0])


def test_score_distribution_matches_brute_force_and_keeps_leading_axes():
    scores = np.array([[0.1, 0.9, 0.3], [0.3, -0.2, 1.0], [0.7, 0.3, 0.55]])
    taus = np.array([-0.5, -0.2, 0.0, 0.3, 0.31, 0.6, 0.99, 1.0, 2.0])
    np.testing.assert_allclose(score_distribution(scores, taus), brute_force_distribution(scores, taus))
    stacked = np.stack([scores, scores[::-1] * 0.5, np.zeros_like(scores)])
    result = score_distribution(stacked, taus)
    assert result.shape == (3, len(taus))
    for i in range(3):
        np.testing.assert_allclose(result[i], brute_force_distribution(stacked[i], taus))


def test_profile_with_ci_is_seeded_and_brackets_the_profile():
    scores = scores_of(0, runs=6, tasks=3)
    first = profile_with_ci(scores, TAUS, seed=7, reps=REPS)
    again = profile_with_ci(scores, TAUS, seed=7, reps=REPS)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    other = profile_with_ci(scores, TAUS, seed=8, reps=REPS)
    assert not np.array_equal(first[1:], other[1:])  # the band comes from the seed
    profile, low, high = first
    np.testing.assert_allclose(profile, brute_force_distribution(scores, TAUS))
    assert np.all(low <= profile) and np.all(profile <= high)
    assert np.any(high > low)  # runs differ: some width
    for curve in (profile, low, high):
        assert np.all(np.diff(curve) <= 0), "profile and band are non-increasing in τ"
    assert np.all((low >= 0) & (high <= 1))


def test_profile_with_ci_single_run_has_no_band():
    profile, low, high = profile_with_ci(np.array([[0.2, 0.8, 1.0]]), TAUS, seed=0, reps=REPS)
    np.testing.assert_allclose(profile, brute_force_distribution([[0.2, 0.8, 1.0]], TAUS))
    assert np.isnan(low).all() and np.isnan(high).all()


def test_profile_with_ci_identical_runs_give_zero_width_band():
    scores = np.tile([0.1, 0.5, 0.9, 1.0], (4, 1))  # every run of a task scores the same
    profile, low, high = profile_with_ci(scores, TAUS, seed=3, reps=REPS)
    np.testing.assert_array_equal(low, profile)
    np.testing.assert_array_equal(high, profile)


def test_default_taus_cover_the_scores():
    taus = default_taus([("a", {"x": np.array([[0.2, 0.4]])})])
    assert (taus[0], taus[-1], len(taus)) == (0.0, 1.0, 101)
    taus = default_taus([("a", {"x": np.array([[-0.3, 0.4]])}), ("b", {"y": np.array([[1.5], [0.2]])})])
    assert (taus[0], taus[-1]) == (-0.3, 1.5)
    assert np.all(np.diff(taus) > 0)


def profile_panels() -> list[tuple[str, dict[str, np.ndarray]]]:
    return [("PPO", {"varshare": scores_of(1, shift=0.2), "independent": scores_of(2), "hard_sharing": scores_of(3),
                     "l2_soft": scores_of(4, runs=1)}),  # one seed: no band
            ("SAC", {"varshare": scores_of(5), "some_new_method": scores_of(6, shift=-0.3)})]


def assert_written(*paths):
    for path in paths:
        assert path.stat().st_size > 1000, path
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"


def test_plot_performance_profiles_writes_png_and_pdf(tmp_path):
    png, pdf = tmp_path / "fig" / "profiles.png", tmp_path / "fig" / "profiles.pdf"
    plot_performance_profiles(profile_panels(), "CartPole-10", png, pdf, seed=0, reps=REPS)
    assert_written(png, pdf)
    first = pdf.read_bytes()
    plot_performance_profiles(profile_panels(), "CartPole-10", png, pdf, seed=0, reps=REPS)
    assert pdf.read_bytes() == first  # seeded bands, no creation date: same figure, same file
    plot_performance_profiles(profile_panels()[:1], None, tmp_path / "one.png", tmp_path / "one.pdf", seed=1,
                              reps=REPS, taus=TAUS, xlabel="success rate τ")
    assert_written(tmp_path / "one.png", tmp_path / "one.pdf")


@pytest.mark.parametrize("panels, message", [
    ([], "no panels"),
    ([("PPO", {"varshare": np.ones((2, 3))}), ("SAC", {})], "panel 'SAC' is empty"),
    ([("PPO", {"varshare": np.ones((2, 3)), "independent": np.ones((2, 4))})], "different task counts"),
    ([("PPO", {"varshare": np.ones(3)})], "non-empty \\[num_runs, num_tasks\\]"),
    ([("PPO", {"varshare": np.array([[0.1, np.nan]])})], "NaN"),
])
def test_plot_performance_profiles_refuses_bad_input(tmp_path, panels, message):
    with pytest.raises(ValueError, match=message):
        plot_performance_profiles(panels, None, tmp_path / "p.png", tmp_path / "p.pdf", seed=0, reps=REPS)
    assert not list(tmp_path.iterdir())


def improvement_panels() -> list[tuple[str, list[tuple[str, str, float, float, float]]]]:
    final = {m: scores_of(i, shift=0.15 if m == "varshare" else 0.0) for i, m in
             enumerate(["varshare", "independent", "hard_sharing", "l2_soft"])}
    final["pcgrad"] = scores_of(9, runs=1)  # one seed: no interval
    entries = [(x, y, *comparison_interval(probability_of_improvement, [final[x], final[y]], seed=0, reps=REPS))
               for x, y in [("varshare", "independent"), ("varshare", "hard_sharing"), ("varshare", "pcgrad"),
                            ("l2_soft", "independent")]]
    assert math.isnan(entries[2][3]) and not math.isnan(entries[0][3])
    return [("PPO", entries), ("SAC", [("varshare", "independent", 0.7, 0.55, 0.85)])]


def test_plot_improvement_writes_png_and_pdf(tmp_path):
    png, pdf = tmp_path / "improvement.png", tmp_path / "improvement.pdf"
    plot_improvement(improvement_panels(), "CartPole-10", png, pdf)
    assert_written(png, pdf)
    plot_improvement([("PPO", [("a,b", "c", 0.5, float("nan"), float("nan"))])], None, tmp_path / "nan.png",
                     tmp_path / "nan.pdf")  # only a NaN interval; a comma in a name
    assert_written(tmp_path / "nan.png", tmp_path / "nan.pdf")


@pytest.mark.parametrize("panels, message", [
    ([], "no panels"),
    ([("PPO", [("varshare", "independent", 0.6, 0.5, 0.7)]), ("SAC", [])], "panel 'SAC' is empty"),
    ([("PPO", [("varshare", "independent", 0.6)])], "is not \\(method_x"),
    ([("PPO", [("varshare", "independent", 1.2, 0.5, 0.7)])], "not a probability"),
    ([("PPO", [("varshare", "pcgrad", 0.6, 0.5, 0.7)] * 2)], "given twice"),
])
def test_plot_improvement_refuses_bad_input(tmp_path, panels, message):
    with pytest.raises(ValueError, match=message):
        plot_improvement(panels, None, tmp_path / "i.png", tmp_path / "i.pdf")
    assert not list(tmp_path.iterdir())
